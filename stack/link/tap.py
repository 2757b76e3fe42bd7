# TAP link (host only, CPython): Ethernet frames to and from a Linux TAP device.
# SPDX-License-Identifier: MIT
#
#   link = Tap("tap0", mtu=1500)                   # in this thread's network namespace
#   link = Tap("st0", netns="mytest", mac=b"\x02\x00\x00\x00\x00\x02")
#
# `mac` is OUR stack's Ethernet address, not the kernel tap interface's (that one belongs to
# the kernel side, which ARPs for us and sends to `mac`). Default: a random locally
# administered unicast address (first byte 0x02). `mtu` is the IP MTU, as on the kernel
# interface: frames are up to mtu + 14 bytes (no FCS, no VLAN tag).
#
# Everything else (non-persistent device, netns=, MTU, errors, CPython only) is as in tun.py.

from .tun import _IFF_NO_PI, _IFF_TAP, _TunBase


def random_mac():
    """A random locally administered unicast MAC: first byte 0x02, five random bytes."""
    try:
        from os import urandom
    except ImportError:  # pragma: no cover
        from uos import urandom
    return b"\x02" + bytes(urandom(5))


def check_mac(mac):
    mac = bytes(mac)
    if len(mac) != 6 or mac[0] & 1:
        raise ValueError("mac must be 6 bytes, unicast (first byte even), got %r" % (mac,))
    return mac


class Tap(_TunBase):
    """Ethernet link on a Linux TAP device: recv_into/send move whole Ethernet frames."""

    _KIND = "TAP"
    _FLAGS = _IFF_TAP | _IFF_NO_PI

    def __init__(self, name="tap0", mtu=1500, mac=None, netns=None):
        self.mac = random_mac() if mac is None else check_mac(mac)
        _TunBase.__init__(self, name, mtu, netns)
