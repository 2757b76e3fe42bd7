# asyncio streams of our own, for event loops whose asyncio cannot stream over our sockets.
# SPDX-License-Identifier: MIT
#
# stack/aio.py picks these where asyncio has no stream class of its own that takes a socket
# object: CPython, and MicroPython ports without an IO queue (the WebAssembly port). On a
# MicroPython board, asyncio's own Stream is used instead and this module is never loaded
# (leave it off a board to save its flash and heap). The calls are asyncio's: reader.read,
# readexactly, readline, readinto; writer.write, drain, write_eof, close, wait_closed.
#
# Waiting never spins: a reader or writer that cannot proceed clears its socket's Event and
# sleeps on it; aio's driver sets it after a poll() once the socket's poll_flags() say so.

import asyncio

from micropython import const

from . import port as _port
from .aio import _driver, wake
from .sock import POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_WR
from .tcp import CLOSE_WAIT, ENDED, ESTABLISHED, FIN_SEQ, RX_COUNT, STATE, TX_COUNT, TX_SIZE

_EOF = const(1)  # deferred write_eof(): shut down once the writer's chunks are in the ring
_CLOSE = const(2)  # deferred close()

_READY_RD = POLLIN | POLLHUP  # recv() will not say EAGAIN
_WAKE_RD = POLLIN | POLLERR | POLLHUP
_WAKE_WR = POLLOUT | POLLERR | POLLHUP

_IncompleteReadError = getattr(asyncio, "IncompleteReadError", None)


def _incomplete(partial, expected):
    if _IncompleteReadError is None:  # pragma: no cover - MicroPython
        return EOFError("%d bytes read of %d" % (len(partial), expected))
    return _IncompleteReadError(partial, expected)  # CPython's: a subclass of EOFError


class _Conn:
    """A socket as reader, writer and driver share it: waiters, queued output, closing.

    Output the send ring cannot take yet waits as a list of chunks: memoryviews of the
    caller's bytes objects (never copied) or copies of mutable buffers. `queued` counts them;
    `head` is how much of chunks[0] is in the ring already.
    """

    def __init__(self, net, sock, write_buf):
        self.net = net
        self.sock = sock
        self.write_buf = write_buf  # drain()'s high-water mark
        self.chunks = []
        self.head = 0
        self.queued = 0
        self.rd_ev = asyncio.Event()
        self.wr_ev = asyncio.Event()
        self.closed_ev = asyncio.Event()
        self.rd_wait = False
        self.wr_wait = False
        self.after = 0  # _EOF | _CLOSE, done by the driver once the chunks are in the ring
        self.closing = False
        self.err = 0  # errno met while the driver moved chunks into the ring
        self.drv = None  # the driver that has us on its active list

    def driver(self):
        return _driver(self.net)  # started again if need be: needs a running loop

    def pending(self):
        return self.queued

    def needs_driver(self):
        return self.rd_wait or self.wr_wait or self.after or self.queued

    def queue(self, mv):
        """Keep mv (a memoryview that must not change) until the ring takes it."""
        self.chunks.append(mv)
        self.queued += len(mv)

    def drop(self):
        """Forget the queued output (reset, or close() after an error)."""
        self.chunks = []
        self.head = 0
        self.queued = 0

    def avail(self):
        """Bytes waiting in the receive ring."""
        tcb = self.sock._tcb
        return tcb.v[RX_COUNT] if tcb is not None else 0

    def ring_room(self):
        """Bytes the send ring takes now; 0 when send() would not take any."""
        tcb = self.sock._tcb
        if tcb is None or self.sock._wr_shut:
            return 0
        v = tcb.v
        if v[FIN_SEQ] >= 0 or (v[STATE] != ESTABLISHED and v[STATE] != CLOSE_WAIT):
            return 0
        return v[TX_SIZE] - v[TX_COUNT]

    async def wait(self, write):
        """Sleep until the driver sees this socket ready to read (or write), or failing."""
        ev = self.wr_ev if write else self.rd_ev
        ev.clear()
        if write:
            self.wr_wait = True
        else:
            self.rd_wait = True
        drv = self.driver()
        drv.enlist(self)
        try:
            await ev.wait()
        finally:
            if write:
                self.wr_wait = False
            else:
                self.rd_wait = False
        if drv.error is not None:
            raise drv.error

    def flush(self):
        """Move queued output into the send ring; True if any moved."""
        chunks = self.chunks
        moved = False
        while chunks:
            mv = chunks[0]
            head = self.head
            try:
                k = self.sock.send(mv[head:] if head else mv)
            except OSError as e:
                if e.args[0] != _port.EAGAIN:
                    self.err = e.args[0]  # reset or closed: this output will never go
                    self.drop()
                break
            if not k:
                break
            moved = True
            self.queued -= k
            head += k
            if head < len(mv):
                self.head = head
                break  # the ring is full
            chunks.pop(0)  # a short list: drain() keeps it to a few chunks
            self.head = 0
        return moved

    def service(self):
        moved = False
        if self.pending():
            moved = self.flush()
        if self.after and not self.pending():
            self.finish()
            moved = True
        if self.rd_wait or self.wr_wait:
            flags = self.sock.poll_flags()
            if self.rd_wait and flags & _WAKE_RD:
                self.rd_ev.set()
            # drain() may go on once the queue is down to the high-water mark.
            if self.wr_wait and (flags & _WAKE_WR or self.err
                                 or (moved and self.queued <= self.write_buf)):
                self.wr_ev.set()
        return moved

    def finish(self):
        """The deferred write_eof() / close(), now that the output is in the ring."""
        after = self.after
        self.after = 0
        try:
            if after & _CLOSE:
                self.sock.close()
            elif after & _EOF:
                self.sock.shutdown(SHUT_WR)
        except OSError:
            pass  # shutdown() of a connection that ended meanwhile: nothing left to send
        if after & _CLOSE:
            self.closed_ev.set()


