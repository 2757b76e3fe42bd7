# AF_PACKET link (host only): raw Ethernet frames on an existing Linux interface.
# SPDX-License-Identifier: MIT
#
#   link = Packet("veth1")            # CPython or the MicroPython unix port
#
# Runs on CPython AND on the MicroPython unix port, whose `socket` module has no AF_PACKET
# names but takes the numeric family (17) and a raw `struct sockaddr_ll` for bind(). No
# namespace switching here: run the process in the right namespace (`ip netns exec`), or on
# CPython create the link inside host_tests/netns.py's `inside(name)`.
#
# `mac` is OUR stack's Ethernet address, not the interface's (the interface's address stays
# the kernel's): default a random locally administered unicast one (first byte 0x02). The
# socket asks for promiscuous mode (PACKET_MR_PROMISC, undone when the socket closes) so that
# frames to `mac` arrive even on NICs that filter by their own address. `mtu` is the IP MTU.
# The interface must be up (the caller's job, like addresses on the kernel side).
#
# Outgoing frames: an ETH_P_ALL socket also sees frames the kernel *sends* on the interface
# (pkttype PACKET_OUTGOING), which must not count as input. The kernel never loops a
# socket's own frames back to itself; frames sent by others on the interface are filtered
# in the kernel with setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING) (Linux 4.20+), on both
# interpreters. recvfrom() would also tell them apart (CPython: pkttype in the address tuple;
# MicroPython: the raw sockaddr_ll bytes, pkttype at offset 10) but allocates an address
# per frame, so it is not used. On a kernel without PACKET_IGNORE_OUTGOING we fall back to
# dropping frames whose source MAC is ours or the interface's own (`self.filter` says which
# filter is active: "kernel" or "source-mac").
#
# Interpreter differences, detected by feature, not by name:
# - receive: CPython sockets have recv_into() (raises BlockingIOError, errno EAGAIN, when
#   empty): it fills the caller's buffer, no per-frame allocation. MicroPython unix sockets
#   lack recv_into, and their readinto() is a stream read that keeps reading datagrams
#   until it has the bytes asked for (two waiting frames come back glued, the second one
#   cut off). recv() returns one frame but costs about 15 us per 1514-byte frame there
#   (measured: making a 1514-byte bytes object alone takes 2.7 us, a bytearray 0.6 us), more
#   than the stack spends on the segment. So MicroPython first peeks at the frame's first 18 bytes (a small
#   recv with MSG_PEEK), takes the frame's length from them (IPv4: 14 + total length; ARP:
#   42), and then reads exactly that many bytes with readinto(buf, n): one datagram, no
#   glue, about 3 us. Ethernet padding beyond that length is cut off by the kernel, as it
#   should be. Other frame types are consumed with a 1-byte read and skipped (counted in
#   `self.skipped`). A corrupt IPv4 header claiming more bytes than its frame has can glue
#   the next waiting frame onto it; the checksum then fails and TCP resends.
# - send: socket.send() on both; it takes a memoryview without copying.
# - ifindex: CPython's socket.if_nametoindex() asks the kernel in the current thread's
#   namespace (needed after setns(): /sys still shows the namespace it was mounted in);
#   MicroPython reads /sys/class/net/<ifname>/ifindex (`ip netns exec` remounts /sys).

import socket
import struct

try:
    import errno as _errno
except ImportError:  # pragma: no cover
    import uerrno as _errno

from .tap import check_mac, random_mac

_AF_PACKET = 17
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_PROMISC = 1
_PACKET_IGNORE_OUTGOING = 23

_EPERM = 1
_ENOENT = 2
_EACCES = 13
_ENODEV = 19
_ENXIO = 6
_EAGAIN = getattr(_errno, "EAGAIN", 11)
_EWOULDBLOCK = getattr(_errno, "EWOULDBLOCK", _EAGAIN)
_ENOBUFS = getattr(_errno, "ENOBUFS", 105)
_ENETDOWN = 100
_MAX_SKIP = 64  # frames skipped in one recv_into() (looped-back or of other types)
_MSG_PEEK = 2
_PEEK_LEN = 18  # Ethernet header and the start of an IPv4 header, up to its total length
_ARP_FRAME_LEN = 42  # Ethernet header + an ARP packet for IPv4 over Ethernet
_SKIPPED = -1  # _readinto's answer for a frame consumed but not returned


def _err(e):
    # errno of an OSError on either interpreter.
    n = getattr(e, "errno", None)
    return n if n is not None else (e.args[0] if e.args else 0)


def _htons(x):
    return struct.unpack("@H", struct.pack(">H", x))[0]


def _ifindex(ifname):
    try:
        nametoindex = socket.if_nametoindex  # CPython
    except AttributeError:  # MicroPython unix
        nametoindex = None
    if nametoindex is not None:
        try:
            return nametoindex(ifname)
        except OSError:
            raise OSError(_ENODEV, "no such interface %r in this network namespace "
                          "(see `ip link`)" % ifname) from None
    try:
        with open("/sys/class/net/%s/ifindex" % ifname) as f:
            return int(f.read())
    except (OSError, ValueError):
        raise OSError(_ENODEV, "no such interface %r in this network namespace "
                      "(see `ip link`)" % ifname) from None


def _ifmac(ifname, sock):
    # The interface's own MAC (for the fallback outgoing filter).
    try:
        return bytes(sock.getsockname()[4][:6])  # CPython: (ifname, proto, pkttype, hatype, addr)
    except Exception:
        pass
    try:
        with open("/sys/class/net/%s/address" % ifname) as f:
            text = f.read().strip()
        return bytes(int(x, 16) for x in text.split(":"))
    except Exception:
        return None


