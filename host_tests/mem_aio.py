# Heap kept by the asyncio layer (stack/aio.py, issue 12): the import, and each connection
# open through aio.open_connection/start_server, with MicroPython's own Stream (what boards
# use) and with aio_streams' classes (what CPython and the WebAssembly port use).
# MIT licence. MicroPython unix (its gc frees; the WebAssembly port's frees nothing while a
# script runs, so only allocation totals could be had there):
#
#   MICROPYPATH=.frozen:.:host_tests micropython host_tests/mem_aio.py
#
# Prints one "key value" line per figure (bytes, 64-bit: a 32-bit board's are smaller).

import gc
import sys

import asyncio

from stack import Stack, port
from stack.link.pipe import pipe

_CONNS = 4


def _kept(before):
    gc.collect()
    return gc.mem_alloc() - before


def _import_figures():
    gc.collect()
    before = gc.mem_alloc()
    from stack import aio  # noqa: F401

    out = {"heap_bytes_import_aio_unix64": _kept(before)}
    gc.collect()
    before = gc.mem_alloc()
    from stack import aio_streams  # noqa: F401

    out["heap_bytes_import_aio_streams_unix64"] = _kept(before)
    return out


def _per_connection(native):
    from stack import aio

    aio._native = native
    a, b = pipe(mtu=1500, depth=16)
    client = Stack(a, ip="10.0.0.1", tcbs=_CONNS + 1)
    server = Stack(b, ip="10.0.0.2", tcbs=_CONNS + 1)
    release = asyncio.Event()
    served = []
    box = []

    async def handler(reader, writer):
        served.append(await reader.readline())  # each connection has read a line
        await release.wait()
        writer.close()
        await writer.wait_closed()

    async def until(cond):
        for _ in range(2000):
            if cond():
                return
            await asyncio.sleep_ms(1)
        raise AssertionError("mem_aio: timed out")

    async def main():
        srv = await aio.start_server(server, handler, "0.0.0.0", 80)
        aio.ensure_driver(client)
        writers = []
        r, w = await aio.open_connection(client, "10.0.0.2", 80)  # warm up: classes, driver
        w.write(b"warm\n")
        await w.drain()
        await until(lambda: len(served) == 1)
        gc.collect()
        before = gc.mem_alloc()
        for i in range(_CONNS):
            r, w = await aio.open_connection(client, "10.0.0.2", 80)
            w.write(b"line %d\n" % i)
            await w.drain()
            writers.append(w)
        await until(lambda: len(served) == _CONNS + 1)
        box.append(_kept(before) // _CONNS)
        release.set()
        for w in writers:
            w.close()
            await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        for net in (client, server):
            t = aio.stop_driver(net)
            if t is not None:
                await t

    asyncio.new_event_loop()
    asyncio.run(main())
    return box[0]


def main():
    figures = _import_figures()
    from stack import aio

    if aio._native:
        figures["heap_bytes_per_conn_native_stream_unix64"] = _per_connection(True)
    figures["heap_bytes_per_conn_aio_streams_unix64"] = _per_connection(False)
    for k, v in figures.items():
        print(k, v)
    return 0


sys.exit(main())
