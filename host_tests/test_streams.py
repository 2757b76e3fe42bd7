# Sockets as MicroPython streams (DESIGN.md section 9): stream semantics, ioctl, select.poll
# and the `socket` module from stack.install(). MIT licence. Runs on CPython and MicroPython
# (unix, WebAssembly) on a virtual clock: our link polls the peer stack on every read and
# moves the clock 1 ms, so blocking calls see the peer act while they wait.

import sys

from pair import Pair
from testing import expect_raises

import stack
from stack import POLLERR, POLLHUP, POLLIN, POLLOUT, port, sock

_POLL = 3
_CLOSE = 4
_GET_FILENO = 10
_POLLNVAL = 0x20


class _Driving:
    """Wraps a's link: each read runs b, moves the clock 1 ms and fires due actions."""

    def __init__(self, link, pair):
        self.link = link
        self.pair = pair
        self.mtu = link.mtu
        self.mac = link.mac
        self.reads = 0
        self.due = []  # [(read count, fn)]

    def later(self, reads, fn):
        self.due.append((self.reads + reads, fn))

    def send(self, frame):
        self.link.send(frame)

    def recv_into(self, buf):
        self.reads += 1
        for item in list(self.due):
            if item[0] <= self.reads:
                self.due.remove(item)
                item[1]()
        self.pair.b.poll()
        self.pair.now = port.ticks_add(self.pair.now, 1)
        return self.link.recv_into(buf)


def _pair():
    pair = Pair()
    drv = _Driving(pair.a.link, pair)
    pair.a.link = drv
    srv = pair.b.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", 7))
    srv.listen(1)
    return pair, drv, srv


def _connected(fixture=None):
    """(pair, driver, client on a (blocking, 5 s), server's connection on b (non-blocking));
    on fixture's (pair, driver, listener) if given, else on a new _pair()."""
    pair, drv, srv = fixture or _pair()
    c = pair.a.socket()
    c.settimeout(5)
    c.connect(("10.0.0.2", 7))
    pair.b.poll()
    s, _ = srv.accept()
    s.setblocking(False)
    return pair, drv, c, s


def _arrive(pair, s, n):
    """Run both stacks until s (non-blocking) has received n bytes; return them."""
    got = bytearray()
    for _ in range(2000):
        pair.step()
        try:
            got += s.recv(4096)
        except OSError as e:
            assert e.args[0] == port.EAGAIN
        if len(got) >= n:
            return bytes(got)
    raise AssertionError("only %r arrived" % bytes(got))


# ---- reading -------------------------------------------------------------------------------


def test_read_n_blocks_until_n():
    pair, drv, c, s = _connected()
    s.send(b"abc")
    drv.later(20, lambda: s.send(b"defgh"))
    assert c.read(8) == b"abcdefgh"


def test_recv_stays_single_shot():
    pair, drv, c, s = _connected()
    s.send(b"12")
    drv.later(20, lambda: s.send(b"34"))
    assert c.recv(4) == b"12"
    assert c.recv(4) == b"34"


def test_readinto_fills_the_buffer_or_stops_at_eof():
    pair, drv, c, s = _connected()
    s.send(b"hel")
    drv.later(10, lambda: s.send(b"lo world"))
    buf = bytearray(8)
    assert c.readinto(buf) == 8 and buf == b"hello wo"
    drv.later(10, s.close)
    assert c.readinto(buf) == 3 and buf[:3] == b"rld"  # EOF came first
    assert c.readinto(buf) == 0
    assert c.read(5) == b""


def test_readinto_nbytes():
    pair, drv, c, s = _connected()
    s.send(b"abcdef")
    buf = bytearray(6)
    assert c.readinto(buf, 4) == 4 and buf[:4] == b"abcd"


def test_read_without_n_reads_to_eof():
    pair, drv, c, s = _connected()
    s.send(b"x" * 300)
    drv.later(10, lambda: s.send(b"y" * 300))
    drv.later(20, s.close)
    assert c.read() == b"x" * 300 + b"y" * 300


def test_readline():
    pair, drv, c, s = _connected()
    s.send(b"line one\nline ")
    drv.later(10, lambda: s.send(b"two\nrest"))
    drv.later(20, s.close)
    assert c.readline() == b"line one\n"
    assert c.readline() == b"line two\n"
    assert c.readline() == b"rest"
    assert c.readline() == b""


def test_nonblocking_reads_give_none_when_nothing_waits():
    pair, drv, c, s = _connected()
    c.setblocking(False)
    assert c.read(4) is None
    assert c.read() is None
    assert c.readinto(bytearray(4)) is None
    assert c.readline() is None
    with expect_raises(OSError) as r:
        c.recv(4)  # BSD semantics stay: EAGAIN
    assert r.exception.args[0] == port.EAGAIN
    s.send(b"ab\ncd")
    pair.step()
    pair.step()
    assert c.readline() == b"ab\n"
    assert c.read(10) == b"cd"  # what there is, not None
    assert c.readline() is None


