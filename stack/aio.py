# asyncio streams over the stack's sockets, for CPython's asyncio and MicroPython's.
# SPDX-License-Identifier: MIT
#
#     from stack import aio
#     reader, writer = await aio.open_connection(net, "10.0.0.1", 80)
#     server = await aio.start_server(net, handle, "0.0.0.0", 80)   # handle(reader, writer)
#
# The calls mirror asyncio's streams, with the stack passed explicitly. One driver task per
# Stack calls net.poll() and wakes the tasks waiting on its sockets; everything else here
# only moves bytes between the application and the socket rings.
#
# How the driver sleeps, after each poll(), until the next timer is due or:
# - the link has fileno() and the loop is CPython's: loop.add_reader() wakes it at once;
# - the link has fileno() and asyncio has MicroPython's IO queue (unix port): a helper task
#   parks on the fd in that queue (the one asyncio's own streams use) and wakes it at once;
# - otherwise (a W5500 on SPI, the in-memory pipe, the WebAssembly port) nothing can tell it
#   that a frame arrived, so it looks again after at most BUSY_MS (5 ms) while anything is in
#   flight or was active in the last second, and after at most IDLE_MS (50 ms) when idle:
#   up to 5 ms (busy) or 50 ms (idle) of extra latency per frame, for 20 looks a second
#   when idle. A link or interrupt handler that knows better calls wake(net).
# The application's own calls (write, close, ...) wake it too, so new timers are re-armed.
# On CPython the driver sleeps on an Event with a call_later() timer; on MicroPython in
# sleep_ms(), which a wake-up cancels (nothing allocated per sleep).
#
# Waiting never spins: a reader or writer that cannot proceed clears its socket's Event and
# sleeps on it; the driver sets it after a poll() once the socket's poll_flags() say so.
# Features are detected with getattr/try, never with sys.implementation.

import asyncio

from micropython import const

from . import port as _port
from .sock import POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_WR
from .tcp import (CLOSE_WAIT, ENDED, ESTABLISHED, FIN_SEQ, IN_USE, RX_COUNT, STATE,
                  SYN_RECEIVED, SYN_SENT, TX_COUNT, TX_SIZE)

BUSY_MS = const(5)  # longest sleep without a wake-up source while traffic is going on
IDLE_MS = const(50)  # longest sleep without a wake-up source when all is quiet
_ACTIVE_MS = const(1000)  # "going on": a frame or an application call this recently
WRITE_BUF = const(4096)  # default high-water mark: drain() returns once at most this waits
LIMIT = const(2048)  # default longest line readline() accepts (asyncio's `limit`)
_ZERO_RUN = const(64)  # poll() saying "again now" this often in a row: sleep 1 ms anyway
_LONG_MS = const(60_000)  # MicroPython's driver with nothing due: sleep this, or until kicked

_EOF = const(1)  # deferred write_eof(): shut down once the writer's chunks are in the ring
_CLOSE = const(2)  # deferred close()

_READY_RD = POLLIN | POLLHUP  # recv() will not say EAGAIN
_WAKE_RD = POLLIN | POLLERR | POLLHUP
_WAKE_WR = POLLOUT | POLLERR | POLLHUP

_sleep_ms = getattr(asyncio, "sleep_ms", None)  # MicroPython's; CPython's driver needs none


_IncompleteReadError = getattr(asyncio, "IncompleteReadError", None)


def _incomplete(partial, expected):
    if _IncompleteReadError is None:  # pragma: no cover - MicroPython
        return EOFError("%d bytes read of %d" % (len(partial), expected))
    return _IncompleteReadError(partial, expected)  # CPython's: a subclass of EOFError


def _loop_token():
    """Something that changes when a new event loop replaces the old one."""
    get_loop = getattr(asyncio, "get_running_loop", None)
    if get_loop is None:  # pragma: no cover - MicroPython
        # new_event_loop() replaces the task queue; tasks on the old one never run again.
        return getattr(getattr(asyncio, "core", None), "_task_queue", None)
    return get_loop()