# ---- streams ---------------------------------------------------------------------------


class StreamReader:
    """Reads from one connection: read, readexactly, readline, readinto, at_eof."""

    def __init__(self, conn, limit):
        self._c = conn
        self._limit = limit
        self._buf = None  # bytearray(limit): readline's look-ahead, made on first use
        self._mv = None
        self._lo = 0  # self._buf[_lo:_hi] was read from the socket but not returned
        self._hi = 0
        self._eof = False

    async def _readable(self):
        c = self._c
        while not c.sock.poll_flags() & _READY_RD:
            await c.wait(False)

    async def _recv_into(self, mv):
        """Read into the non-empty mv, waiting if need be; 0 at EOF. Raises ECONNRESET."""
        await self._readable()
        n = self._c.sock.recv_into(mv)
        if not n:
            self._eof = True
        return n

    def _take(self, n):
        lo = self._lo
        k = self._hi - lo
        if k > n:
            k = n
        self._lo = lo + k
        if self._lo == self._hi:
            self._lo = self._hi = 0
        return bytes(self._mv[lo:lo + k])

    async def read(self, n=-1):
        """Up to n bytes (at least 1), b"" at EOF; n=-1 reads until EOF."""
        if n < 0:
            chunks = []
            while True:
                b = await self.read(1 << 30)  # each read takes what the ring holds
                if not b:
                    return b"".join(chunks)
                chunks.append(b)
        if not n:
            return b""
        if self._lo < self._hi:
            return self._take(n)
        await self._readable()
        c = self._c
        k = c.avail()
        buf = bytearray(k if k < n else n)  # size 0: recv_into says EOF or raises
        if not c.sock.recv_into(buf):
            self._eof = True
            return b""
        return bytes(buf)

    async def readinto(self, buf):
        """Read into buf; the count, 0 at EOF (or when buf is empty)."""
        mv = memoryview(buf)
        if not len(mv):
            return 0
        k = self._hi - self._lo
        if k:
            if k > len(mv):
                k = len(mv)
            lo = self._lo
            mv[:k] = self._mv[lo:lo + k]
            self._lo = lo + k
            if self._lo == self._hi:
                self._lo = self._hi = 0
            return k
        return await self._recv_into(mv)

    async def readexactly(self, n):
        """Exactly n bytes; IncompleteReadError (EOFError where missing) on an early EOF."""
        out = bytearray(n)
        mv = memoryview(out)
        got = 0
        while got < n:
            k = await self.readinto(mv[got:])
            if not k:
                raise _incomplete(bytes(out[:got]), n)
            got += k
        return bytes(out)

    async def readline(self):
        """Bytes up to and including b"\\n"; at EOF the rest, then b"".

        A line longer than `limit` raises ValueError, as asyncio's does.
        """
        if self._buf is None:
            self._buf = bytearray(self._limit)
            self._mv = memoryview(self._buf)
        buf = self._buf
        while True:
            i = buf.find(b"\n", self._lo, self._hi)
            if i >= 0:
                return self._take(i + 1 - self._lo)
            if self._hi - self._lo >= self._limit:
                raise ValueError("line longer than limit (%d bytes)" % self._limit)
            if self._hi == self._limit:  # room only at the front: move the partial line
                k = self._hi - self._lo
                buf[:k] = buf[self._lo:self._hi]
                self._lo, self._hi = 0, k
            n = await self._recv_into(self._mv[self._hi:])
            if not n:
                return self._take(self._hi - self._lo)
            self._hi += n

    def at_eof(self):
        return self._eof and self._lo == self._hi


