# The `socket` module for the stack (DESIGN.md section 9), bound to one Stack by install().
# SPDX-License-Identifier: MIT
#
#     import stack
#     socket = stack.install(net)   # sys.modules["socket"] and ["usocket"] are now this
#     import requests               # unmodified library code runs over our TCP
#
# Names and values are those of MicroPython's socket module on the unix port (Linux
# numbering, as CPython's); setsockopt() also takes lwIP's SO_REUSEADDR.

from micropython import const

from .iface import AF_INET, SOCK_DGRAM, SOCK_STREAM
from .sock import (IPPROTO_TCP, SO_BROADCAST, SO_ERROR, SO_KEEPALIVE, SO_REUSEADDR,
                   SOL_SOCKET, TCP_NODELAY)

AF_INET6 = const(10)
SOCK_RAW = const(3)
IPPROTO_IP = const(0)
IPPROTO_UDP = const(17)
IP_ADD_MEMBERSHIP = const(35)
MSG_PEEK = const(2)
MSG_DONTWAIT = const(0x40)

error = OSError

_net = None  # the Stack install() bound this module to


def _stack():
    if _net is None:
        raise OSError(19)  # ENODEV: stack.install(net) was not called
    return _net


def socket(af=AF_INET, type=SOCK_STREAM, proto=0):
    """A TCP (SOCK_STREAM) or UDP (SOCK_DGRAM) socket of the installed stack."""
    return _stack().socket(af, type, proto)


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    """[(af, type, proto, "", (ip, port))]; a name is resolved through the stack's DNS."""
    return _stack().getaddrinfo(host, port, af, type, proto, flags)


def install(net):
    """Bind this module to net and make it `socket` and `usocket` for later imports."""
    import sys

    global _net
    _net = net
    mod = sys.modules[__name__]
    sys.modules["socket"] = mod
    sys.modules["usocket"] = mod
    return mod
