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

__version__ = "0.1.0"

# What `from stack import *` gives: the socket layer's names too (Socket through
# __getattr__ below, which loads sock.py then), not the modules that happen to be loaded.
__all__ = ("Stack", "Socket", "install", "AF_INET", "SOCK_STREAM", "SOCK_DGRAM", "SHUT_RD",
           "SHUT_WR", "SHUT_RDWR", "SOL_SOCKET", "SO_KEEPALIVE", "SO_ERROR", "IPPROTO_TCP",
           "TCP_NODELAY", "POLLIN", "POLLOUT", "POLLERR", "POLLHUP")

# The socket layer's names, with stack/sock.py's values (Linux's, and select.poll's bits;
# host_tests/test_import.py checks they agree). They are repeated here so that `import stack`
# does not load sock.py: from .mpy files that is 8 KB of heap, and a board that builds its
# Stack first gets the pools allocated before that code (net.socket() loads it).
SHUT_RD = 0
SHUT_WR = 1
SHUT_RDWR = 2
SOL_SOCKET = 1
SO_KEEPALIVE = 9
SO_ERROR = 4
IPPROTO_TCP = 6
TCP_NODELAY = 1
POLLIN = 0x001
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010


import sys as _sys

# The package's modules that __getattr__ below imports when asked for (one string, not a
# tuple: from .mpy every constant is a heap object). host_tests/test_import.py checks it
# against the files.
_SUBMODULES = (" aio aio_streams arp assembler config debug dhcp dns ether icmp iface ipv4"
               " link mdns nic nic_set port recycle ringbuf ringbuf_obj seq services sock"
               " statnames stats tcp tcp_probes tcpfields tcpseg timewait trace udp udpsock"
               " usocket ")


def __getattr__(name):
    # PEP 562: `stack.Socket` (and `from stack import Socket`) loads sock.py on first use.
    if name == "Socket":
        from .sock import Socket

        return Socket
    if name == "_lazy":
        return True
    if " " in name or (" %s " % name) not in _SUBMODULES:
        # Not a module of ours: AttributeError, so getattr(stack, name, default), hasattr()
        # and dir() work (MicroPython's dir() asks for every string it knows). On
        # MicroPython `from stack import no_such_name` raises it too (CPython: ImportError).
        raise AttributeError(name)
    # MicroPython's `from . import nic` asks the package here before it imports the
    # submodule (py/runtime.c, mp_import_from), and lets an AttributeError through: import
    # it, as it would. CPython asks first too, but imports the module itself when told
    # AttributeError; its ModuleNotFoundError names the module, MicroPython's does not.
    full = __name__ + "." + name
    try:
        __import__(full)
    except ImportError as e:
        if getattr(e, "name", None) == full:  # CPython: no such module
            raise AttributeError(name) from None
        raise  # MicroPython: a module of ours not on the board (`from stack import dhcp`
        # without the LAN package) stays an ImportError, for code that tests for it
    return _sys.modules[full]


# A MicroPython built without module __getattr__ (MICROPY_MODULE_GETATTR, off below the
# "core features" ROM level) would never call the one above: load the socket layer now.
try:
    _lazy = getattr(_sys.modules[__name__], "_lazy", False)
except (KeyError, AttributeError):  # pragma: no cover
    _lazy = False
if not _lazy:  # pragma: no cover
    from .sock import Socket
del _lazy


def install(net):
    """Make stack.usocket, bound to net, the `socket` and `usocket` module; return it.

    Libraries that `import socket` afterwards (requests, umqtt, asyncio's open_connection
    and start_server, which import it on each call) then run over this stack.
    """
    from . import usocket

    return usocket.install(net)
