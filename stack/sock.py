# The socket API (DESIGN.md section 4): BSD-like calls over the stack's TCBs.
# SPDX-License-Identifier: MIT
#
# Blocking calls drive stack.poll() themselves until done or timed out; non-blocking ones
# raise OSError(EAGAIN) or OSError(EINPROGRESS). How a connection ended is always told
# apart: recv() gives b"" after the peer's FIN, raises ECONNRESET after an RST and
# ETIMEDOUT when retransmissions ran out.
#
# On MicroPython a socket is also a stream (DESIGN.md section 9): it derives from io.IOBase,
# whose C stream protocol calls our readinto(), write() and ioctl(), so select.poll, ssl/tls,
# asyncio's IOQueue and websocket take it. Python code gets MicroPython's stream semantics:
# read(n)/readinto(buf) loop to n on a blocking socket and give None on a non-blocking one
# with nothing waiting; write() writes everything. recv()/send() stay BSD single-shot.

from micropython import const

from . import ipv4, port
from .tcp import (ACK_NOW, CLOSE_WAIT, CLOSED, ENDED, ESTABLISHED, FIN2_AT, FIN_SEQ,
                  FIN_WAIT_1, FIN_WAIT_2, IN_USE, KEEPALIVE, KEEPALIVE_AT, LAST_ACK, LPORT,
                  NODELAY, OFF, ORPHAN, ORPHAN_AT, RD_SHUT, RIP_HI, RIP_LO, RPORT,
                  RX_COUNT, RX_FIN, STATE, STATE_NAMES, SYN_RECEIVED, SYN_SENT, TX_COUNT, TX_SIZE)
from .tcp import SO_ERROR as _SO_ERROR_FIELD  # SO_ERROR here is the socket option

# Builtins as module globals for send(), which runs for every write: a builtin is found
# after the module's globals, a slow search on MicroPython (1.2 k instructions more per
# isinstance() on the Cortex-M0).
_isinstance = isinstance
_str = str

SHUT_RD = const(0)
SHUT_WR = const(1)
SHUT_RDWR = const(2)
SOL_SOCKET = const(1)  # Linux values, so code written for CPython's socket module reads well
SO_KEEPALIVE = const(9)
SO_ERROR = const(4)
SO_REUSEADDR = const(2)
SO_BROADCAST = const(6)
IPPROTO_TCP = const(6)
TCP_NODELAY = const(1)
_SOF_REUSEADDR = const(4)  # lwIP's SO_REUSEADDR, as bare-metal MicroPython numbers it

# Readiness bits, as select.poll's.
POLLIN = const(0x001)
POLLOUT = const(0x004)
POLLERR = const(0x008)
POLLHUP = const(0x010)
POLLNVAL = const(0x020)

# ioctl requests of MicroPython's stream protocol (py/stream.h).
_MP_STREAM_FLUSH = const(1)
_MP_STREAM_POLL = const(3)
_MP_STREAM_CLOSE = const(4)

# MicroPython's io.IOBase is a bare native type that hands its C stream calls to our
# methods; CPython's is a whole file API (read, readline, close on __del__...): not that.
try:
    from io import IOBase as _Stream

    if hasattr(_Stream, "readline"):  # pragma: no cover - CPython
        _Stream = object
except (ImportError, AttributeError):  # pragma: no cover
    _Stream = object


def _err(code):
    return OSError(code)


def _bytes(data):
    # write(str) is MicroPython stream behaviour (requests and umqtt write str).
    return data.encode() if isinstance(data, str) else data


def stream_ioctl(sock, req, arg):
    """The stream protocol's ioctl for TCP and UDP sockets: an int, negative = -errno.

    POLL answers the requested subset of the ready bits, plus POLLERR/POLLHUP always (as
    lwIP does); it drives the stack first, so select.poll() alone makes progress. Any
    other request (the unix port's GET_FILENO probe among them) gets -EINVAL: a result of
    0 or more would be taken as a file descriptor and polled instead of us.
    """
    if req == _MP_STREAM_POLL:
        if sock._closed:
            return POLLNVAL
        sock._stack.poll()
        return sock.poll_flags() & (arg | POLLERR | POLLHUP)
    if req == _MP_STREAM_CLOSE:
        try:
            sock.close()
        except MemoryError:
            # From a finaliser (an SSLSocket's __del__ during gc): the heap is locked, so
            # the FIN or RST could not be built. The socket has let go of its TCB, an
            # orphan now, and the next poll() sends what close() could not.
            pass
        return 0
    if req == _MP_STREAM_FLUSH:
        return 0
    return -port.EINVAL


