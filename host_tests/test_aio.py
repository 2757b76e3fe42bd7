# asyncio streams (stack/aio.py) between two stacks joined in memory. MIT licence.
#
# A core test module: CPython, MicroPython unix and WebAssembly (run_tests.py) run the same
# scenarios. The stacks keep the default, real clock, so the drivers' sleeps and the TCP
# timers agree; the in-memory links wake the receiving stack's driver on every frame (as a
# link with an interrupt would), so nothing waits for a timed look. One test runs without
# that wake-up (timed looks only) and one, where a socket module exists, through links with
# a file descriptor. Every scenario runs under asyncio.wait_for(..., _TIMEOUT_S).
#
# The WebAssembly port's asyncio has no run(): its loop is driven by JavaScript timers, which
# cannot fire while this synchronous script runs. There _run() steps that same scheduler
# itself (asyncio.core._run_iter) and sleeps until the next task is due.

import asyncio

import sizing
from testing import expect_raises

try:
    import socket as _socket
except ImportError:  # the WebAssembly port: no fd links there
    _socket = None

from stack import Stack, aio, port, services
from stack.link.pipe import pipe

# Payloads and rings sized for a host, or (the "board" fixture profile, sizing.py) for a
# 190 KiB heap, where the two stacks also get 2 TCBs each: every payload stays at least
# twice the 4 KiB send ring, so the same things wait.
_BOARD = sizing.PROFILE == "board"
_TIMEOUT_S = 15 if _BOARD else 30  # one test's bound; a board's whole module takes ~10 s
_BULK = 16 * 1024 if _BOARD else 200 * 1024
_BIG_WRITES = (9 * 1024, 10 * 1024) if _BOARD else (16 * 1024, 64 * 1024)
_ECHO_RX, _ECHO_CHUNK, _ECHO_SIZE = ((8 * 1024, 8 * 1024, 16 * 1024) if _BOARD else
                                     (32 * 1024, 16 * 1024, 256 * 1024))


class _Waking:
    """A pipe end whose every frame sent wakes the receiving stack's driver."""

    def __init__(self, end):
        self.end = end
        self.mtu = end.mtu
        self.mac = end.mac
        self.peer_net = None

    def send(self, frame):
        self.end.send(frame)
        aio.wake(self.peer_net)

    def recv_into(self, buf):
        return self.end.recv_into(buf)


def _doorbell():
    """(rx, tx): a UDP socket on 127.0.0.1 and one connected to it."""
    socket = _socket
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(50):  # MicroPython has no getsockname(): try random ports
        p = 20000 + (port.urandom(2)[0] << 8 | port.urandom(2)[1]) % 40000
        addr = socket.getaddrinfo("127.0.0.1", p)[0][-1]
        try:
            rx.bind(addr)
            break
        except OSError:
            continue
    else:  # pragma: no cover
        raise OSError("no free UDP port for the doorbell")
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(addr)
    return rx, tx


class _FdLink:
    """A pipe end with a file descriptor: readable while frames wait, like a TAP device.

    Each frame sent rings the peer's doorbell (one datagram); the receiver empties its
    doorbell once its pipe is empty. Nothing calls aio.wake(): only the fd wakes a driver.
    """

    def __init__(self, end, bell):
        self.end = end
        self.mtu = end.mtu
        self.mac = end.mac
        self.rx, self.tx = bell
        self.peer = None
        self._scratch = bytearray(16)

    def fileno(self):
        return self.rx.fileno()

    def send(self, frame):
        self.end.send(frame)
        self.peer.tx.send(b"!")

    def recv_into(self, buf):
        n = self.end.recv_into(buf)
        if not self.end.pending():
            while True:
                try:
                    if not self.rx.recv(16):
                        break
                except OSError:
                    break
        return n

    def close(self):
        self.rx.close()
        self.tx.close()