# ---- the driver ------------------------------------------------------------------------

_drivers = {}  # Stack -> _Driver


class _Readable:
    """MicroPython: `await` parks the task in asyncio's IO poller until fd is readable.

    Built like asyncio.core.SingletonGenerator: the first step queues the task on the
    poller and yields (the task is then on no run queue); the poller pushes it back when
    the fd is readable, and the second step ends the await. Cancelling it removes the
    task from the poller (Task.cancel calls IOQueue.remove).
    """

    def __init__(self, fd):
        self.fd = fd
        self.parked = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.parked:
            self.parked = False  # ready for the next await
            raise StopIteration
        self.parked = True
        asyncio.core._io_queue.queue_read(self.fd)  # looked up now: new_event_loop swaps it
        return None


class _Driver:
    def __init__(self, net):
        self.net = net
        self.active = []  # _Conns with a waiter, queued output or a deferred close
        self.wake_ev = asyncio.Event()
        self.running = True
        self.error = None  # what killed the driver, raised to waiters
        self.token = _loop_token()
        self.active_until = _port.ticks_add(_port.ticks_ms(), _ACTIVE_MS)
        self.fd = None
        self.loop = None  # CPython loop holding our add_reader
        self.watcher = None  # MicroPython task parked on the fd
        self.polled = None  # set after each poll(): the watcher may park again
        self.mode = "timed"  # how frames wake us: "add_reader", "io_queue" or "timed"
        self.sleeping = False  # MicroPython: in sleep_ms(), where kick() may cancel it
        self.kicked = False  # ...and that cancel is ours
        get_loop = getattr(asyncio, "get_running_loop", None)
        self.call_later = get_loop().call_later if get_loop is not None else None
        self._watch_fd()
        self.task = asyncio.create_task(self._run())

    def _watch_fd(self):
        fileno = getattr(self.net.link, "fileno", None)
        if fileno is None:
            return
        fd = fileno()
        get_loop = getattr(asyncio, "get_running_loop", None)
        if get_loop is None:  # pragma: no cover - MicroPython
            self._watch_fd_io_queue(fd)
            return
        loop = get_loop()
        try:
            loop.add_reader(fd, self.wake_ev.set)
        except (AttributeError, NotImplementedError):  # pragma: no cover
            return  # e.g. Windows' proactor loop: timed fallback
        self.loop = loop
        self.fd = fd
        self.mode = "add_reader"

    def _watch_fd_io_queue(self, fd):  # pragma: no cover - MicroPython
        ioq = getattr(getattr(asyncio, "core", None), "_io_queue", None)
        if ioq is None or not hasattr(ioq, "queue_read"):
            return  # no IO queue (WebAssembly port): timed fallback
        try:
            import select

            p = select.poll()
            p.register(fd, select.POLLIN)  # the IO queue's poller must accept a bare fd
            p.unregister(fd)
        except (ImportError, OSError, TypeError, ValueError):
            return
        self.fd = fd
        self.mode = "io_queue"
        self.polled = asyncio.Event()
        self.watcher = asyncio.create_task(self._watch(_Readable(fd)))

    async def _watch(self, readable):
        # Level-triggered: after waking the driver, wait for its poll() before parking again,
        # else a frame still unread would wake us in a loop.
        while self.running:
            await readable
            self.polled.clear()
            self.kick()
            await self.polled.wait()

    def kick(self):
        """Poll soon: something changed that poll() must see (a frame, a write, a close)."""
        self.active_until = _port.ticks_add(_port.ticks_ms(), _ACTIVE_MS)
        self.wake_ev.set()
        # A task of a replaced loop must not be cancelled: it is on no queue of the new one.
        if self.sleeping and self.token is _loop_token():  # pragma: no cover - MicroPython
            self.sleeping = False
            self.kicked = True
            self.task.cancel()  # brings its sleep_ms() forward to now

    def enlist(self, conn):
        if conn.drv is not self:
            conn.drv = self
            self.active.append(conn)

    async def _run(self):
        net = self.net
        stats = net.stats
        zeros = 0
        try:
            while self.running:
                self.wake_ev.clear()  # before poll(): a wake-up during it is not lost
                seen = stats.ipInReceives
                delay = net.poll()
                if self.polled is not None:
                    self.polled.set()
                if self._service():
                    delay = 0  # bytes moved into a ring: poll again to re-arm timers
                now = _port.ticks_ms()
                if stats.ipInReceives != seen:
                    self.active_until = _port.ticks_add(now, _ACTIVE_MS)
                if delay == 0:
                    zeros += 1
                    if zeros < _ZERO_RUN:
                        await asyncio.sleep(0)  # let the woken tasks run, then again
                        continue
                    delay = 1  # never spin, whatever poll() says
                zeros = 0
                if self.fd is None:
                    bound = BUSY_MS if self._busy(now) else IDLE_MS
                    if delay is None or delay > bound:
                        delay = bound
                await self._sleep(delay)
        except Exception as e:
            self.error = e
            for conn in self.active:
                conn.rd_ev.set()
                conn.wr_ev.set()
            raise
        finally:
            self.detach()

    async def _sleep(self, ms):
        if self.wake_ev.is_set():
            return
        if ms is None:
            await self.wake_ev.wait()
            return
        if self.call_later is not None:
            # CPython: a timer sets the Event. Not wait_for(): before 3.12 it can swallow a
            # cancel that meets the Event being set, and asyncio.run() then never ends.
            timer = self.call_later(ms / 1000, self.wake_ev.set)
            try:
                await self.wake_ev.wait()
            finally:
                timer.cancel()
            return
        # MicroPython: sleep_ms() allocates nothing; kick() cancels it to wake us early.
        # (wait_for_ms() would make two tasks per sleep: about 1 KB of garbage each time.)
        self.sleeping = True  # pragma: no cover - MicroPython, to the end of the method
        try:
            await _sleep_ms(ms if ms is not None else _LONG_MS)
        except asyncio.CancelledError:
            if not self.kicked:
                raise  # a real cancel
        finally:
            self.sleeping = False
            self.kicked = False

    def _busy(self, now):
        if _port.ticks_diff(self.active_until, now) > 0:
            return True
        for tcb in self.net.tcbs:
            # Unacknowledged data or a handshake: an answer is due soon.
            v = tcb.v
            if v[IN_USE] and (v[TX_COUNT] or v[STATE] == SYN_SENT
                              or v[STATE] == SYN_RECEIVED):
                return True
        return False

    def _service(self):
        """After poll(): move queued output, finish deferred closes, wake ready waiters."""
        moved = False
        active = self.active
        i = len(active)
        while i:
            i -= 1
            conn = active[i]
            if conn.service():
                moved = True
            if not conn.needs_driver():
                active.pop(i)
                conn.drv = None
        return moved

    def detach(self):
        """Stop for good: no new polls, the fd no longer watched."""
        self.running = False
        if _drivers.get(self.net) is self:
            del _drivers[self.net]
        if self.loop is not None:
            try:
                self.loop.remove_reader(self.fd)
            except Exception:  # pragma: no cover - the loop is closed already
                pass
            self.loop = None
        if self.watcher is not None:
            if not self.watcher.done():
                self.watcher.cancel()
            self.watcher = None
        for conn in self.active:
            conn.drv = None
        self.active = []


