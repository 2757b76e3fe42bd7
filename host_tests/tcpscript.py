# Scripted-segment harness: a fake remote TCP on the far end of an in-memory link.
# MIT licence.
#
# The test plays the peer (10.0.0.1) and talks to the stack under test (10.0.0.2) with
# hand-built IPv4/TCP packets; it never uses the stack's own codec, so a codec bug cannot
# hide itself. Sequence numbers in a test are written relative, as in the RFC figures:
#   - what the stack sends: seq relative to the stack's ISS, ack relative to PEER_ISS;
#   - what the test sends:  seq relative to PEER_ISS, ack relative to the stack's ISS.
# PEER_ISS sits just below 2**32 so every test crosses the 32-bit wrap.
#
# Three helpers carry the tests, as STYLE.md asks: peer.send(seg), peer.expect([seg, ...])
# and peer.expect_nothing(). Timers fire with peer.advance(ms) on a virtual clock that
# starts close to the tick wrap-around point.

import struct

from stack import Stack, port
from stack.link.pipe import pipe

PEER_IP = b"\x0a\x00\x00\x01"
STACK_IP = b"\x0a\x00\x00\x02"
PEER_ISS = 0xFFFFFFF0
PEER_PORT = 40000
WND = 4096  # the stack's default rx_buf: its advertised window when empty
MSS = 1460  # the stack's MSS on a 1500-byte link

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"))
_M32 = 0xFFFFFFFF


def _csum(data):
    if len(data) & 1:
        data = data + b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def flags_text(flags):
    return ",".join(name for bit, name in _NAMES if flags & bit)


class Seg:
    """One segment, relative numbers. wnd and mss are compared only when given (not None)."""

    def __init__(self, flags, seq=0, ack=0, wnd=None, data=b"", mss=None):
        self.flags = flags
        self.seq = seq
        self.ack = ack
        self.wnd = wnd
        self.data = bytes(data)
        self.mss = mss
        self.raw_seq = None  # wire values, filled in on segments the stack sent
        self.raw_ack = None
        self.sport = self.dport = 0

    def __eq__(self, other):
        if self.flags != other.flags or self.seq != other.seq or self.data != other.data:
            return False
        if self.flags & ACK and self.ack != other.ack:
            return False
        if self.wnd is not None and other.wnd is not None and self.wnd != other.wnd:
            return False
        if self.mss is not None and other.mss is not None and self.mss != other.mss:
            return False
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        s = "<SEQ=%d>" % self.seq
        if self.flags & ACK:
            s += "<ACK=%d>" % self.ack
        s += "<CTL=%s>" % flags_text(self.flags)
        if self.wnd is not None:
            s += "<WND=%d>" % self.wnd
        if self.mss is not None:
            s += "<MSS=%d>" % self.mss
        if self.data:
            s += "<DATA=%d>" % len(self.data)
        return s