def _nets(links="wake", **server_kw):
    """Client stack 10.0.0.1 and server stack 10.0.0.2 (Stack(**server_kw)), in memory."""
    a, b = pipe(mtu=1500, depth=128)
    if links == "wake":
        a, b = _Waking(a), _Waking(b)
    elif links == "fd":
        a, b = _FdLink(a, _doorbell()), _FdLink(b, _doorbell())
        a.peer, b.peer = b, a
    if _BOARD and "tcbs" not in server_kw:
        server_kw["tcbs"] = 2
    client = Stack(a, ip="10.0.0.1", **({"tcbs": 2} if _BOARD else {}))
    server = Stack(b, ip="10.0.0.2", **server_kw)
    if links == "wake":
        a.peer_net, b.peer_net = server, client
    return client, server


def _run(main, *nets):
    """Run main() on a fresh loop, bounded in time; stop the drivers of nets after it."""

    async def bounded():
        try:
            return await asyncio.wait_for(main(), _TIMEOUT_S)
        finally:
            for net in nets:
                task = aio.stop_driver(net)
                if task is not None:
                    await task  # let it end inside this loop

    # MicroPython's run() keeps the tasks an earlier run left behind; start from nothing.
    # (On CPython this makes and closes an unused loop: harmless.)
    asyncio.new_event_loop().close()
    if hasattr(asyncio, "run"):
        return asyncio.run(bounded())
    return _step_scheduler(bounded())  # pragma: no cover - the WebAssembly port


def _step_scheduler(coro):  # pragma: no cover - the WebAssembly port
    core = asyncio.core
    box = []

    async def capture():
        try:
            box.append((True, await coro))
        except BaseException as e:  # noqa: B036 - handed to the caller below
            box.append((False, e))

    asyncio.create_task(capture())
    while not box:
        core._run_iter()  # runs every task that is due, then returns
        if box:
            break
        head = core._task_queue.peek()
        if head is None:
            raise AssertionError("asyncio: every task waits and nothing can wake one")
        dt = port.ticks_diff(head.ph_key, port.ticks_ms())
        if dt > 0:
            port.sleep_ms(dt)
    asyncio.new_event_loop()  # drop what is left; a pending JS timer then finds nothing
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _check_at_eof(reader, expected):
    """reader.at_eof() is expected; MicroPython's own Stream has no at_eof(): reads tell."""
    if hasattr(reader, "at_eof"):
        assert reader.at_eof() == expected


def _portable_streams(test):
    """Run test with aio_streams' classes even where asyncio's own Stream would be used."""
    saved = aio._native
    aio._native = False
    try:
        test()
    finally:
        aio._native = saved


async def _until(cond, what):
    while not cond():
        await asyncio.sleep(0.005)


def _pools_free(*nets):
    return all(net.free_tcb_count() == len(net.tcbs) for net in nets)


def _first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n if len(a) != len(b) else -1


async def _echo(reader, writer):
    while True:
        data = await reader.read(1024)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _echo_rounds(net, port_no, messages):
    r, w = await aio.open_connection(net, "10.0.0.2", port_no)
    w.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY: no wait for delayed ACKs
    for msg in messages:
        w.write(msg)
        await w.drain()
        assert await r.readexactly(len(msg)) == msg
    w.close()
    await w.wait_closed()


def test_echo_messages_and_200k():
    client, server = _nets()

    async def main():
        srv = await aio.start_server(server, _echo, "0.0.0.0", 7)
        async with srv:
            r, w = await aio.open_connection(client, "10.0.0.2", 7)
            assert w.get_extra_info("peername") == ("10.0.0.2", 7)
            assert w.get_extra_info("sockname")[0] == "10.0.0.1"
            assert w.get_extra_info("socket").state == "ESTABLISHED"
            for msg in (b"hello", b"x" * 1000, b"three\n", bytes(range(256)) * 20):
                w.write(msg)
                await w.drain()
                assert await r.readexactly(len(msg)) == msg
            data = port.urandom(_BULK)
            got = bytearray(_BULK)

            async def send():
                await w.awrite(data)  # 4 or 50 times the send ring: waits for room
                w.write_eof()

            async def receive():
                mv = memoryview(got)
                n = 0
                while n < _BULK:
                    k = await r.readinto(mv[n:])
                    assert k, "EOF after %d of %d bytes" % (n, _BULK)
                    n += k
                assert await r.read(100) == b""  # the echo server closed after our EOF
                _check_at_eof(r, True)

            await asyncio.gather(send(), receive())
            assert _first_difference(got, data) == -1
            w.close()
            await w.wait_closed()
        assert not srv.is_serving()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)
    assert client.stats.tcpOutRsts == 0 and server.stats.tcpOutRsts == 0