def _driver(net):
    d = _drivers.get(net)
    if d is None or d.task.done() or d.token is not _loop_token():
        if d is not None:
            d.detach()  # its loop is gone
        d = _Driver(net)
        _drivers[net] = d
    return d


def ensure_driver(net):
    """Start net's driver task in the running loop unless it runs already; return the task.

    open_connection() and start_server() call it. Needs a running event loop.
    """
    return _driver(net).task


def stop_driver(net):
    """Stop net's driver; returns its task (await it to be sure it ended) or None.

    Tasks still waiting on net's sockets keep waiting until a driver runs again (the next
    stream call that must wait or buffer starts one). When the loop ends first, CPython's
    asyncio.run() cancels the driver; on MicroPython a driver left on a replaced loop
    (new_event_loop()) is noticed and replaced by the next call.
    """
    d = _drivers.get(net)
    if d is None:
        return None
    d.detach()
    d.kick()  # the driver sees running == False and ends
    return d.task


def wake(net):
    """Tell net's driver to poll now (e.g. a link that knows a frame has arrived).

    Not from a hard interrupt handler: schedule it with micropython.schedule() there.
    """
    d = _drivers.get(net)
    if d is not None:
        d.kick()


# ---- one socket ------------------------------------------------------------------------


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

    def __init__(self, conn, limit=LIMIT):
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