class Peer:
    """The remote end. `net` is the stack under test; `now` its virtual clock."""

    def __init__(self, start_ms=None, peer_port=PEER_PORT, depth=256, **stack_kw):
        # Start 10 s before the tick counter wraps: timers in every test cross the wrap.
        # depth: frames the link holds each way (a test holding two Peers takes fewer).
        self.now = port.ticks_add(0, -10_000) if start_ms is None else start_ms
        self.link_test, link_stack = pipe(mtu=1500, depth=depth)
        self.net = Stack(link_stack, ip="10.0.0.2", clock=self.clock, **stack_kw)
        self.iss = None  # the stack's ISS, learnt from its SYN or SYN,ACK
        self.port = peer_port
        self.lport = 0  # the stack's port on this connection
        self.buf = bytearray(1600)
        self.wnd = stack_kw.get("rx_buf", WND)  # the stack's window while its ring is empty

    def clock(self):
        return self.now

    # ---- building and parsing ----------------------------------------------------------

    def packet(self, seg, seq_abs=None, ack_abs=None, sport=None, dport=None):
        seq = (PEER_ISS + seg.seq) & _M32 if seq_abs is None else seq_abs
        if ack_abs is not None:
            ack = ack_abs
        elif seg.flags & ACK or seg.ack:
            ack = (self.iss + seg.ack) & _M32
        else:
            ack = 0
        opts = b""
        if seg.mss is not None:
            opts = struct.pack(">BBH", 2, 4, seg.mss)
        hlen = 20 + len(opts)
        wnd = 65535 if seg.wnd is None else seg.wnd
        sport = self.port if sport is None else sport
        dport = self.lport if dport is None else dport
        tcp = bytearray(struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (hlen // 4) << 4,
                                    seg.flags, wnd, 0, 0) + opts + seg.data)
        pseudo = PEER_IP + STACK_IP + struct.pack(">BBH", 0, 6, len(tcp))
        c = 0xFFFF ^ _csum(pseudo + bytes(tcp))
        tcp[16], tcp[17] = c >> 8, c & 0xFF
        ip = bytearray(struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0)
                       + PEER_IP + STACK_IP)
        c = 0xFFFF ^ _csum(bytes(ip))
        ip[10], ip[11] = c >> 8, c & 0xFF
        return bytes(ip) + bytes(tcp)

    def parse(self, pkt):
        assert pkt[0] == 0x45, "not a plain IPv4 header"
        assert _csum(pkt[:20]) == 0xFFFF, "bad IP checksum"
        assert pkt[6] & 0x40, "DF not set"
        total = (pkt[2] << 8) | pkt[3]
        assert total == len(pkt)
        tcp = pkt[20:total]
        pseudo = pkt[12:20] + struct.pack(">BBH", 0, 6, len(tcp))
        assert _csum(pseudo + tcp) == 0xFFFF, "bad TCP checksum"
        sport, dport, seq, ack, off, flags, wnd = struct.unpack(">HHIIBBH", tcp[:16])
        hlen = (off >> 4) * 4
        mss = None
        i = 20
        while i < hlen:
            kind = tcp[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if kind == 2:
                mss = (tcp[i + 2] << 8) | tcp[i + 3]
            i += tcp[i + 1]
        if flags & SYN and self.iss is None:
            self.iss = seq
            self.lport = sport
        base = self.iss if self.iss is not None else seq
        s = Seg(flags, (seq - base) & _M32, (ack - PEER_ISS) & _M32, wnd, tcp[hlen:], mss)
        s.raw_seq, s.raw_ack = seq, ack
        s.sport, s.dport = sport, dport
        return s

    # ---- the three helpers -------------------------------------------------------------

    def send(self, seg, **raw):
        """Deliver seg to the stack and let it process (one poll at the current time)."""
        self.link_test.send(self.packet(seg, **raw))
        self.net.poll()

    def received(self):
        out = []
        while True:
            n = self.link_test.recv_into(self.buf)
            if not n:
                return out
            out.append(self.parse(bytes(self.buf[:n])))

    def expect(self, segs):
        self.net.poll()
        got = self.received()
        assert got == segs, "expected %r\n     got %r" % (segs, got)
        return got

    def expect_nothing(self, advance_ms=0):
        if advance_ms:
            self.advance(advance_ms)
        else:
            self.net.poll()
        got = self.received()
        assert not got, "expected nothing, got %r" % (got,)

    def advance(self, ms):
        """Move the clock forward in steps no larger than 100 ms, polling at each."""
        while ms > 0:
            step = 100 if ms > 100 else ms
            self.now = port.ticks_add(self.now, step)
            self.net.poll()
            ms -= step

    # ---- builders: each state from the one before (STYLE.md) -------------------------

    def connect(self, dport=80):
        """Active open from the stack; returns its non-blocking socket in ESTABLISHED."""
        s = self.net.socket()
        s.setblocking(False)
        try:
            s.connect(("10.0.0.1", self.port))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS, e
        self.expect([Seg(SYN, 0, wnd=self.wnd, mss=MSS)])
        self.send(Seg(SYN | ACK, 0, 1, mss=MSS))
        self.expect([Seg(ACK, 1, 1, wnd=self.wnd)])
        assert s.state == "ESTABLISHED", s.state
        return s

    def listen(self, lport=80, backlog=2):
        srv = self.net.socket()
        srv.setblocking(False)
        srv.bind(("0.0.0.0", lport))
        srv.listen(backlog)
        self.lport = lport
        return srv

    def accept(self, srv):
        """Passive open into srv: SYN, SYN,ACK, ACK, accept(). Returns the connection."""
        self.iss = None
        self.send(Seg(SYN, 0, mss=MSS))
        self.expect([Seg(SYN | ACK, 0, 1, wnd=self.wnd, mss=MSS)])
        self.send(Seg(ACK, 1, 1))
        conn, addr = srv.accept()
        assert addr == ("10.0.0.1", self.port), addr
        conn.setblocking(False)
        assert conn.state == "ESTABLISHED"
        return conn

    def state(self):
        """State of the one connection (TCB or TIME-WAIT record), 'CLOSED' if none."""
        conns = [c for c in self.net.connections() if c[4] != "LISTEN"]
        if not conns:
            return "CLOSED"
        assert len(conns) == 1, conns
        return conns[0][4]

    def pool_full(self):
        """Every TCB back in the pool."""
        return self.net.free_tcb_count() == len(self.net.tcbs)


def errno_of(fn, *args):
    """The errno fn(*args) raised as OSError; fails if it returned normally."""
    try:
        fn(*args)
    except OSError as e:
        return e.args[0]
    raise AssertionError("no OSError from %r" % (fn,))