def test_readline_readexactly():
    client, server = _nets()

    async def talk(reader, writer):
        what = await reader.readline()
        if what == b"lines\n":
            writer.write(b"first line\nsecond\npartial")
        elif what == b"short\n":
            writer.write(b"abc")
        else:
            writer.write(b"y" * 40 + b"\n")
        writer.close()

    async def ask(what, limit=aio.LIMIT):
        r, w = await aio.open_connection(client, "10.0.0.2", 80, limit=limit)
        w.write(what)
        return r, w

    async def main():
        async with await aio.start_server(server, talk, "0.0.0.0", 80):
            r, w = await ask(b"lines\n")
            assert await r.readline() == b"first line\n"
            assert await r.readexactly(3) == b"sec"
            assert await r.readline() == b"ond\n"
            _check_at_eof(r, False)
            assert await r.readline() == b"partial"  # EOF ends the last line
            assert await r.readline() == b""
            _check_at_eof(r, True)
            w.close()

            r, w = await ask(b"short\n")
            with expect_raises(EOFError) as e:
                await r.readexactly(5)
            if hasattr(e.exception, "partial"):  # asyncio.IncompleteReadError
                assert e.exception.partial == b"abc"
            w.close()

            r, w = await ask(b"long\n", limit=16)
            with expect_raises(ValueError):
                await r.readline()  # 41 bytes, no line fits in 16
            w.close()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)


def test_write_eof_half_close():
    client, server = _nets()
    seen = []

    async def count(reader, writer):
        data = await reader.read()  # -1: everything until the client's FIN
        seen.append(data)
        writer.write(b"got %d bytes" % len(data))  # the half-closed client still reads
        writer.close()

    async def main():
        async with await aio.start_server(server, count, "0.0.0.0", 80):
            r, w = await aio.open_connection(client, "10.0.0.2", 80)
            w.write(b"a" * 5000)  # more than the send ring: part waits in the writer
            w.write_eof()  # deferred until those bytes are in the ring
            with expect_raises(OSError):
                w.write(b"late")  # after write_eof()
            assert await r.read() == b"got 5000 bytes"
            _check_at_eof(r, True)
            w.close()
            await w.wait_closed()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)
    assert seen == [b"a" * 5000]


def test_peer_reset_is_econnreset():
    client, server = _nets()

    async def reset(reader, writer):
        await reader.readexactly(5)
        writer.get_extra_info("socket").abort()

    async def main():
        async with await aio.start_server(server, reset, "0.0.0.0", 80):
            r, w = await aio.open_connection(client, "10.0.0.2", 80)
            w.write(b"hello")
            with expect_raises(OSError) as e:
                await r.read(10)
            assert e.exception.args[0] == port.ECONNRESET
            with expect_raises(OSError) as e:
                w.write(b"more")
            assert e.exception.args[0] == port.ECONNRESET
            w.close()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)


def test_connection_refused():
    client, server = _nets()

    async def main():
        aio.ensure_driver(server)  # no server socket: someone must still run its stack
        with expect_raises(OSError) as e:
            await aio.open_connection(client, "10.0.0.2", 9)  # nothing listens on 9
        assert e.exception.args[0] == port.ECONNREFUSED
        assert _pools_free(client, server)

    _run(main, client, server)


