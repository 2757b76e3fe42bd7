# Two stacks joined by the in-memory link, optionally through seeded fault injectors.
# MIT licence. Used by the two-stack tests and the demo's checks; runs on CPython and
# MicroPython alike (no hashlib needed here).

from stack import Stack, port
from stack.link.lossy import Lossy
from stack.link.pipe import pipe


class Pair:
    def __init__(self, seed=1, faults=None, jump=True, ethernet=False, **stack_kw):
        macs = (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02") if ethernet else None
        a, b = pipe(mtu=1500, depth=128, macs=macs)
        if faults:
            a = Lossy(a, seed=seed, **faults)
            b = Lossy(b, seed=seed + 1000, **faults)
        self.links = (a, b)
        self.now = port.ticks_add(0, -5000)  # cross the tick wrap early in every run
        self.a = Stack(a, ip="10.0.0.1", clock=self.clock, **stack_kw)
        self.b = Stack(b, ip="10.0.0.2", clock=self.clock, **stack_kw)
        self.steps = 0
        self.jump = jump  # False: the clock moves 1 ms per step, never to the next timer

    def clock(self):
        return self.now

    def step(self):
        """Poll both; advance the clock 1 ms, or jump to the next timer when all is idle."""
        self.steps += 1
        da = self.a.poll()
        db = self.b.poll()
        busy = any(getattr(l, "pending", lambda: 0)() for l in self._pipes())
        if busy or not self.jump:
            jump = 1
        else:
            for l in self.links:
                if hasattr(l, "flush"):
                    l.flush()
            nxt = [d for d in (da, db) if d is not None]
            jump = min(nxt) if nxt else 1
            if jump < 1:
                jump = 1
        self.now = port.ticks_add(self.now, jump)

    def _pipes(self):
        for l in self.links:
            yield getattr(l, "link", l)

    def run_until(self, cond, max_steps=200000, what="condition"):
        for _ in range(max_steps):
            if cond():
                return
            self.step()
        raise AssertionError("not reached after %d steps: %s" % (max_steps, what))

    def connect(self, port_no=80):
        """A (client) connects to B (server); returns (client, server_conn, listener)."""
        srv = self.b.socket()
        srv.setblocking(False)
        srv.bind(("0.0.0.0", port_no))
        srv.listen(4)
        c = self.a.socket()
        c.setblocking(False)
        try:
            c.connect(("10.0.0.2", port_no))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS
        got = []

        def accepted():
            try:
                conn, _ = srv.accept()
            except OSError:
                return False
            conn.setblocking(False)
            got.append(conn)
            return c.state == "ESTABLISHED"

        self.run_until(accepted, what="handshake")
        self.run_until(lambda: c.state == "ESTABLISHED", what="client established")
        return c, got[0], srv

    def pools_full(self):
        return (self.a.free_tcb_count() == len(self.a.tcbs)
                and self.b.free_tcb_count() == len(self.b.tcbs))


class Pump:
    """Moves `data` out of one socket into another side's buffer, non-blocking."""

    def __init__(self, src, dst, data):
        self.src = src
        self.dst = dst
        self.data = memoryview(data)
        self.sent = 0
        self.got = bytearray()
        self.eof = False
        self.error = 0
        self.buf = bytearray(4096)

    def move(self):
        if self.sent < len(self.data):
            try:
                self.sent += self.src.send(self.data[self.sent:self.sent + 4096])
            except OSError as e:
                if e.args[0] != port.EAGAIN:
                    raise
        if not self.eof and not self.error:
            try:
                n = self.dst.recv_into(self.buf)
                if n:
                    self.got += self.buf[:n]
                else:
                    self.eof = True
            except OSError as e:
                if e.args[0] != port.EAGAIN:
                    self.error = e.args[0]

    def done(self):
        return len(self.got) == len(self.data)
