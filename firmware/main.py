# main.py: bring the board's link up from config.py and serve one service on asyncio.
# SPDX-License-Identifier: MIT
#
# Runs after boot.py at every reset. Ctrl-C stops serving and leaves these at the REPL:
#
#     net           the Stack (connections, timers and buffers stay as they were)
#     server        the service's aio Server
#     resume()      serve again: the same tasks, connections and timers go on
#     from stack import debug; debug.netstat(net); debug.stats(net)
#
# tools/netstat.py does exactly that from the host (interrupt, print, resume), and
# tools/pcap_pull.py pulls debug.capture()'s frames the same way (firmware/README.md).

import gc

import config
from stack import Stack, port

DHCP_PROGRESS_S = 10  # while no lease comes, say so this often


def bring_up():
    """The board's link and a Stack on it: config.IP, or DHCP when it is None."""
    board = __import__("boards." + config.BOARD, None, None, ("link",))
    link = board.link(getattr(config, "MAC", None))
    gc.collect()  # the import's garbage gone, the pools below take the lowest free blocks
    net = Stack(link, ip=config.IP or None, prefix=config.PREFIX, gateway=config.GATEWAY,
                hostname=getattr(config, "HOSTNAME", None), **getattr(config, "STACK", {}))
    net.active(True)  # DHCP if there is no address; <hostname>.local answers either way
    if not config.IP:
        print("DHCP: asking for an address as %s" % net.config("hostname"))
        start = port.ticks_ms()
        said = 0
        while not net.isconnected():  # Ctrl-C leaves to the REPL, `net` as it is
            due = net.poll()
            net.wait(50 if due is None or due > 50 else due)
            waited = port.ticks_diff(port.ticks_ms(), start) // 1000
            if waited >= said + DHCP_PROGRESS_S:
                said = waited
                print("DHCP: no lease yet after %d s (is a DHCP server on the LAN?)" % said)
        ip, mask, gw, dns = net.ifconfig()
        print("DHCP: %s mask %s gateway %s dns %s" % (ip, mask, gw, dns))
    print("name: %s.local" % net.config("hostname"))
    return net


# The Stack first: its pools (TCBs, rings, frame buffers) are the largest blocks a board
# ever allocates, and a heap the code of the modules below is already spread through may no
# longer have them in one piece (tools/mcu_heap.py measures the largest free block).
net = bring_up()
gc.collect()
import asyncio  # noqa: E402

from stack import aio, services  # noqa: E402

server = None


async def serve():
    global server
    factory, port = services.SERVICES[config.SERVICE]
    port = config.PORT or port
    server = await aio.start_server(net, factory(net), "0.0.0.0", port)
    print("READY %s on %s:%d" % (config.SERVICE, net.ifconfig()[0], port))
    # Started: boot.py's 8 KB collection threshold kept the code in one piece; from here
    # on a quarter of the free heap (fewer collections per segment, and what connections
    # keep still lands in the first quarter of the free heap, the rest stays one block).
    gc.collect()
    try:
        gc.threshold(max(8192, gc.mem_free() // 4))
    except AttributeError:  # pragma: no cover - a port without MICROPY_GC_ALLOC_THRESHOLD
        pass
    while True:
        await asyncio.sleep(3600)


def resume():
    """Serve again after Ctrl-C: the event loop goes on with every task it had."""
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        print("stopped")


def main():
    if getattr(config, "CAPTURE", 0) or getattr(config, "TRACE", False):
        from stack import debug

        if config.CAPTURE:
            debug.capture(net, size=config.CAPTURE)
        if config.TRACE:
            debug.trace(net)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped: `net` is the stack; resume() serves again")


main()