def _request(n):
    return b"POST / HTTP/1.0\r\n" + b"b" * n


async def _post(net, body_len):
    """Send a request with a body the server will not read; return (response, error)."""
    r, w = await aio.open_connection(net, "10.0.0.2", 80)
    out = []

    async def send():
        try:
            await w.awrite(_request(body_len))
        except OSError as e:
            out.append(e.args[0])

    async def receive():
        try:
            out.append(await r.read())  # until EOF, or the reset
        except OSError as e:
            out.append(e.args[0])

    await asyncio.gather(send(), receive())
    w.close()
    return out


_RESPONSE = b"HTTP/1.0 200 OK\r\n\r\n" + b"r" * 3000


async def _answer_first_line(reader, writer, linger):
    await reader.readline()  # the request line; the body stays unread
    writer.write(_RESPONSE)
    if linger:
        await writer.lingering_close(2000)
    else:
        writer.close()


def test_lingering_close_keeps_response():
    client, server = _nets()

    async def handler(reader, writer):
        await _answer_first_line(reader, writer, True)

    async def main():
        async with await aio.start_server(server, handler, "0.0.0.0", 80):
            # 10 KiB of body: more than the server's receive ring holds, so the client's
            # last bytes only go once lingering_close() discards input.
            out = await _post(client, 10 * 1024)
            assert out == [_RESPONSE], out  # the whole response, then a clean EOF
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)
    assert server.stats.tcpRstsUnreadData == 0 and server.stats.tcpLingerTimeouts == 0
    assert client.stats.tcpOutRsts == 0 and server.stats.tcpOutRsts == 0


def test_plain_close_with_unread_request_resets():
    # The contrast: close() with the body unread resets (RFC 1122 4.2.2.13), and the client
    # learns it as ECONNRESET instead of a clean end of the response.
    client, server = _nets()

    async def handler(reader, writer):
        await _answer_first_line(reader, writer, False)

    async def main():
        async with await aio.start_server(server, handler, "0.0.0.0", 80):
            out = await _post(client, 10 * 1024)
            assert port.ECONNRESET in out, out
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)
    st = server.stats
    assert st.tcpRstsUnreadData + st.tcpRstsDataAfterClose >= 1


async def _sink(got):
    """A handler that reads to EOF, then appends the list of chunks it read to got (kept
    apart: a board heap may have no single block for all of it)."""
    async def handle(reader, writer):
        chunks = []
        while True:
            chunk = await reader.read(1024)
            if not chunk:
                break
            chunks.append(chunk)
        got.append(chunks)
        writer.close()
        await writer.wait_closed()

    return handle


def _first_difference_in(chunks, pieces):
    """_first_difference() of the two concatenations, without making either."""
    pos = ci = co = pi = po = 0
    while ci < len(chunks) and pi < len(pieces):
        c, p = chunks[ci], pieces[pi]
        k = min(len(c) - co, len(p) - po)
        if bytes(c[co:co + k]) != bytes(p[po:po + k]):
            return pos + _first_difference(c[co:co + k], p[po:po + k])
        pos += k
        co += k
        po += k
        if co == len(c):
            ci, co = ci + 1, 0
        if po == len(p):
            pi, po = pi + 1, 0
    rest_c = sum(len(c) for c in chunks[ci:]) - co
    rest_p = sum(len(p) for p in pieces[pi:]) - po
    return -1 if rest_c == rest_p == 0 else pos


