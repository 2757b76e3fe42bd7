# Hostile input: random and mutated segments thrown at a stack in every state (hypothesis),
# several per poll(). poll() never raises, the invariants (fuzz.py's Invariants, the same
# the batched fuzzer checks) hold after every poll(), and once the application lets go and
# the timers run out, nothing is left allocated. CPython only; test_fuzz.py runs the
# batched fuzzer everywhere. MIT licence.

import os
import struct

from fuzz import Invariants, checked_poll
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpscript import ACK, FIN, MSS, Peer, Seg, _csum

from stack import SHUT_WR, port

KW = dict(msl_ms=500, retries=3, syn_retries=2, fin_timeout_ms=2000, rx_buf=2048,
          tx_buf=2048, tw_slots=2, tcbs=3)


def _client(p):
    s = p.connect()
    s.send(b"q" * 300)  # something in flight
    return s


def _build(state):
    """A Peer, the application's sockets, and the stack's Invariants (made before any
    connection, so they know a fresh TCB), with one connection in `state`."""
    p = Peer(**KW)
    inv = Invariants(p.net)
    socks = []
    if state == "LISTEN":
        socks.append(p.listen())
    elif state == "SYN-RECEIVED":
        socks.append(p.listen())
        p.send(Seg(0x02, 0, mss=MSS))
    elif state == "SYN-SENT":
        s = p.net.socket()
        s.setblocking(False)
        try:
            s.connect(("10.0.0.1", p.port))
        except OSError:
            pass
        socks.append(s)
    else:
        s = _client(p)
        socks.append(s)
        p.send(Seg(ACK, 1, 301))
        if state in ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT"):
            s.shutdown(SHUT_WR)
            if state == "FIN-WAIT-2" or state == "TIME-WAIT":
                p.send(Seg(ACK, 1, 302))
            if state == "CLOSING":
                p.send(Seg(FIN | ACK, 1, 301))
            if state == "TIME-WAIT":
                p.send(Seg(FIN | ACK, 1, 302))
        elif state in ("CLOSE-WAIT", "LAST-ACK"):
            p.send(Seg(FIN | ACK, 1, 301))
            if state == "LAST-ACK":
                s.close()
    p.received()
    inv.check(True, -1, socks)
    return p, socks, inv


STATES = ("LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
          "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT")

near = st.integers(-70000, 70000)
segments = st.builds(
    lambda flags, seq, ack, far_seq, far_ack, wnd, data, mss: (
        flags, far_seq if far_seq is not None else seq,
        far_ack if far_ack is not None else ack, wnd, data, mss),
    st.integers(0, 0x3F), near, near,
    st.none() | st.integers(0, 0xFFFFFFFF), st.none() | st.integers(0, 0xFFFFFFFF),
    st.integers(0, 65535), st.binary(max_size=1600), st.none() | st.integers(0, 65535))
mutations = st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4)
# A batch: 1 to 8 segments taken by one poll(), then the clock moves on 0 to 3 s.
batch = st.lists(st.tuples(segments, mutations), min_size=1, max_size=8)
batches = st.lists(st.tuples(batch, st.integers(0, 3000)), min_size=1, max_size=8)


def _mutate(p, pkt, muts):
    """Overwrite bytes of the TCP header/payload, then make the checksums right again, so
    the damage reaches the TCP code instead of dying at the checksum."""
    pkt = bytearray(pkt)
    n = len(pkt)
    for pos, val in muts:
        i = 20 + pos
        if i < n:
            pkt[i] = val
    pkt[36] = pkt[37] = 0
    pseudo = pkt[12:20] + struct.pack(">BBH", 0, 6, n - 20)
    c = 0xFFFF ^ _csum(bytes(pseudo) + bytes(pkt[20:]))
    pkt[36], pkt[37] = c >> 8, c & 0xFF
    return bytes(pkt)


@settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(state=st.sampled_from(STATES), batches=batches)
def test_hostile_segments_in_every_state(state, batches):
    p, socks, inv = _build(state)
    net = p.net
    for batch, wait in batches:
        # Several segments per poll(), as a board polling every 10-50 ms takes them: one
        # poll() per segment hid issue 10 item 1 (a SYN, the same SYN and its ACK).
        for (flags, sq, ack, wnd, data, mss), muts in batch:
            seg = Seg(flags, sq & 0xFFFFFFFF, 0, wnd=wnd, data=data[:1400], mss=mss)
            ack_abs = ((p.iss or 0) + ack) & 0xFFFFFFFF
            pkt = p.packet(seg, ack_abs=ack_abs)
            if muts:
                pkt = _mutate(p, pkt, muts)
            p.link_test.send(pkt)
        checked_poll(net, inv, socks)  # must not raise
        _advance(p, inv, socks, wait)
        p.received()
        for s in socks:  # the application pokes at its sockets too
            try:
                s.recv(10)
            except OSError:
                pass
            inv.check(False, -1, socks)
    for s in socks:
        s.close()
    inv.check(False, -1, socks)
    # Two hours, deadline to deadline (as a board sleeps): every retry, FIN-WAIT-2
    # timeout, orphan lifetime and TIME-WAIT runs out.
    _advance(p, inv, socks, 2 * 3600 * 1000)
    assert p.pool_full(), [(t.state, t.orphan) for t in net.tcbs if t.in_use]
    assert net.tw.used == 0
    assert not net.listeners


def _advance(p, inv, socks, ms):
    """Move the clock up to ms forward, polling at each deadline poll() names (at most a
    minute apart), with the invariants after every poll(); done early once poll() says
    nothing is pending and nothing is in use (then nothing can happen any more)."""
    r = 0
    while ms > 0:
        if r is None and p.pool_full() and not p.net.tw.used:
            return
        step = 60000 if r is None or r > 60000 else (r if r > 0 else 1)
        if step > ms:
            step = ms
        p.now = port.ticks_add(p.now, step)
        ms -= step
        r = checked_poll(p.net, inv, socks)
        p.received()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_frames_never_raise(frame):
    p, socks, inv = _build("ESTABLISHED")
    p.link_test.send(frame)
    checked_poll(p.net, inv, socks)
