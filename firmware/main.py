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

import asyncio

import config
from stack import Stack, aio, services


def bring_up():
    """The board's link and a Stack on it, addressed from config.py."""
    board = __import__("boards." + config.BOARD, None, None, ("link",))
    link = board.link(getattr(config, "MAC", None))
    # DHCP goes here: with config.IP None, take a lease on `link` (address, prefix,
    # gateway) before the Stack is made. Not implemented yet: a static address is needed.
    if not config.IP:
        raise ValueError("config.IP is None but DHCP is not implemented yet")
    return Stack(link, ip=config.IP, prefix=config.PREFIX, gateway=config.GATEWAY,
                 **getattr(config, "STACK", {}))


net = bring_up()
server = None


async def serve():
    global server
    factory, port = services.SERVICES[config.SERVICE]
    port = config.PORT or port
    server = await aio.start_server(net, factory(net), "0.0.0.0", port)
    print("READY %s on %s:%d" % (config.SERVICE, config.IP, port))
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
