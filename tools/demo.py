# The demo: two stacks on an in-memory wire, every way of closing, as RFC 793 figures.
# SPDX-License-Identifier: MIT
#
#   make demo          (or: python3 tools/demo.py)
#
# Each scenario opens a connection between TCP A (10.0.0.1) and TCP B (10.0.0.2), and
# prints one row per segment: A's state, the segment, B's state. Segments are delivered
# one at a time, so the rows are the order things happened on the wire.

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from stack import SHUT_WR, Stack, port  # noqa: E402
from stack.trace import Figure  # noqa: E402

MSL_MS = 1000


class Wire:
    """Both directions of the link, in send order; the demo delivers one frame at a time."""

    def __init__(self):
        self.frames = []  # (from_left, frame, sender's state when sent)


class End:
    def __init__(self, wire, left):
        self.mtu = 1500
        self.mac = None
        self.wire = wire
        self.left = left
        self.inbox = []
        self.net = None

    def send(self, frame):
        self.wire.frames.append((self.left, bytes(frame), conn_state(self.net)))

    def recv_into(self, buf):
        if not self.inbox:
            return 0
        f = self.inbox.pop(0)
        buf[:len(f)] = f
        return len(f)


def conn_state(net):
    conns = [c for c in net.connections() if c[4] != "LISTEN"]
    return conns[0][4] if conns else "CLOSED"


class Scene:
    def __init__(self, title):
        print()
        print("== " + title)
        self.now = port.ticks_add(0, -3000)
        self.wire = Wire()
        self.ends = (End(self.wire, True), End(self.wire, False))
        self.a = Stack(self.ends[0], ip="10.0.0.1", clock=self.clock, msl_ms=MSL_MS)
        self.b = Stack(self.ends[1], ip="10.0.0.2", clock=self.clock, msl_ms=MSL_MS)
        self.ends[0].net, self.ends[1].net = self.a, self.b
        self.fig = Figure()
        self.notes = []  # application events during a delivery, printed after its row

    def clock(self):
        return self.now

    def states(self):
        self.fig.states(conn_state(self.a), conn_state(self.b))

    def deliver(self, max_wait_ms=500):
        """Move every frame across, one at a time; wait out short timers (delayed ACK)."""
        for _ in range(200):
            self.a.poll()
            self.b.poll()
            if not self.wire.frames:
                due = [d for d in (self.a.poll(), self.b.poll()) if d is not None]
                if self.wire.frames:
                    continue
                if not due or min(due) > max_wait_ms:
                    return
                self.now = port.ticks_add(self.now, max(min(due), 1))
                continue
            left, frame, sender_state = self.wire.frames.pop(0)
            dst = self.ends[1] if left else self.ends[0]
            dst.inbox.append(frame)
            dst.net.poll()
            receiver = conn_state(dst.net)
            if left:
                self.fig.segment(frame, 0, len(frame), sender_state, receiver, True)
            else:
                self.fig.segment(frame, 0, len(frame), receiver, sender_state, False)
            while self.notes:
                self.fig.note(*self.notes.pop(0))
        raise RuntimeError("the demo did not settle")

    def open(self):
        srv = self.b.socket()
        srv.setblocking(False)
        srv.bind(("0.0.0.0", 80))
        srv.listen(1)
        self.srv = srv
        c = self.a.socket()
        c.setblocking(False)
        c.setsockopt(6, 1, 1)  # TCP_NODELAY: one send, one segment, for clear figures
        self.states()
        self.fig.note("(connect)")
        try:
            c.connect(("10.0.0.2", 80))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS
        self.deliver()
        s, _ = srv.accept()
        s.setblocking(False)
        s.setsockopt(6, 1, 1)
        return c, s

    def later(self, ms, what):
        self.fig.note("(%s)" % what)
        self.now = port.ticks_add(self.now, ms)
        self.a.poll()
        self.b.poll()
        self.states()


def recv_text(sock):
    try:
        data = sock.recv(100)
        return "recv() -> %r" % data
    except OSError as e:
        return "recv() raised %s" % {port.ECONNRESET: "ECONNRESET",
                                      port.ETIMEDOUT: "ETIMEDOUT"}.get(e.args[0], e)


def normal_close():
    sc = Scene("Open, exchange data, normal close (FIN four-way)")
    a, b = sc.open()
    sc.fig.note("send(b'hello')")
    a.send(b"hello")
    sc.deliver()
    sc.fig.note("", "recv() -> %r; send(b'world')" % b.recv(100))
    b.send(b"world")
    sc.deliver()
    sc.fig.note("recv() -> %r" % a.recv(100))
    sc.fig.note("(Close)")
    a.close()
    sc.deliver(max_wait_ms=0)
    sc.fig.note("", recv_text(b) + "; (Close)")
    b.close()
    sc.deliver()
    sc.later(2 * MSL_MS, "2 MSL later")


def three_way_close():
    sc = Scene("Three-way close: B closes as soon as it sees A's FIN (FIN,ACK)")
    a, b = sc.open()

    def b_reacts():
        try:
            if b.recv(100) == b"":
                sc.notes.append(("", "recv() -> b''; (Close) at once"))
                b.close()
                sc.b.after_input = None
        except OSError:
            pass

    sc.b.after_input = b_reacts
    sc.fig.note("(Close)")
    a.close()
    sc.deliver()
    sc.later(2 * MSL_MS, "2 MSL later")


def simultaneous_close():
    sc = Scene("Simultaneous close: the FINs cross (CLOSING)")
    a, b = sc.open()
    sc.fig.note("(Close)", "(Close)")
    a.close()
    b.close()
    sc.deliver()
    sc.later(2 * MSL_MS, "2 MSL later")


def half_close():
    sc = Scene("Half-close: A shuts down sending, B keeps sending")
    a, b = sc.open()
    sc.fig.note("shutdown(SHUT_WR)")
    a.shutdown(SHUT_WR)
    sc.deliver()
    sc.fig.note("", recv_text(b) + "; send(b'still talking')")
    b.send(b"still talking")
    sc.deliver()
    sc.fig.note(recv_text(a), "send(b'bye'); (Close)")
    b.send(b"bye")
    b.close()
    sc.deliver()
    sc.fig.note(recv_text(a) + " " + recv_text(a))
    a.close()
    sc.later(2 * MSL_MS, "2 MSL later")


def abort():
    sc = Scene("Abort: A resets the connection (RST)")
    a, b = sc.open()
    sc.fig.note("abort()")
    a.abort()
    sc.deliver()
    sc.fig.note("", recv_text(b))
    b.close()


def unread_close():
    sc = Scene("Close with unread data: RST instead of FIN (RFC 1122 4.2.2.13)")
    a, b = sc.open()
    sc.fig.note("", "send(b'unread')")
    b.send(b"unread")
    sc.deliver()
    sc.fig.note("(Close) without reading")
    a.close()
    sc.deliver()
    sc.fig.note("", recv_text(b))
    b.close()
    print("    A counted tcpRstsUnreadData = %d" % sc.a.stats.tcpRstsUnreadData)


def main():
    print("Two stacks on an in-memory link; sequence numbers shown from ISN+100 (A), "
          "ISN+300 (B). MSL is %d ms here." % MSL_MS)
    for scene in (normal_close, three_way_close, simultaneous_close, half_close, abort,
                  unread_close):
        scene()


if __name__ == "__main__":
    main()