# ---- opening ---------------------------------------------------------------------------


async def open_connection(net, host, port, limit=LIMIT, write_buf=WRITE_BUF):
    """Connect to (host, port); return (StreamReader, StreamWriter).

    Raises OSError(ECONNREFUSED) on a reset answer, OSError(ETIMEDOUT) when the SYN
    retries run out, OSError(ENOBUFS) when the stack has no free connection block.
    """
    drv = _driver(net)
    sock = net.socket()
    sock.setblocking(False)
    conn = _Conn(net, sock, write_buf)
    addr = (host, port)
    ok = False
    try:
        try:
            sock.connect(addr)
        except OSError as e:
            if e.args[0] != _port.EINPROGRESS:
                raise
        drv.kick()
        while True:
            try:
                sock.connect(addr)  # again: EALREADY while the handshake runs
            except OSError as e:
                if e.args[0] == _port.EISCONN:
                    break
                if e.args[0] != _port.EALREADY:
                    raise
            await conn.wait(True)
        ok = True
    finally:
        if not ok:
            sock.close()  # refused, timed out or cancelled: the TCB goes back to the pool
            drv.kick()
    return StreamReader(conn, limit), StreamWriter(conn)


class Server:
    """A listening socket and the task accepting from it (start_server's result)."""

    def __init__(self, net, lsock, cb, limit, write_buf):
        self._net = net
        self._lsock = lsock
        self._cb = cb
        self._limit = limit
        self._write_buf = write_buf
        self._lconn = _Conn(net, lsock, 0)
        self._closing = False
        self._closed_ev = asyncio.Event()
        self._tasks = []  # connection tasks: CPython's loop only holds weak references
        self._task = asyncio.create_task(self._serve())

    async def _serve(self):
        lsock = self._lsock
        try:
            while not self._closing:
                try:
                    sock, _ = lsock.accept()
                except OSError as e:
                    if e.args[0] != _port.EAGAIN:
                        raise
                    await self._lconn.wait(False)
                    continue
                sock.setblocking(False)
                conn = _Conn(self._net, sock, self._write_buf)
                res = self._cb(StreamReader(conn, self._limit), StreamWriter(conn))
                if hasattr(res, "send"):  # a coroutine: one task per connection
                    self._tasks = [t for t in self._tasks if not t.done()]
                    self._tasks.append(asyncio.create_task(res))
        finally:
            self._closed_ev.set()

    def close(self):
        """Stop listening; connections not yet accepted are reset, accepted ones stay."""
        if self._closing:
            return
        self._closing = True
        self._lsock.close()
        self._lconn.rd_ev.set()  # the accept loop sees _closing
        wake(self._net)

    def is_serving(self):
        return not self._closing

    async def wait_closed(self):
        await self._closed_ev.wait()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()


async def start_server(net, client_connected_cb, host, port, backlog=4, limit=LIMIT,
                       write_buf=WRITE_BUF):
    """Listen on (host, port); client_connected_cb(reader, writer) runs as a task per
    connection. Returns a Server (close(), wait_closed(), `async with`)."""
    _driver(net)
    lsock = net.socket()
    lsock.setblocking(False)
    try:
        lsock.bind(("0.0.0.0" if host is None else host, port))
        lsock.listen(backlog)
    except BaseException:
        lsock.close()
        raise
    return Server(net, lsock, client_connected_cb, limit, write_buf)