# Readiness tests as module functions taking the TCB: no closure over send()'s locals (a
# captured local becomes a heap cell on every call on MicroPython, even when unused).
def _send_ready(tcb):
    v = tcb.v
    s = v[STATE]
    return v[ENDED] or s == CLOSED or (s != SYN_SENT and s != SYN_RECEIVED
                                         and v[TX_COUNT] < v[TX_SIZE])


def _recv_ready(tcb):
    v = tcb.v
    return v[RX_COUNT] or v[RX_FIN] or v[RD_SHUT] or v[ENDED] or v[STATE] == CLOSED


class Socket(_Stream):
    def __init__(self, stack):
        self._stack = stack
        self._tcb = None
        self._lport = 0
        self._listening = False
        self._backlog = None  # TCBs of not-yet-accepted connections, oldest first
        self._backlog_max = 0
        self._timeout_ms = -1  # -1 blocks forever, 0 is non-blocking
        self._closed = False
        self._lost = False  # the stack took the connection back (recycle.close_wait)
        self._wr_shut = False
        self._nodelay = False
        self._keepalive = stack.cfg.keepalive_ms is not None
        self._rip = None  # (ip, port) once connected, for getpeername()/state after CLOSED

    def __repr__(self):
        return "<Socket %s %s>" % (self.state, self._rip)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- options -----------------------------------------------------------------------

    def setblocking(self, flag):
        self._timeout_ms = -1 if flag else 0

    def settimeout(self, seconds):
        if seconds is None:
            self._timeout_ms = -1
        elif seconds < 0:
            raise ValueError("timeout must be >= 0 or None")
        else:
            self._timeout_ms = int(seconds * 1000)

    def setsockopt(self, level, opt, value):
        if level == SOL_SOCKET and (opt == SO_REUSEADDR or opt == _SOF_REUSEADDR):
            pass  # accepted (asyncio's start_server sets it); TIME-WAIT never blocks bind()
        elif level == IPPROTO_TCP and opt == TCP_NODELAY:
            self._nodelay = bool(value)
            if self._tcb:
                self._tcb.v[NODELAY] = self._nodelay
                self._stack.dirty = True  # Nagle may have held data back: poll() sends it
        elif level == SOL_SOCKET and opt == SO_KEEPALIVE:
            if value and self._stack.cfg.keepalive_ms is None:
                raise ValueError("keepalive needs Stack(keepalive_ms=...)")
            self._keepalive = bool(value)
            if self._tcb:
                self._tcb.v[KEEPALIVE] = self._keepalive
                if not value:
                    self._tcb.v[KEEPALIVE_AT] = OFF
        else:
            raise _err(port.EOPNOTSUPP)

    def getsockopt(self, level, opt):
        if level == SOL_SOCKET and opt == SO_ERROR:
            tcb = self._tcb
            if tcb is None:
                return 0
            e = tcb.v[_SO_ERROR_FIELD]
            tcb.v[_SO_ERROR_FIELD] = 0
            return e
        if level == IPPROTO_TCP and opt == TCP_NODELAY:
            return int(self._nodelay)
        raise _err(port.EOPNOTSUPP)

    # ---- state -------------------------------------------------------------------------

    @property
    def state(self):
        """RFC 9293 state name: 'ESTABLISHED', 'TIME-WAIT', ... ('LISTEN' for listeners)."""
        if self._listening:
            return "LISTEN"
        tcb = self._tcb
        if tcb is not None and tcb.v[STATE] != CLOSED:
            return STATE_NAMES[tcb.v[STATE]]
        if self._rip is not None and self._lport:
            st = self._stack
            rhi, rlo = ipv4.halves_of(ipv4.aton(self._rip[0]))
            if st.tw.find(rhi, rlo, self._lport, self._rip[1]) >= 0:
                return "TIME-WAIT"
        return "CLOSED"

    def getsockname(self):
        st = self._stack
        return (ipv4.ntoa(st.ip_hi, st.ip_lo), self._lport)

    def getpeername(self):
        if self._rip is None:
            raise _err(port.ENOTCONN)
        return self._rip

    def poll_flags(self):
        """Readiness as select.poll bits: POLLIN, POLLOUT, POLLHUP, POLLERR."""
        if self._listening:
            return POLLIN if self._accept_ready() is not None else 0
        tcb = self._tcb
        if tcb is None:
            # never connected (lwIP says HUP too), closed, or taken back by the stack
            return POLLERR | POLLHUP if self._lost else POLLHUP
        v = tcb.v
        flags = 0
        if v[RX_COUNT] or v[RX_FIN] or v[RD_SHUT] or v[ENDED]:
            flags |= POLLIN
        s = v[STATE]
        if ((s == ESTABLISHED or s == CLOSE_WAIT) and not self._wr_shut
                and v[TX_COUNT] < v[TX_SIZE]):
            flags |= POLLOUT
        if v[ENDED] or v[_SO_ERROR_FIELD]:
            flags |= POLLERR
        if v[ENDED] or (v[RX_FIN] and (self._wr_shut or s == CLOSED)):
            flags |= POLLHUP
        return flags

    def readable(self):
        return bool(self.poll_flags() & (POLLIN | POLLERR | POLLHUP))

    def writable(self):
        return bool(self.poll_flags() & (POLLOUT | POLLERR | POLLHUP))

    # ---- waiting -----------------------------------------------------------------------

    def _wait_tcb(self, ready, tcb, err):
        """_wait() for a readiness test of one TCB."""
        self._wait(lambda: ready(tcb), err)

    def _wait(self, ready, err):
        """Poll the stack until ready() is true; raise err at once if non-blocking.

        The timeout runs on the stack's clock and on the real one, whichever passes it
        first: the same on a board, and tests on a virtual clock neither hang nor wait.
        """
        if self._timeout_ms == 0:
            raise _err(err)
        st = self._stack
        start = port.ticks_ms()
        vstart = st.clock()
        while True:
            st.poll()
            if ready():
                return
            t = self._timeout_ms
            if t > 0 and (port.ticks_diff(port.ticks_ms(), start) >= t
                          or port.ticks_diff(st.clock(), vstart) >= t):
                raise _err(port.ETIMEDOUT)
            st.wait(1)

    # ---- passive open ------------------------------------------------------------------

    def bind(self, addr):
        ip, p = addr
        st = self._stack
        if ip not in ("", "0.0.0.0") and ipv4.aton(ip) != st.ip:
            raise _err(port.EINVAL)
        if not isinstance(p, int) or not 0 <= p <= 65535:
            raise ValueError("port must be 0..65535, got %r" % (p,))
        if self._lport:
            raise _err(port.EINVAL)
        if p and st.find_listener(p) is not None:
            raise _err(port.EADDRINUSE)
        self._lport = p

    def listen(self, backlog=1):
        """Accept connections; backlog counts half- and fully-open ones not yet accepted.

        listen(0) allows one, as Linux does (smoltcp's and lwIP's users trip on 0).
        """
        from .config import MAX_BACKLOG

        st = self._stack
        if self._tcb is not None:
            raise _err(port.EISCONN)
        if not self._lport:
            raise _err(port.EINVAL)  # no ephemeral listeners: say which port
        if self._listening:
            return
        if st.find_listener(self._lport) is not None:
            raise _err(port.EADDRINUSE)
        if backlog < 1:
            backlog = 1
        self._backlog_max = backlog if backlog < MAX_BACKLOG else MAX_BACKLOG
        self._backlog = []
        self._listening = True
        st.listeners.append(self)

    def _has_room(self):
        return len(self._backlog) < self._backlog_max

    def _add_pending(self, tcb):
        self._backlog.append(tcb)

    def _ready(self, tcb):
        pass  # accept() scans the backlog in order; nothing to move

    def _forget(self, tcb):
        if self._backlog is not None and tcb in self._backlog:
            self._backlog.remove(tcb)

    def _accept_ready(self):
        for tcb in self._backlog:
            if tcb.v[STATE] != SYN_RECEIVED:
                return tcb
        return None

    def accept(self):
        if not self._listening:
            raise _err(port.EINVAL)
        self._wait_for(lambda: self._accept_ready() is not None, port.EAGAIN)
        tcb = self._accept_ready()
        self._backlog.remove(tcb)
        tcb.parent = None
        conn = Socket(self._stack)
        conn._attach(tcb, self._timeout_ms)
        return conn, conn._rip

    def _wait_for(self, ready, err):
        if not ready():
            self._wait(ready, err)

    def _attach(self, tcb, timeout_ms):
        self._tcb = tcb
        tcb.owner = self
        self._lport = tcb.v[LPORT]
        self._rip = (ipv4.ntoa(tcb.v[RIP_HI], tcb.v[RIP_LO]), tcb.v[RPORT])
        self._timeout_ms = timeout_ms
        tcb.v[NODELAY] = self._nodelay
        tcb.v[KEEPALIVE] = self._keepalive

    # ---- active open -------------------------------------------------------------------

    def connect(self, addr):
        ip, p = addr
        st = self._stack
        tcb = self._tcb
        if tcb is not None:
            if tcb.v[STATE] == SYN_SENT or tcb.v[STATE] == SYN_RECEIVED:
                if self._timeout_ms == 0:
                    raise _err(port.EALREADY)
            elif tcb.v[ENDED]:
                raise _err(tcb.v[ENDED])
            else:
                raise _err(port.EISCONN)
        else:
            if self._listening:
                raise _err(port.EISCONN)
            if not isinstance(p, int) or not 0 < p <= 65535:
                raise ValueError("port must be 1..65535, got %r" % (p,))
            if not st.has_address():
                raise _err(port.ENETUNREACH)  # no address yet (DHCP still asking)
            rhi, rlo = ipv4.halves_of(ipv4.aton(ip))
            lport = self._lport
            if not lport:
                lport = st.ephemeral_port(rhi, rlo, p)
                if not lport:
                    raise _err(port.EADDRINUSE)
            tcb = st.take_tcb()
            if tcb is None:
                from . import recycle  # a SYN flood must not stop us connecting out either

                if recycle.embryonic(st, None) or recycle.close_wait(st, st.clock()):
                    tcb = st.take_tcb()
            if tcb is None:
                raise _err(port.ENOBUFS)
            self._attach(tcb, self._timeout_ms)
            self._lport = lport
            self._rip = (ip, p)
            tcb.open_active(rhi, rlo, lport, p, st.clock())
        self._wait_for(lambda: tcb.v[STATE] != SYN_SENT and tcb.v[STATE] != SYN_RECEIVED,
                       port.EINPROGRESS)
        if tcb.v[ENDED]:
            raise _err(tcb.v[ENDED])

    # ---- data --------------------------------------------------------------------------

    def _conn(self):
        if self._closed:
            raise _err(port.EBADF)
        tcb = self._tcb
        if tcb is None:
            raise _err(port.ECONNABORTED if self._lost else port.ENOTCONN)
        return tcb

    def send(self, data):
        """Queue what fits in the send ring; return how many bytes were taken."""
        tcb = self._tcb
        if tcb is not None and not self._closed and not _isinstance(data, _str):
            # The common case in a few steps (it is every send(): 15 k instructions fewer
            # on the Cortex-M0): connected, room in the ring, nothing ended or shut.
            v = tcb.v
            s = v[STATE]
            if ((s == ESTABLISHED or s == CLOSE_WAIT) and v[TX_COUNT] < v[TX_SIZE]
                    and not v[ENDED] and not self._wr_shut):
                n = tcb.write(data)
                if n:
                    tcb.output(self._stack.clock())
                return n
        tcb = self._conn()
        if isinstance(data, str):
            data = data.encode()  # as _bytes(), without the call: this is every send()
        if not len(data):
            return 0
        if not _send_ready(tcb):
            self._wait_tcb(_send_ready, tcb, port.EAGAIN)
        if tcb.v[ENDED]:
            raise _err(tcb.v[ENDED])
        if self._wr_shut or tcb.v[FIN_SEQ] >= 0 or tcb.v[STATE] == CLOSED:
            raise _err(port.EPIPE)
        n = tcb.write(data)
        tcb.output(self._stack.clock())
        return n

    def sendall(self, data):
        mv = memoryview(_bytes(data))
        while len(mv):
            n = self.send(mv)
            mv = mv[n:]

    def write(self, data, *args):
        """Stream write: all of data (or data[off:off + n] for write(data, [off,] n)).

        Blocking, it returns when everything is queued, as sendall(). Non-blocking, it
        takes what fits: None if nothing did (the stream protocol's "try again").
        """
        mv = memoryview(_bytes(data))
        if len(args) == 1:
            mv = mv[:args[0]]
        elif len(args) == 2:
            mv = mv[args[0]:args[0] + args[1]]
        total = 0
        while len(mv):
            try:
                n = self.send(mv)
            except OSError as e:
                if e.args[0] == port.EAGAIN and self._timeout_ms == 0:
                    return total if total else None
                raise
            total += n
            mv = mv[n:]
        return total

    def recv(self, n):
        buf = bytearray(n)
        got = self.recv_into(buf)
        return bytes(buf[:got]) if got < n else bytes(buf)

    def recv_into(self, buf, nbytes=0):
        """Read into buf; 0 means the peer closed (EOF). Raises ECONNRESET after an RST."""
        got = self._recv_some(memoryview(buf)[:nbytes] if nbytes else buf)
        if got is None:
            raise _err(port.EAGAIN)
        return got

    def _recv_some(self, buf):
        """One read of what is there (waiting for something if blocking): a count, 0 at
        EOF, None if non-blocking and nothing waits."""
        tcb = self._conn()
        if not tcb.v[RX_COUNT] and not _recv_ready(tcb):  # bytes waiting: ready, no call
            if self._timeout_ms == 0:
                return None
            self._wait_tcb(_recv_ready, tcb, port.EAGAIN)
        got = tcb.read_into(buf)
        if got:
            if tcb.window_update_due():
                tcb.v[ACK_NOW] = True
                tcb.output(self._stack.clock())
            return got
        if tcb.v[ENDED]:
            raise _err(tcb.v[ENDED])
        return 0  # EOF: FIN received, SHUT_RD, or closed without error

    def readinto(self, buf, nbytes=0):
        """Stream read: fill buf (its first nbytes) unless EOF comes first; return the
        count. Non-blocking: what is there, None if nothing (the stream's "try again")."""
        mv = memoryview(buf)
        if nbytes:
            mv = mv[:nbytes]
        want = len(mv)
        got = 0
        while got < want:
            try:
                n = self._recv_some(mv[got:])
            except OSError:
                if got:
                    return got  # the error comes with the next read
                raise
            if n is None:
                return got if got else None
            if not n:
                break
            got += n
        return got

    def read(self, n=-1):
        """Stream read: n bytes (fewer at EOF), or everything to EOF without n."""
        if n is None or n < 0:
            out = bytearray()
            chunk = bytearray(256)
            while True:
                k = self.readinto(chunk)
                if k is None:
                    return bytes(out) if out else None
                if not k:
                    return bytes(out)
                out += chunk if k == len(chunk) else chunk[:k]
        buf = bytearray(n)
        k = self.readinto(buf)
        if k is None:
            return None
        return bytes(buf) if k == n else bytes(buf[:k])

    def readline(self, limit=-1):
        """Stream readline: up to and including b"\n", or what came before EOF."""
        out = bytearray()
        one = bytearray(1)
        while limit < 0 or len(out) < limit:
            k = self.readinto(one)
            if k is None:
                return bytes(out) if out else None
            if not k:
                break
            out += one
            if one[0] == 10:
                break
        return bytes(out)

    def makefile(self, *args, **kw):
        return self  # as MicroPython's: the socket is its own stream

    def ioctl(self, req, arg):
        return stream_ioctl(self, req, arg)

    # ---- closing -----------------------------------------------------------------------

    def shutdown(self, how):
        tcb = self._conn()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise _err(port.EINVAL)
        s = tcb.v[STATE]
        if s == SYN_SENT or s == SYN_RECEIVED or s == CLOSED and not tcb.v[ENDED]:
            raise _err(port.ENOTCONN)
        if how != SHUT_WR:
            tcb.discard_received()
        if how != SHUT_RD and not self._wr_shut:
            self._wr_shut = True
            tcb.close_send(self._stack.clock())

    def close(self):
        """Graceful close: FIN after queued data. RST instead if received data is unread
        (RFC 1122 4.2.2.13, as Linux): the peer learns its data was not consumed."""
        tcb = self._release()
        if tcb is None:
            return
        st = self._stack
        now = st.clock()
        if tcb.unread() and tcb.synchronized():
            st.stats.tcpRstsUnreadData += 1
            tcb.abort(now)
            return
        tcb.close_send(now)
        if tcb.v[STATE] == FIN_WAIT_2 and tcb.v[FIN2_AT] < 0:
            tcb.v[FIN2_AT] = port.ticks_add(now, st.cfg.fin_timeout_ms)

    def lingering_close(self, timeout_ms=2000):
        """Close a server's connection without losing the response it just wrote.

        Plain close() resets the connection if the peer sent data nobody read (RFC 1122
        4.2.2.13), and a reset can destroy the response before the client read it (lwIP on
        the W5500-EVB-Pico, MicroPython issue 17072). This sends our FIN after the queued
        data, then discards whatever still arrives until the peer's FIN, for at most
        timeout_ms; only then is the connection reset. Returns at once: the stack finishes.
        """
        tcb = self._conn()
        now = self._stack.clock()
        if not tcb.synchronized() or tcb.v[STATE] == CLOSED:
            self.close()
            return
        tcb.discard_received()  # unread and further data, keeping the window open
        tcb = self._release()
        if tcb is None:
            return
        tcb.close_send(now)
        if tcb.v[IN_USE] and tcb.v[STATE] != CLOSED and not tcb.v[RX_FIN]:
            tcb.v[FIN2_AT] = port.ticks_add(now, timeout_ms)  # the orphan's deadline
            if timeout_ms > self._stack.cfg.orphan_timeout_ms:
                tcb.v[ORPHAN_AT] = tcb.v[FIN2_AT]  # asked for: may outlive the default

    def abort(self):
        """Reset the connection now: RST to the peer, every buffer dropped."""
        tcb = self._release()
        if tcb is not None:
            tcb.abort(self._stack.clock())

    def _release(self):
        """Let go of the socket's TCB (it becomes an orphan that finishes alone).

        Returns the TCB if the connection still needs closing, else None: the socket was
        closed already, was a listener (closed here), or its connection had ended (the TCB
        goes straight back to the pool).
        """
        if self._closed:
            return None
        self._closed = True
        st = self._stack
        if self._listening:
            self._close_listener(st.clock())
            return None
        tcb = self._tcb
        if tcb is None:
            return None
        self._tcb = None
        tcb.owner = None
        if tcb.v[STATE] == CLOSED:
            st.free_tcb(tcb)
            return None
        tcb.make_orphan(st.clock())
        return tcb

    def _lose(self, tcb):
        """The stack took the connection back (recycle.close_wait): later calls raise
        ECONNABORTED, and the block goes back to the pool."""
        self._tcb = None
        self._lost = True
        tcb.owner = None
        self._stack.free_tcb(tcb)

    def _close_listener(self, now):
        # Connections nobody accepted are reset (RFC 9293: "pending ... are aborted").
        st = self._stack
        self._listening = False
        if self in st.listeners:
            st.listeners.remove(self)
        pending = self._backlog
        self._backlog = []
        for tcb in pending:
            tcb.parent = None
            tcb.v[ORPHAN] = True
            tcb.abort(now)