class Packet:
    """Ethernet link on an AF_PACKET raw socket bound to interface `ifname`."""

    def __init__(self, ifname, mtu=1500, mac=None):
        self.name = ifname
        self.mtu = mtu
        self.mac = random_mac() if mac is None else check_mac(mac)
        self.drops = 0  # frames send() could not hand to the kernel
        self.skipped = 0  # frames of other types (not IPv4 or ARP), MicroPython only
        if not ifname or len(ifname) > 15 or "/" in ifname:
            raise OSError(_ENODEV, "no such interface %r (names are 1..15 characters)"
                          % (ifname,))
        ifindex = _ifindex(ifname)
        proto = _htons(_ETH_P_ALL)
        try:
            s = socket.socket(_AF_PACKET, socket.SOCK_RAW, proto)
        except OSError as e:
            if _err(e) in (_EPERM, _EACCES):
                raise OSError(_err(e), "AF_PACKET socket on %r needs root or CAP_NET_RAW "
                              "(run as root, or `setcap cap_net_raw+ep` the interpreter)"
                              % ifname) from None
            raise OSError(_err(e), "AF_PACKET socket on %r: %s" % (ifname, e)) from None
        try:
            # struct sockaddr_ll: family (native u16), protocol (network order), ifindex
            # (native int), hatype (u16), pkttype (u8), halen (u8), addr[8].
            try:
                s.bind((ifname, _ETH_P_ALL))  # CPython's form (resolves the name itself)
            except (TypeError, ValueError):
                s.bind(struct.pack("@HHiHBB8s", _AF_PACKET, proto, ifindex, 0, 0, 0, b""))
        except OSError as e:
            s.close()
            if _err(e) in (_ENODEV, _ENXIO):
                raise OSError(_ENODEV, "no such interface %r in this network namespace "
                              "(see `ip link`)" % ifname) from None
            raise OSError(_err(e), "cannot bind AF_PACKET socket to %r: %s"
                          % (ifname, e)) from None
        s.setblocking(False)
        try:
            s.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            self.filter = "kernel"
            self._skip = None
        except OSError:  # Linux before 4.20 (test_links.py forces this path)
            self.filter = "source-mac"
            self._skip = _ifmac(ifname, s) or self.mac
        try:
            # struct packet_mreq: ifindex (int), type (u16), alen (u16), address[8].
            s.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP,
                         struct.pack("@iHH8s", ifindex, _PACKET_MR_PROMISC, 0, b""))
        except OSError:  # pragma: no cover - veth and TAP deliver everything anyway
            pass
        self._sock = s
        self.ifindex = ifindex
        try:
            self._readinto = s.recv_into  # CPython
        except AttributeError:
            # MicroPython unix: peek at the header, then read exactly one frame (see top).
            self._recv = s.recv
            self._stream_readinto = s.readinto
            self._readinto = self._recv_peeked

    def _recv_peeked(self, buf):
        # OSError(EAGAIN) from the peek when nothing waits.
        head = self._recv(_PEEK_LEN, _MSG_PEEK)
        size = len(buf)
        n = 0
        if len(head) == _PEEK_LEN:
            etype = (head[12] << 8) | head[13]
            if etype == 0x0800:
                n = 14 + ((head[16] << 8) | head[17])
                if n < 34:
                    n = 0
            elif etype == 0x0806:
                n = _ARP_FRAME_LEN
        if n == 0 or n > size:
            # Not a frame the stack takes (or longer than buf): consume it, return nothing
            # readable. One byte read ends the datagram; the kernel drops the rest.
            self._stream_readinto(buf, 1)
            self.skipped += 1
            return _SKIPPED
        return self._stream_readinto(buf, n)

    def fileno(self):
        return self._sock.fileno()

    def recv_into(self, buf):
        """One frame into buf; its length, or 0 when nothing is waiting (never blocks).

        A frame longer than buf is truncated to len(buf) (the stack then drops it)."""
        for _ in range(_MAX_SKIP):
            try:
                n = self._readinto(buf)
            except OSError as e:
                if _err(e) in (_EAGAIN, _EWOULDBLOCK):
                    return 0
                if _err(e) == _ENETDOWN:  # interface went down: nothing to read
                    return 0
                raise
            if n == _SKIPPED:
                continue
            if not n:
                return 0
            if self._skip is not None and n >= 12 and self._from_us(buf):
                continue  # fallback filter: an outgoing frame looped back, not input
            return n
        return 0  # only our own frames so far; the rest waits for the next call

    def _from_us(self, buf):
        # Source MAC (bytes 6..11) equals ours or the interface's: compare without slicing.
        mac = self.mac
        own = self._skip
        same_mac = same_own = True
        for i in range(6):
            b = buf[6 + i]
            if b != mac[i]:
                same_mac = False
            if b != own[i]:
                same_own = False
        return same_mac or same_own

    def send(self, buf):
        """Send one Ethernet frame; a frame the kernel cannot take now is dropped, counted."""
        try:
            self._sock.send(buf)
        except OSError as e:
            if _err(e) in (_EAGAIN, _EWOULDBLOCK, _ENOBUFS, _ENETDOWN):
                self.drops += 1
                return
            raise

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Packet %s mtu=%d filter=%s>" % (self.name, self.mtu, self.filter)