def test_blocking_read_times_out():
    pair, drv, c, s = _connected()
    c.settimeout(0.05)
    start = pair.now
    with expect_raises(OSError) as r:
        c.read(10)
    assert r.exception.args[0] == port.ETIMEDOUT
    assert port.ticks_diff(pair.now, start) < 1000  # the virtual clock: no hang


def test_read_after_reset_raises():
    pair, drv, c, s = _connected()
    drv.later(5, s.abort)
    with expect_raises(OSError) as r:
        c.read(10)
    assert r.exception.args[0] == port.ECONNRESET


# ---- writing -------------------------------------------------------------------------------


def test_write_takes_str_and_lengths():
    pair, drv, c, s = _connected()
    assert c.write("hello") == 5
    assert c.write(b"abcdef", 3) == 3
    assert c.write(bytearray(b"0123456"), 2, 3) == 3
    assert c.send("!") == 1
    assert _arrive(pair, s, 12) == b"helloabc234!"


def test_blocking_write_writes_everything():
    pair, drv, c, s = _connected()
    data = bytes(range(256)) * 24  # more than the send ring
    assert c.write(data) == len(data)
    assert _arrive(pair, s, len(data)) == data


def test_nonblocking_write_takes_what_fits_then_none():
    pair, drv, c, s = _connected()
    c.setblocking(False)
    n = c.write(b"z" * 20000)  # five times the send ring (and it fits a board's heap)
    assert 0 < n < 20000
    assert c.write(b"more") is None  # the ring is full: the stream's "try again"


def test_makefile_and_options():
    pair, drv, c, s = _connected()
    assert c.makefile("rwb", 0) is c
    c.setsockopt(sock.SOL_SOCKET, sock.SO_REUSEADDR, 1)
    c.setsockopt(sock.SOL_SOCKET, 4, 1)  # lwIP's number for it
    lst = pair.a.socket()
    lst.setsockopt(sock.SOL_SOCKET, sock.SO_REUSEADDR, 1)
    lst.bind(("0.0.0.0", 8080))
    lst.listen(2)
    lst.close()


# ---- ioctl and select.poll -----------------------------------------------------------------


def test_ioctl_poll_bits():
    pair, drv, c, s = _connected()
    c.setblocking(False)
    both = POLLIN | POLLOUT
    assert c.ioctl(_GET_FILENO, 0) < 0  # never a file descriptor
    assert c.ioctl(_POLL, both) == POLLOUT
    assert c.ioctl(_POLL, POLLIN) == 0
    s.send(b"data")
    assert c.ioctl(_POLL, both) == both  # ioctl drives the stack itself
    assert c.ioctl(_POLL, POLLOUT) == POLLOUT
    assert c.read(4) == b"data"
    s.close()
    assert c.ioctl(_POLL, both) == both  # FIN: readable (EOF), still writable
    assert c.read(4) == b""
    c.shutdown(sock.SHUT_WR)
    pair.run_until(lambda: c.state == "TIME-WAIT" or c.state == "CLOSED")
    assert c.ioctl(_POLL, POLLIN) & (POLLIN | POLLHUP) == POLLIN | POLLHUP
    assert c.ioctl(_CLOSE, 0) == 0
    assert c.ioctl(_POLL, both) == _POLLNVAL


def test_poll_never_connected_is_hup():
    # As lwIP's sockets: a socket that never connected polls as hung up, so a poller
    # waiting on it returns at once instead of sleeping until its timeout.
    from stack import Stack
    from stack.link.pipe import pipe

    net = Stack(pipe(mtu=1500, depth=4)[0], ip="10.0.0.1")
    s = net.socket()
    assert s.ioctl(_POLL, POLLIN | POLLOUT) == POLLHUP
    s.bind(("0.0.0.0", 7))
    assert s.poll_flags() == POLLHUP
    s.close()


def test_close_from_a_finaliser_with_the_heap_locked():
    # An SSLSocket dropped unclosed is closed by its __del__ during gc, heap locked: the
    # close reaches our ioctl, where sending the FIN cannot allocate. No exception may
    # escape; the connection, an orphan by then, finishes at the next polls.
    try:
        from micropython import heap_lock, heap_unlock
    except ImportError:  # CPython (the const shim) and ports without heap_lock
        heap_lock = heap_unlock = None
    pair = Pair()
    c, s, lsock = pair.connect(8080)
    c.close()  # the peer's FIN: s goes to CLOSE-WAIT
    pair.run_until(lambda: s.state == "CLOSE-WAIT", what="CLOSE-WAIT")
    tcb = s._tcb
    if heap_lock is not None:
        heap_lock()
    try:
        res = s.ioctl(_CLOSE, 0)
    finally:
        if heap_unlock is not None:
            heap_unlock()
    assert res == 0
    pair.run_until(lambda: not tcb.v[1], what="the TCB back in its pool")  # IN_USE
    assert pair.b.stats.tcpOutRsts == 0  # a FIN, late: not a reset


