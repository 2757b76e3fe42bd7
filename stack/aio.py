# asyncio over the stack's sockets: the driver task, open_connection() and start_server().
# SPDX-License-Identifier: MIT
#
#     from stack import aio
#     reader, writer = await aio.open_connection(net, "10.0.0.1", 80)
#     server = await aio.start_server(net, handle, "0.0.0.0", 80)   # handle(reader, writer)
#
# The calls mirror asyncio's streams, with the stack passed explicitly. One driver task per
# Stack calls net.poll() and wakes the tasks waiting on its sockets.
#
# The streams are asyncio's own where asyncio can stream over a socket object: MicroPython
# with an IO queue (unix port, boards). Our sockets are io.IOBase streams there, so its
# Stream reads, writes and waits on them itself; this module adds only what MicroPython's
# Stream lacks (Stream below: bounded readline, write_eof, a close() that flushes first,
# lingering_close, get_extra_info defaults) and takes ssl= as asyncio does. Elsewhere
# (CPython, the WebAssembly port) the streams come from aio_streams.py, loaded only then.
# Differences that remain on MicroPython: write() keeps what the send ring cannot take
# until drain(), and drain() returns once all of it is in the ring (write_buf is ignored).
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
# - the link has irq(handler) (the W5500 with its INTn pin wired) and asyncio has
#   MicroPython's ThreadSafeFlag: the pin's falling edge sets the flag (IRQ-safe; asyncio's
#   IO queue polls it, and on a board the interrupt ends its wait), a helper task waiting
#   on it wakes the driver, and the driver sleeps until the next timer, or IRQ_MS (1 s) at
#   most in case an edge was missed (ESP-IDF checks its INT pin each second too).
# Tasks waiting in MicroPython's IO queue poll our sockets, and each poll runs net.poll()
# (stack/sock.py's ioctl), so they make progress between the driver's looks too.
# The application's own calls (write, close, ...) wake it too, so new timers are re-armed.
# On CPython the driver sleeps on an Event with a call_later() timer; on MicroPython in
# sleep_ms(), which a wake-up cancels (nothing allocated per sleep).
# Features are detected with getattr/try, never with sys.implementation.

import asyncio

from micropython import const

from . import port as _port
from .sock import SHUT_WR
from .tcp import IN_USE, STATE, SYN_RECEIVED, SYN_SENT, TX_COUNT

BUSY_MS = const(5)  # longest sleep without a wake-up source while traffic is going on
IDLE_MS = const(50)  # longest sleep without a wake-up source when all is quiet
IRQ_MS = const(1000)  # longest sleep when the link's interrupt wakes us
_ACTIVE_MS = const(1000)  # "going on": a frame or an application call this recently
WRITE_BUF = const(4096)  # default high-water mark: drain() returns once at most this waits
LIMIT = const(2048)  # default longest line readline() accepts (asyncio's `limit`)
_ZERO_RUN = const(64)  # poll() saying "again now" this often in a row: sleep 1 ms anyway
_LONG_MS = const(60_000)  # MicroPython's driver with nothing due: sleep this, or until kicked

_EOF = const(1)  # Stream: write_eof() asked for
_CLOSE = const(2)  # Stream: close() asked for

_sleep_ms = getattr(asyncio, "sleep_ms", None)  # MicroPython's; CPython's driver needs none

# asyncio's own Stream can take our sockets: MicroPython's, where an IO queue polls them.
# A variable, not a constant: tests set it False to run aio_streams on MicroPython too.
_native = (getattr(getattr(asyncio, "core", None), "_io_queue", None) is not None
           and getattr(asyncio, "StreamReader", None) is not None)


def _loop_token():
    """Something that changes when a new event loop replaces the old one."""
    get_loop = getattr(asyncio, "get_running_loop", None)
    if get_loop is None:  # pragma: no cover - MicroPython
        # new_event_loop() replaces the task queue; tasks on the old one never run again.
        return getattr(getattr(asyncio, "core", None), "_task_queue", None)
    return get_loop()


# ---- the driver ------------------------------------------------------------------------

_drivers = {}  # Stack -> _Driver