def test_big_writes_are_accepted_whole():
    # 16 KiB and 64 KiB writes into a 4 KiB send ring: accepted, queued, drained, delivered.
    client, server = _nets()
    got = []

    async def main():
        async with await aio.start_server(server, await _sink(got), "0.0.0.0", 9):
            r, w = await aio.open_connection(client, "10.0.0.2", 9)
            sent = []
            for n in _BIG_WRITES:
                data = port.urandom(n)
                before = w.get_write_buffer_size()
                w.write(data)  # no ENOBUFS: what the ring cannot take waits queued
                assert w.get_write_buffer_size() >= before + n - 4096
                await w.drain()  # had to wait: n - 4 KiB were over the high-water mark
                assert w.get_write_buffer_size() <= aio.WRITE_BUF
                sent.append(data)
            w.write_eof()  # FIN once the queue is in the ring
            await _until(lambda: got, "the server read to EOF")
            assert _first_difference_in(got[0], sent) == -1
            w.close()
            await w.wait_closed()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)
    assert client.stats.tcpOutRsts == 0 and server.stats.tcpOutRsts == 0


def test_drain_waits_down_to_write_buf():
    # aio_streams' drain() has a high-water mark; MicroPython's own Stream drains all.
    _portable_streams(_drain_waits_down_to_write_buf)


def test_native_drain_empties_the_buffer():
    client, server = _nets()
    got = []

    async def main():
        async with await aio.start_server(server, await _sink(got), "0.0.0.0", 9):
            r, w = await aio.open_connection(client, "10.0.0.2", 9)
            data = port.urandom(9000)
            w.write(data)  # 4096 into the ring, the rest waits in the writer
            assert w.get_write_buffer_size() == 9000 - 4096
            await w.drain()
            # asyncio's own Stream: all of it; aio_streams: down to write_buf (4096)
            assert w.get_write_buffer_size() <= (aio.WRITE_BUF if not aio._native else 0)
            w.write_eof()
            await _until(lambda: got, "the server read to EOF")
            assert _first_difference_in(got[0], [data]) == -1
            with expect_raises(OSError) as e:
                w.write(b"late")
            assert e.exception.args[0] == port.EPIPE
            w.close()
            await w.wait_closed()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)


def test_aio_streams_where_asyncio_has_streams():
    # Where MicroPython's own Stream serves by default (unix port, boards), run the main
    # scenarios once more on aio_streams. (CPython and WebAssembly use them above already.)
    global _BULK
    if not aio._native:
        return
    bulk = _BULK
    if _BOARD:
        _BULK = 8 * 1024  # after aio_streams' import a board heap has no two 16 KiB blocks
    try:
        _portable_streams(test_echo_messages_and_200k)
    finally:
        _BULK = bulk
    for test in (test_readline_readexactly, test_write_eof_half_close,
                 test_lingering_close_keeps_response, test_close_sends_buffered_output_first,
                 test_cancelled_connect_frees_its_tcb):
        _portable_streams(test)


def _drain_waits_down_to_write_buf():
    client, server = _nets()
    got = []

    async def main():
        async with await aio.start_server(server, await _sink(got), "0.0.0.0", 9):
            r, w = await aio.open_connection(client, "10.0.0.2", 9, write_buf=1000)
            data = bytearray(port.urandom(5000))
            w.write(data)  # 4096 into the ring; a copy of the other 904 queued
            data[4500] ^= 0xFF  # the caller may reuse its buffer at once
            assert w.get_write_buffer_size() == 904
            await w.drain()  # under the high-water mark already: returns at once
            assert w.get_write_buffer_size() == 904
            w.write(b"y" * 3000)  # queued behind: nothing overtakes
            assert w.get_write_buffer_size() == 3904
            await w.drain()
            assert w.get_write_buffer_size() <= 1000
            await w.awrite(b"z" * 7000)  # returns once all of it is in the ring
            assert w.get_write_buffer_size() == 0
            w.close()  # FIN after everything
            await w.wait_closed()
            await _until(lambda: got, "the server read to EOF")
            data[4500] ^= 0xFF
            expected = [data, b"y" * 3000, b"z" * 7000]
            assert _first_difference_in(got[0], expected) == -1
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)