class StreamWriter:
    """Writes to one connection, as asyncio's StreamWriter does.

    write() never blocks and takes everything: what the send ring cannot take at once is
    queued and flows out as the peer acknowledges. The queue holds references, not copies,
    to bytes objects (a bytearray or other mutable buffer is copied, since the caller may
    reuse it). Nothing bounds it but the caller: `await drain()` after writing returns once
    at most write_buf bytes (the high-water mark, WRITE_BUF by default) wait beyond the
    send ring, so a writer that drains after each write holds at most write_buf plus its
    last write. get_write_buffer_size() says how many bytes wait now.
    """

    def __init__(self, conn):
        self._c = conn

    def _check(self):
        c = self._c
        if c.err:
            raise OSError(c.err)
        if c.closing or c.after:
            raise OSError(_port.EPIPE)  # after close() or write_eof()
        tcb = c.sock._tcb
        if tcb is not None and tcb.v[ENDED]:
            raise OSError(tcb.v[ENDED])  # reset or timed out

    def _write(self, data, copy):
        c = self._c
        self._check()
        mv = memoryview(data)
        n = len(mv)
        if not n:
            return
        sent = 0
        if not c.queued:  # else nothing may overtake what is queued
            try:
                sent = c.sock.send(mv)  # raises ECONNRESET & co. having taken nothing
            except OSError as e:
                if e.args[0] != _port.EAGAIN:
                    raise
        if sent < n:
            if copy and not isinstance(data, bytes):
                mv = memoryview(bytes(mv[sent:]))  # the caller may change its buffer
            elif sent:
                mv = mv[sent:]
            c.queue(mv)
            c.driver().enlist(c)
        wake(c.net)  # new data in flight: the driver re-arms its timers

    def write(self, data):
        """Send data (bytes-like): into the send ring now, the rest queued (never refused)."""
        self._write(data, True)

    def writelines(self, lines):
        for data in lines:
            self.write(data)

    def get_write_buffer_size(self):
        """Bytes written but not yet in the socket's send ring."""
        return self._c.queued

    async def _drain(self, limit):
        c = self._c
        while True:
            if c.queued:
                c.flush()
            if c.err:
                raise OSError(c.err)
            if c.queued <= limit:
                return
            await c.wait(True)

    async def drain(self):
        """Wait until at most write_buf bytes wait beyond the send ring (asyncio's
        high-water mark); raises the connection's error (ECONNRESET, ...) if it failed."""
        await self._drain(self._c.write_buf)

    async def awrite(self, data):
        """Write data and wait until all of it is in the send ring (MicroPython's
        Stream.awrite). Keeps a reference to data meanwhile: no copy, even of a bytearray."""
        self._write(data, False)
        await self._drain(0)

    def can_write_eof(self):
        return True

    def write_eof(self):
        """Half-close: FIN after everything written; reading goes on."""
        c = self._c
        self._check()
        c.after |= _EOF
        if c.queued:
            c.driver().enlist(c)
        else:
            c.finish()
        wake(c.net)

    def close(self):
        """Close after everything written is in the send ring (a FIN follows it)."""
        c = self._c
        if c.closing:
            return
        c.closing = True
        c.after |= _CLOSE
        if c.queued and not c.err:
            c.driver().enlist(c)
        else:
            c.drop()
            c.finish()  # also after the loop ended: needs no driver
        wake(c.net)

    def is_closing(self):
        return self._c.closing

    async def wait_closed(self):
        await self._c.closed_ev.wait()

    async def lingering_close(self, timeout_ms=2000):
        """Flush, then the socket's lingering_close(): FIN after the response, input
        discarded until the peer's FIN, RST only after timeout_ms. For servers that answer
        without reading the whole request."""
        c = self._c
        if c.closing:
            return
        try:
            await self._drain(0)  # everything into the ring: lingering_close() sends it
        except OSError:
            pass  # reset: nothing left to deliver; the socket is freed below
        c.closing = True
        c.after = 0
        c.drop()
        try:
            c.sock.lingering_close(timeout_ms)
        except OSError:
            c.sock.close()
        c.closed_ev.set()
        wake(c.net)

    def get_extra_info(self, name, default=None):
        sock = self._c.sock
        try:
            if name == "peername":
                return sock.getpeername()
            if name == "sockname":
                return sock.getsockname()
        except OSError:
            return default
        if name == "socket":
            return sock
        return default

def pair(conn, limit):
    """(StreamReader, StreamWriter) over conn, a _Conn of a connected socket."""
    return StreamReader(conn, limit), StreamWriter(conn)
