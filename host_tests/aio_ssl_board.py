# aio.open_connection(ssl=) and aio.start_server(ssl=) on the MicroPython unix port: two of
# our stacks in memory, MicroPython's tls on both ends (issue 12). Driven by test_aio_ssl.py.
# MIT licence.
#
#   aio_ssl_board.py CERTDIR   (ca.der, server.der, server_key.der from certs.py)
#
# Prints one line per scenario:
#   echo N SHA256HEX          N random bytes sent and echoed back through TLS, their hash
#   bad-name TYPE ERRNO-OR-0  the error the client's first read raised (wrong server name)
#   free BOOL                 every TCB of both stacks back in its pool afterwards

import asyncio
import hashlib
import sys

import tls

from stack import Stack, aio, port
from stack.link.pipe import pipe

_N = 20000


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _hex(b):
    return "".join("%02x" % x for x in b)


async def _echo(reader, writer):
    try:
        while True:
            data = await reader.read(1024)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, ValueError):
        pass  # the client gave up on the handshake: nothing to echo
    writer.close()
    await writer.wait_closed()


async def main(d):
    a, b = pipe(mtu=1500, depth=64)
    client = Stack(a, ip="10.0.0.1")
    server = Stack(b, ip="10.0.0.2")
    sctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(_read(d + "/server.der"), _read(d + "/server_key.der"))
    cctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    cctx.verify_mode = tls.CERT_REQUIRED
    cctx.load_verify_locations(_read(d + "/ca.der"))
    srv = await aio.start_server(server, _echo, "0.0.0.0", 443, ssl=sctx)

    r, w = await aio.open_connection(client, "10.0.0.2", 443, ssl=cctx,
                                     server_hostname="server.lan")
    data = port.urandom(_N)
    got = bytearray()

    async def receive():
        while len(got) < _N:
            chunk = await r.read(_N - len(got))
            if not chunk:
                break
            got.extend(chunk)

    task = asyncio.create_task(receive())
    for i in range(0, _N, 4000):
        w.write(data[i:i + 4000])
        await w.drain()
    await asyncio.wait_for(task, 20)
    print("echo", len(got), _hex(hashlib.sha256(got).digest()) if got == data else "differs")
    w.close()
    await w.wait_closed()

    r, w = await aio.open_connection(client, "10.0.0.2", 443, ssl=cctx,
                                     server_hostname="wrong.lan")
    try:
        w.write(b"hello")
        await w.drain()
        await asyncio.wait_for(r.read(10), 20)
        print("bad-name none 0")
    except Exception as e:  # whatever tls raises reaches us unchanged
        err = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        print("bad-name", type(e).__name__, err)
    w.close()
    await w.wait_closed()
    srv.close()
    await srv.wait_closed()

    def free():
        return all(n.free_tcb_count() == len(n.tcbs) for n in (client, server))

    for _ in range(400):  # TIME-WAIT uses its own records: the TCBs free at once
        if free():
            break
        await asyncio.sleep_ms(10)
    print("free", free())
    for net in (client, server):
        t = aio.stop_driver(net)
        if t is not None:
            await t


asyncio.run(main(sys.argv[1]))