def test_ioctl_poll_after_reset():
    pair, drv, c, s = _connected()
    s.abort()
    flags = c.ioctl(_POLL, POLLIN | POLLOUT)
    assert flags & (POLLERR | POLLHUP) == POLLERR | POLLHUP
    assert c.ioctl(_POLL, 0) == POLLERR | POLLHUP  # reported even when not asked for


def test_select_poll_takes_our_socket():
    # MicroPython: a real stream, so select.poll registers it and asks our ioctl. CPython's
    # select.poll wants file descriptors: there the same steps go through ioctl above.
    try:
        import io
        import select

        is_stream = sock._Stream is io.IOBase and hasattr(select, "poll")
    except (ImportError, AttributeError):
        is_stream = False
    if not is_stream:
        pair, drv, c, s = _connected()
        c.setblocking(False)
        assert sock._Stream is object  # CPython: plain classes
        assert c.ioctl(_POLL, POLLIN) == 0
        return
    # Both connections on one Pair: a board's heap holds one Pair at a time (sizing.py),
    # and a Pair a finished helper made could stay reachable from a stale word on the C
    # stack (MicroPython's GC is conservative), so a second Pair may not fit.
    fixture = _pair()
    _poll_data_then_reset(fixture)
    _poll_fin(fixture)


def _poll_data_then_reset(fixture):
    import io
    import select

    pair, drv, c, s = _connected(fixture)
    c.setblocking(False)
    assert isinstance(c, io.IOBase)
    p = select.poll()
    p.register(c, select.POLLIN)
    assert p.poll(0) == []
    s.send(b"hi")
    ev = p.poll(0)
    assert len(ev) == 1 and ev[0][0] is c and ev[0][1] & select.POLLIN
    assert c.read(2) == b"hi"
    s.abort()
    ev = p.poll(0)
    assert len(ev) == 1 and ev[0][1] & (select.POLLERR | select.POLLHUP)
    p.unregister(c)


def _poll_fin(fixture):
    # FIN on a second connection: POLLIN (EOF is readable), then POLLHUP once we closed too
    import select

    pair, drv, c, s = _connected(fixture)
    c.setblocking(False)
    p = select.poll()
    p.register(c, select.POLLIN)
    s.close()
    ev = p.poll(0)
    assert len(ev) == 1 and ev[0][1] & select.POLLIN


def test_udp_socket_is_a_stream_too():
    pair = Pair()
    u = pair.a.socket(stack.AF_INET, stack.SOCK_DGRAM)
    v = pair.b.socket(stack.AF_INET, stack.SOCK_DGRAM)
    v.bind(("0.0.0.0", 9))
    u.setblocking(False)
    u.connect(("10.0.0.2", 9))
    assert u.ioctl(_GET_FILENO, 0) < 0
    assert u.ioctl(_POLL, POLLIN | POLLOUT) == POLLOUT
    assert u.readinto(bytearray(8)) is None
    assert u.read(8) is None
    assert u.write("ping") == 4
    pair.step()
    pair.step()
    v.setblocking(False)
    data, addr = v.recvfrom(16)
    assert data == b"ping"
    v.sendto(b"pong", addr)
    pair.step()
    pair.step()
    assert u.ioctl(_POLL, POLLIN) == POLLIN
    assert u.read(16) == b"pong"
    assert u.ioctl(_CLOSE, 0) == 0
    assert u.ioctl(_POLL, POLLIN) == _POLLNVAL
    v.close()


# ---- the socket module -------------------------------------------------------------------


def test_install_makes_import_socket_ours():
    saved = {k: sys.modules.get(k) for k in ("socket", "usocket")}
    try:
        pair, drv, srv = _pair()
        mod = stack.install(pair.a)
        import socket
        import usocket

        assert socket is mod and usocket is mod
        assert socket.AF_INET == 2 and socket.SOCK_STREAM == 1 and socket.SOCK_DGRAM == 2
        assert socket.SOL_SOCKET == 1 and socket.SO_REUSEADDR == 2
        assert socket.IPPROTO_TCP == 6 and socket.TCP_NODELAY == 1
        ai = socket.getaddrinfo("10.0.0.2", 7, 0, socket.SOCK_STREAM)[0]
        assert ai[0] == socket.AF_INET and ai[-1] == ("10.0.0.2", 7)
        c = socket.socket(ai[0], ai[1], ai[2])
        c.settimeout(5)
        c.connect(ai[-1])
        assert c.state == "ESTABLISHED"
        assert c.write("GET /\r\n") == 7
        pair.b.poll()
        s, _ = srv.accept()
        s.setblocking(False)
        assert _arrive(pair, s, 7) == b"GET /\r\n"
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.close()
        c.close()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