class _IOWait:
    """MicroPython: `await` parks the task in asyncio's IO poller until obj (an fd or a
    stream) is readable, or writable if `write`.

    Built like asyncio.core.SingletonGenerator: the first step queues the task on the
    poller and yields (the task is then on no run queue); the poller pushes it back when
    the fd is readable, and the second step ends the await. Cancelling it removes the
    task from the poller (Task.cancel calls IOQueue.remove).
    """

    def __init__(self, obj, write=False):
        self.obj = obj
        self.write = write
        self.parked = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.parked:
            self.parked = False  # ready for the next await
            raise StopIteration
        self.parked = True
        q = asyncio.core._io_queue  # looked up now: new_event_loop() swaps it
        if self.write:
            q.queue_write(self.obj)
        else:
            q.queue_read(self.obj)
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
        self.mode = "timed"  # how frames wake us: "add_reader", "io_queue", "irq" or "timed"
        self.sleeping = False  # MicroPython: in sleep_ms(), where kick() may cancel it
        self.kicked = False  # ...and that cancel is ours
        get_loop = getattr(asyncio, "get_running_loop", None)
        self.call_later = get_loop().call_later if get_loop is not None else None
        self._watch_fd()
        if self.fd is None:
            self._watch_irq()
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
        self.watcher = asyncio.create_task(self._watch(_IOWait(fd)))

    def _watch_irq(self):
        irq = getattr(self.net.link, "irq", None)
        tsf = getattr(asyncio, "ThreadSafeFlag", None)  # MicroPython's only
        if irq is None or tsf is None:
            return
        flag = tsf()  # pragma: no cover - MicroPython, to the end of the method
        if irq(lambda pin: flag.set()):  # the handler allocates nothing: hard IRQ safe
            self.mode = "irq"
            self.watcher = asyncio.create_task(self._watch_irq_flag(flag))

    async def _watch_irq_flag(self, flag):  # pragma: no cover - MicroPython
        while self.running:
            await flag.wait()
            self.kick()

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
            try:
                self.task.cancel()  # brings its sleep_ms() forward to now
            except RuntimeError:
                # "can't cancel self": the loop is polling our sockets for its IO queue
                # (their ioctl runs net.poll()) and the driver was the last task run. That
                # poll() did the work; the driver wakes at its planned time.
                return
            self.sleeping = False
            self.kicked = True

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
                    if self.mode == "irq":
                        bound = IRQ_MS
                    else:
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


# ---- MicroPython's own Stream, completed -----------------------------------------------

if _native:  # pragma: no cover - MicroPython

    class Stream(asyncio.StreamReader):
        """asyncio's Stream (reader and writer in one) over our socket or an SSLSocket on
        it, with what asyncio's lacks. Methods written as generators, like asyncio's."""

        def __init__(self, s, e, limit):
            super().__init__(s, e)
            self.limit = limit
            self.shut = 0  # _EOF | _CLOSE asked for: write() refuses from then on
            self.done = None  # the task that flushes, then shuts down or closes

        def get_extra_info(self, name, default=None):
            return self.e.get(name, default)

        def get_write_buffer_size(self):
            return len(self.out_buf)

        def write(self, buf):
            if self.shut:
                raise OSError(_port.EPIPE)  # after close() or write_eof()
            super().write(buf)

        def readline(self):
            """As asyncio's, but a line longer than limit raises ValueError (a peer that
            never sends a newline must not fill the heap)."""
            line = b""
            while True:
                yield asyncio.core._io_queue.queue_read(self.s)
                more = self.s.readline(self.limit - len(line))
                if more is None:
                    continue
                line += more
                if not more or line[-1] == 10:
                    return line
                if len(line) >= self.limit:
                    raise ValueError("line longer than limit (%d bytes)" % self.limit)

        def write_eof(self):
            """Half-close: FIN after everything written; reading goes on."""
            self._finish(_EOF)

        def close(self):
            """Close once everything written is in the send ring (a FIN follows it)."""
            self._finish(_CLOSE)

        def _finish(self, how):
            if self.shut & how:
                return
            self.shut |= how
            if self.done is None or self.done.done():  # else that task sees `how` too
                if self.out_buf:
                    self.done = asyncio.create_task(self._flush())
                else:
                    self._shut(how)

        async def _flush(self):
            done = 0
            while done != self.shut:  # close() may come while write_eof()'s flush runs
                how = self.shut
                try:
                    await self.drain()
                except Exception:  # reset, or a failed TLS handshake (ValueError)
                    self.out_buf = b""  # this output will never go; the close must
                self._shut(how & ~done)
                done = how

        def _shut(self, how):
            try:
                if how & _CLOSE:
                    self.s.close()
                    # After a failed certificate check tls lets go of our socket without
                    # closing it (and ours have no finaliser to do it later): close it too.
                    self.e["socket"].close()
                elif how & _EOF:
                    self.s.shutdown(SHUT_WR)  # an SSLSocket has none: AttributeError
            except Exception:  # OSError; ValueError from an SSLSocket after an error
                pass

        async def wait_closed(self):
            self.close()
            if self.done is not None:
                await self.done

        async def lingering_close(self, timeout_ms=2000):
            """Flush, then the socket's lingering_close() (stack/sock.py): FIN after the
            response, input discarded until the peer's FIN, RST only after timeout_ms."""
            if self.shut & _CLOSE:
                return
            self.shut |= _CLOSE
            try:
                await self.drain()
            except Exception:  # as in _flush()
                self.out_buf = b""
            linger = getattr(self.s, "lingering_close", None)  # none on an SSLSocket
            try:
                if linger is None:
                    self._shut(_CLOSE)
                else:
                    linger(timeout_ms)
            except OSError:
                self.s.close()