def test_echo_service_with_16k_reads_does_not_reset():
    # A host-sized receive ring (32 KiB) feeding a 4 KiB send ring: each 16 KiB read is
    # written back whole (8 KiB and 8 KiB on a board-sized heap). Before writes were queued, this write raised ENOBUFS and the
    # handler closed with unread data: a reset.
    client, server = _nets(tcbs=2, rx_buf=_ECHO_RX, tx_buf=4096)
    size = _ECHO_SIZE
    chunk = services._CHUNK

    async def main():
        echo = services.echo(server)
        async with await aio.start_server(server, echo, "0.0.0.0", 7):
            r, w = await aio.open_connection(client, "10.0.0.2", 7)
            data = port.urandom(size)
            got = bytearray(size)

            async def send():
                mv = memoryview(data)
                for i in range(0, size, 64 * 1024):
                    w.write(mv[i:i + 64 * 1024])
                    await w.drain()
                w.write_eof()

            async def receive():
                mv = memoryview(got)
                n = 0
                while n < size:
                    k = await r.readinto(mv[n:])
                    assert k, "EOF after %d of %d bytes" % (n, size)
                    n += k
                assert await r.read(100) == b""

            await asyncio.gather(send(), receive())
            assert _first_difference(got, data) == -1
            w.close()
            await w.wait_closed()
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    services._CHUNK = _ECHO_CHUNK  # the service's read size (a module constant)
    try:
        _run(main, client, server)
    finally:
        services._CHUNK = chunk
    assert client.stats.tcpOutRsts == 0 and server.stats.tcpOutRsts == 0


def test_close_sends_buffered_output_first():
    client, server = _nets()
    got = []

    async def sink(reader, writer):
        got.append(await reader.read())
        writer.close()

    async def main():
        async with await aio.start_server(server, sink, "0.0.0.0", 80):
            r, w = await aio.open_connection(client, "10.0.0.2", 80)
            w.write(b"q" * 8000)  # 4096 in the send ring, the rest queued in the writer
            assert w.get_extra_info("socket").state == "ESTABLISHED"
            w.close()  # FIN only once the driver has moved the rest into the ring
            await w.wait_closed()
            await _until(lambda: got, "the server read to EOF")
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)
    assert got == [b"q" * 8000]


def test_cancelled_connect_frees_its_tcb():
    client, server = _nets()  # no driver on the server: the SYN is never answered

    async def main():
        with expect_raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.open_connection(client, "10.0.0.2", 80), 0.2)
        assert _pools_free(client)

    _run(main, client)


def test_drivers_restart_in_a_new_loop():
    # The first loop ends with both drivers running (CPython's run() cancels them; on
    # MicroPython they stay on a loop that is then replaced); the next loop starts new ones.
    client, server = _nets()

    async def rounds(port_no):
        async with await aio.start_server(server, _echo, "0.0.0.0", port_no):
            await _echo_rounds(client, port_no, [b"one", b"two"])

    _run(lambda: rounds(7))
    _run(lambda: rounds(8), client, server)


def test_timed_driver_without_wakeups():
    # Plain pipe ends: no wake(), no fd. The drivers find frames by looking every few ms.
    client, server = _nets("plain")

    async def main():
        async with await aio.start_server(server, _echo, "0.0.0.0", 7):
            assert aio._drivers[server].mode == "timed"
            await _echo_rounds(client, 7, [b"ping %d" % i for i in range(10)])
        await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

    _run(main, client, server)


if _socket is not None:
    # Defined only where the interpreter has sockets (not on the WebAssembly port).

    def test_fd_link_wakes_driver():
        client, server = _nets("fd")

        async def main():
            async with await aio.start_server(server, _echo, "0.0.0.0", 7):
                # CPython: loop.add_reader(); MicroPython unix: asyncio's IO queue.
                assert aio._drivers[server].mode in ("add_reader", "io_queue")
                # Idle drivers sleep with no time limit here: only the fd can wake them.
                await _echo_rounds(client, 7, [b"ping %d" % i for i in range(10)])
            await _until(lambda: _pools_free(client, server), "every TCB back in its pool")

        try:
            _run(main, client, server)
        finally:
            client.link.close()
            server.link.close()
