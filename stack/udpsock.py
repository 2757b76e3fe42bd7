# UDP sockets (DESIGN.md section 8): bind, sendto, recvfrom, recv, connect, send.
# SPDX-License-Identifier: MIT
#
# A socket takes a slot of the stack's fixed UDP pool (udp.py) when it is bound, explicitly
# or by its first sendto()/connect(), and gives it back on close(). Blocking calls drive
# stack.poll() until done or timed out, as TCP sockets do (sock.py); non-blocking ones
# raise OSError(EAGAIN). On MicroPython a UDP socket is a stream too (sock.py): select.poll
# takes it; readinto() gives one datagram, or None when non-blocking and none waits.

from . import ipv4, port
from .sock import POLLIN, POLLOUT, SO_ERROR, SOL_SOCKET, Socket, _bytes, _Stream, stream_ioctl
from .udp import UNICAST


class UDPSocket(_Stream):
    def __init__(self, stack):
        self._stack = stack
        self._slot = -1
        self._lport = 0
        self._peer = None  # (hi, lo, port) after connect(): only it is heard, send() goes to it
        self._timeout_ms = -1
        self._closed = False

    def __repr__(self):
        return "<UDPSocket port %d>" % self._lport

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    setblocking = Socket.setblocking
    settimeout = Socket.settimeout
    _wait = Socket._wait

    def setsockopt(self, level, opt, value):
        pass  # SO_REUSEADDR, SO_BROADCAST...: accepted, as code for other stacks sets them

    def getsockopt(self, level, opt):
        if level == SOL_SOCKET and opt == SO_ERROR:
            return 0
        raise OSError(port.EOPNOTSUPP)

    def _check(self):
        if self._closed:
            raise OSError(port.EBADF)

    def bind(self, addr):
        self._check()
        ip, p = addr
        st = self._stack
        if ip not in ("", "0.0.0.0") and ipv4.aton(ip) != st.ip:
            raise OSError(port.EINVAL)
        if not isinstance(p, int) or not 0 <= p <= 65535:
            raise ValueError("port must be 0..65535, got %r" % (p,))
        if self._slot >= 0:
            raise OSError(port.EINVAL)
        if p and st.udp.in_use(p):
            raise OSError(port.EADDRINUSE)
        self._slot = st.udp.take_slot(self)
        self._lport = p or st.udp.ephemeral_port()

    def _bound(self):
        self._check()
        if self._slot < 0:
            self.bind(("0.0.0.0", 0))

    def _accepts(self, shi, slo, sport, kind):
        """udp.py asks: is this datagram for us? (connected: only from the peer)"""
        pr = self._peer
        return pr is None or (pr[0] == shi and pr[1] == slo and pr[2] == sport
                              and kind == UNICAST)

    def connect(self, addr):
        hi, lo, p = _address(addr)
        self._bound()
        self._peer = (hi, lo, p)
        # Datagrams from others queued before connect() are dropped, as on Linux.

    def getsockname(self):
        st = self._stack
        return (ipv4.ntoa(st.ip_hi, st.ip_lo), self._lport)

    def getpeername(self):
        if self._peer is None:
            raise OSError(port.ENOTCONN)
        return (ipv4.ntoa(self._peer[0], self._peer[1]), self._peer[2])

    # ---- sending ------------------------------------------------------------------------

    def sendto(self, data, addr):
        hi, lo, p = _address(addr)
        return self._send(data, hi, lo, p)

    def send(self, data):
        if self._peer is None:
            raise OSError(port.ENOTCONN)
        return self._send(data, self._peer[0], self._peer[1], self._peer[2])

    write = send

    def makefile(self, *args, **kw):
        return self

    def ioctl(self, req, arg):
        return stream_ioctl(self, req, arg)

    def _send(self, data, hi, lo, p):
        data = _bytes(data)
        self._bound()
        if not self._stack.has_address():
            raise OSError(port.ENETUNREACH)  # no address yet (DHCP still asking)
        udp = self._stack.udp
        n = len(data)
        if n > len(udp.payload):
            raise OSError(port.EMSGSIZE)  # no fragmentation here
        udp.payload[:n] = data
        udp.send(self._lport, hi, lo, p, n)
        return n

    # ---- receiving ----------------------------------------------------------------------

    def _ready(self):
        return self._slot >= 0 and self._stack.udp.queued(self._slot) >= 0

    def recvfrom_into(self, buf, nbytes=0):
        self._bound()
        if not self._ready():
            self._wait(self._ready, port.EAGAIN)
        dest = memoryview(buf)[:nbytes] if nbytes else buf
        got, hi, lo, p = self._stack.udp.dequeue(self._slot, dest)
        return got, (ipv4.ntoa(hi, lo), p)

    def recvfrom(self, n):
        buf = bytearray(n)
        got, addr = self.recvfrom_into(buf)
        return (bytes(buf[:got]) if got < n else bytes(buf)), addr

    def recv_into(self, buf, nbytes=0):
        return self.recvfrom_into(buf, nbytes)[0]

    def recv(self, n):
        return self.recvfrom(n)[0]

    def readinto(self, buf, nbytes=0):
        """One datagram into buf; None if non-blocking and none waits."""
        self._bound()
        if self._timeout_ms == 0 and not self._ready():
            return None
        return self.recv_into(buf, nbytes)

    def read(self, n=1500):
        buf = bytearray(n)
        got = self.readinto(buf)
        if got is None:
            return None
        return bytes(buf[:got]) if got < n else bytes(buf)

    def poll_flags(self):
        if self._closed:
            return 0
        return (POLLIN if self._ready() else 0) | POLLOUT

    def readable(self):
        return self._ready()

    def writable(self):
        return not self._closed

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._slot >= 0:
            self._stack.udp.free_slot(self._slot)
            self._slot = -1


def _address(addr):
    """(hi, lo, port) of an (ip, port) tuple; the ip a dotted quad (names: getaddrinfo)."""
    ip, p = addr
    if not isinstance(p, int) or not 0 < p <= 65535:
        raise ValueError("port must be 1..65535, got %r" % (p,))
    hi, lo = ipv4.halves_of(ipv4.aton(ip))
    return hi, lo, p
