# Host runner: the stack on a TUN, TAP or AF_PACKET link, serving echo/discard/chargen/http.
# SPDX-License-Identifier: MIT
#
#   python3 tools/host.py tun:st0 10.0.0.2/24 --service http
#   python3 tools/host.py packet:veth1 10.0.0.2/24 --service echo --port 7
#   micropython tools/host.py packet:veth1 10.0.0.2/24 --service http     (MICROPYPATH=.)
#
# LINK is tun:NAME[@NETNS] or tap:NAME[@NETNS] (CPython: they need fcntl/ctypes) or
# packet:IFACE (CPython and the MicroPython unix port), or w5500emu:IFACE (our W5500 driver
# on tools/w5500emu.py's emulator, bridged to AF_PACKET on IFACE). The kernel side of a
# TUN/TAP device (its address, `up`) is the caller's job; this prints READY once the link is
# open, serves until interrupted (or --seconds), and with --trace prints every segment as a
# figure row.
#
# A host has memory to spare, so each connection gets 32 KiB receive and send rings (--rx,
# --tx; the stack's default, config.py, is 4 KiB for boards). The echo service against a
# Linux client moved 19 MB/s each way with 4 KiB rings, 41 MB/s with 32 KiB (issue 12).

import sys


def _repo_root():
    path = __file__ if __file__.startswith("/") else None
    if path is None:
        try:
            import os

            path = os.getcwd() + "/" + __file__
        except (ImportError, AttributeError):
            return "."
    here = path[:path.rfind("/")]
    return here[:here.rfind("/")] or "/"


sys.path.insert(0, _repo_root())

import asyncio  # noqa: E402

from stack import Stack, aio, services, trace  # noqa: E402
from links import make_link  # noqa: E402

RING = 32 * 1024  # default --rx and --tx on a host: bytes per connection and direction

USAGE = ("usage: host.py LINK IP/PREFIX [--gateway GW] [--service echo|discard|chargen|http]"
         " [--port N] [--seconds N] [--rx BYTES] [--tx BYTES] [--trace]")


def parse(argv):
    opts = {"--gateway": None, "--service": "http", "--port": None, "--seconds": None,
            "--rx": RING, "--tx": RING, "--trace": False}
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--trace":
            opts[a] = True
            i += 1
        elif a in opts:
            if i + 1 >= len(argv):
                raise ValueError("%s needs a value" % a)
            opts[a] = argv[i + 1]
            i += 2
        else:
            pos.append(a)
            i += 1
    if len(pos) != 2 or "/" not in pos[1]:
        raise ValueError(USAGE)
    for name in ("--rx", "--tx"):
        opts[name] = int(opts[name])  # ValueError for a bad number
        if opts[name] <= 0:
            raise ValueError("%s must be > 0" % name)
    if opts["--service"] not in services.SERVICES:
        raise ValueError("unknown service %r" % opts["--service"])
    return pos, opts


async def serve(net, opts):
    factory, default_port = services.SERVICES[opts["--service"]]
    port = int(opts["--port"]) if opts["--port"] else default_port
    server = await aio.start_server(net, factory(net), "0.0.0.0", port)
    print("READY %s on port %d" % (opts["--service"], port))
    flush = getattr(sys.stdout, "flush", None)
    if flush:
        flush()  # a test or script waits for this line on a pipe
    seconds = opts["--seconds"]
    if seconds:
        await asyncio.sleep(float(seconds))
    else:
        while True:
            await asyncio.sleep(3600)
    server.close()
    await server.wait_closed()


def main(argv):
    try:
        pos, opts = parse(argv)
        ip, prefix = pos[1].split("/")
        link = make_link(pos[0])
    except (ValueError, OSError) as e:
        print("host.py: %s" % (e,))
        return 2
    net = Stack(link, ip=ip, prefix=int(prefix), gateway=opts["--gateway"],
                rx_buf=opts["--rx"], tx_buf=opts["--tx"])
    if opts["--trace"]:
        trace.attach(net, peer="peer", us="this stack (%s)" % ip)
    try:
        asyncio.run(serve(net, opts))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
