# A TCP/IPv4 stack for MicroPython boards (W5500 in MACRAW mode) and CPython hosts.
# SPDX-License-Identifier: MIT
#
#     from stack import Stack, SHUT_WR
#     net = Stack(link, ip="10.0.0.2", prefix=24, gateway="10.0.0.1")
#     s = net.socket(); s.connect(("10.0.0.1", 5000)); s.send(b"hi"); s.close()
#
# See DESIGN.md for the contract; README.md for what is and is not implemented.

# Every module here says `from micropython import const`: MicroPython's compiler inlines
# const(), and its built-in `micropython` module is used untouched. CPython has no such
# module, so before any of them is imported, this registers the one they need: const(x)
# returns x. Nothing else: heap_lock() and the viper emitter mean nothing on CPython, and
# code that wants them already detects them (ImportError, AttributeError).
try:
    import micropython as _micropython
except ImportError:  # pragma: no cover - CPython
    import sys
    import types

    _micropython = types.ModuleType("micropython", "CPython's const(), from stack/__init__.py")
    _micropython.const = lambda x: x
    sys.modules["micropython"] = _micropython

from .iface import AF_INET, SOCK_DGRAM, SOCK_STREAM, Stack
from .sock import (IPPROTO_TCP, POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_RD, SHUT_RDWR,
                   SHUT_WR, SO_ERROR, SO_KEEPALIVE, SOL_SOCKET, TCP_NODELAY, Socket)

__version__ = "0.1.0"


def install(net):
    """Make stack.usocket, bound to net, the `socket` and `usocket` module; return it.

    Libraries that `import socket` afterwards (requests, umqtt, asyncio's open_connection
    and start_server, which import it on each call) then run over this stack.
    """
    from . import usocket

    return usocket.install(net)
