# Blocking sockets: calls drive poll() themselves until done or timed out. MIT licence.
# The peer stack is polled from inside our link's recv_into, so one thread plays both.

from pair import Pair
from testing import expect_raises

from stack import port


class _Driving:
    """Wraps a link: every read also runs the other stack and moves the clock 1 ms."""

    def __init__(self, link, pair):
        self.link = link
        self.pair = pair
        self.mtu = link.mtu
        self.mac = link.mac

    def send(self, frame):
        self.link.send(frame)

    def recv_into(self, buf):
        self.pair.b.poll()
        self.pair.now = port.ticks_add(self.pair.now, 1)
        return self.link.recv_into(buf)


def _pair():
    pair = Pair()
    pair.a.link = _Driving(pair.a.link, pair)
    srv = pair.b.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", 7))
    srv.listen(1)
    return pair, srv


def test_blocking_connect_send_recv_close():
    pair, srv = _pair()
    c = pair.a.socket()
    c.settimeout(5)
    c.connect(("10.0.0.2", 7))  # returns once ESTABLISHED
    assert c.state == "ESTABLISHED"
    pair.b.poll()  # our final ACK reaches the server
    s, _ = srv.accept()
    s.setblocking(False)
    c.sendall(b"x" * 6000)  # more than the send ring: blocks until acknowledged
    got = bytearray()
    for _ in range(1000):
        pair.a.poll()
        try:
            got += s.recv(4096)
        except OSError:
            pass
        if len(got) == 6000:
            break
    assert got == b"x" * 6000
    s.send(b"reply")
    assert c.recv(100) == b"reply"  # blocks until it arrives
    s.close()
    assert c.recv(100) == b""


def test_blocking_recv_times_out():
    pair, srv = _pair()
    c = pair.a.socket()
    c.settimeout(5)
    c.connect(("10.0.0.2", 7))
    c.settimeout(0.05)
    with expect_raises(OSError) as r:
        c.recv(10)  # nothing will come
    assert r.exception.args[0] == port.ETIMEDOUT


def test_blocking_connect_refused():
    pair, srv = _pair()
    c = pair.a.socket()
    c.settimeout(5)
    with expect_raises(OSError) as r:
        c.connect(("10.0.0.2", 8))  # nothing listens on 8: RST
    assert r.exception.args[0] == port.ECONNREFUSED