def _streams(net, sock, conn, limit, write_buf, ssl, server_side, server_hostname):
    """(reader, writer) over a connected socket; wrapped in TLS first if ssl is given."""
    if conn is not None:  # aio_streams: its _Conn is made before the connection is
        from .aio_streams import pair

        conn.write_buf = write_buf
        return pair(conn, limit)
    e = {"socket": sock}
    try:
        e["peername"] = sock.getpeername()
        e["sockname"] = sock.getsockname()
    except OSError:
        pass  # reset already: the first read will say so
    if ssl:
        if ssl is True:
            import ssl as _ssl

            ssl = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        if server_side:
            sock = ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        else:
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname,
                                   do_handshake_on_connect=False)
        sock.setblocking(False)
    s = Stream(sock, e, limit)
    return s, s


def _conn(net, sock):
    """aio_streams' per-socket state where asyncio's Stream cannot be used, else None."""
    if _native:
        return None
    from .aio_streams import _Conn

    return _Conn(net, sock, 0)


async def _wait(sock, conn, write):
    if conn is None:
        await _IOWait(sock, write)  # pragma: no cover - MicroPython
    else:
        await conn.wait(write)


def _check_ssl(ssl):
    if ssl and not _native:
        raise ValueError("ssl= needs MicroPython's asyncio (its ssl wraps our sockets)")


# ---- opening ---------------------------------------------------------------------------


async def open_connection(net, host, port, limit=LIMIT, write_buf=WRITE_BUF, ssl=None,
                          server_hostname=None):
    """Connect to (host, port); return (reader, writer).

    Raises OSError(ECONNREFUSED) on a reset answer, OSError(ETIMEDOUT) when the SYN
    retries run out, OSError(ENOBUFS) when the stack has no free connection block.
    ssl (an SSLContext, or True for a default client context) wraps the connection in TLS
    as asyncio's open_connection does; the handshake runs with the first read or write.
    """
    _check_ssl(ssl)
    drv = _driver(net)
    sock = net.socket()
    sock.setblocking(False)
    addr = (host, port)
    ok = False
    try:
        conn = _conn(net, sock)
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
            await _wait(sock, conn, True)
        streams = _streams(net, sock, conn, limit, write_buf, ssl, False,
                           server_hostname or host)
        ok = True
    finally:
        if not ok:
            sock.close()  # refused, timed out or cancelled: the TCB goes back to the pool
            drv.kick()
    return streams


class Server:
    """A listening socket and the task accepting from it (start_server's result)."""

    def __init__(self, net, lsock, cb, limit, write_buf, ssl):
        self._net = net
        self._lsock = lsock
        self._cb = cb
        self._limit = limit
        self._write_buf = write_buf
        self._ssl = ssl
        self._lconn = _conn(net, lsock)
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
                    await _wait(lsock, self._lconn, False)
                    continue
                sock.setblocking(False)
                try:
                    reader, writer = _streams(self._net, sock, _conn(self._net, sock),
                                              self._limit, self._write_buf, self._ssl,
                                              True, None)
                except Exception:  # e.g. the TLS context refused: this client only
                    sock.close()
                    continue
                res = self._cb(reader, writer)
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
        self._lsock.close()  # a task parked in MicroPython's IO queue sees POLLNVAL
        if self._lconn is not None:
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
                       write_buf=WRITE_BUF, ssl=None):
    """Listen on (host, port); client_connected_cb(reader, writer) runs as a task per
    connection. Returns a Server (close(), wait_closed(), `async with`). ssl (a server
    SSLContext) wraps each accepted connection in TLS, as asyncio's start_server does."""
    _check_ssl(ssl)
    _driver(net)
    lsock = net.socket()
    lsock.setblocking(False)
    try:
        lsock.bind(("0.0.0.0" if host is None else host, port))
        lsock.listen(backlog)
    except BaseException:
        lsock.close()
        raise
    return Server(net, lsock, client_connected_cb, limit, write_buf, ssl)
