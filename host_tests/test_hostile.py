# Hostile input: random and mutated segments thrown at a stack in every state (hypothesis).
# poll() never raises, the invariants hold after every segment, and once the application
# lets go and the timers run out, nothing is left allocated. CPython only. MIT licence.

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpscript import ACK, FIN, MSS, PSH, WND, Peer, Seg, _csum

from stack import SHUT_WR
from stack.tcp import CLOSE_WAIT, CLOSED, ESTABLISHED

KW = dict(msl_ms=500, retries=3, syn_retries=2, fin_timeout_ms=2000, rx_buf=2048,
          tx_buf=2048, tw_slots=2, tcbs=3)


def _client(p):
    s = p.connect()
    s.send(b"q" * 300)  # something in flight
    return s


def _build(state):
    """A Peer plus the application's sockets, with one connection in `state`."""
    p = Peer(**KW)
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
    return p, socks


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
actions = st.lists(st.tuples(segments, mutations, st.integers(0, 3000)), min_size=1,
                   max_size=12)


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


def _check_invariants(net):
    free = net.free_tcb_count()
    used = [t for t in net.tcbs if t.in_use]
    assert free + len(used) == len(net.tcbs)
    estab = 0
    for t in net.tcbs:
        if not t.in_use:
            assert t.state == CLOSED and t.rx_count == 0 and t.tx_count == 0
            continue
        if t.state == ESTABLISHED or t.state == CLOSE_WAIT:
            estab += 1
        assert 0 <= t.rx_count <= t.rx_size and 0 <= t.tx_count <= t.tx_size
        if t.state != CLOSED:
            assert t.snd_una <= t.snd_max and t.snd_nxt <= t.snd_max, (
                t.snd_una, t.snd_nxt, t.snd_max)
            assert t.snd_una <= t.snd_nxt or t.snd_nxt == 0
            assert t.rcv_adv >= t.rcv_nxt or t.state < ESTABLISHED
            assert t.snd_max - t.snd_una <= t.tx_count + 2  # in flight: data + SYN/FIN
        # Out-of-order ranges: sorted, disjoint, inside the free part of the ring.
        last = 0
        for start, end in t.rx_ranges():
            assert last < start < end, t.rx_ranges()
            last = end
        assert last <= t.rx_size - t.rx_count
    assert net.stats.tcpCurrEstab == estab
    assert 0 <= net.tw.used <= net.tw.slots


@settings(max_examples=int(__import__("os").environ.get("HOSTILE_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=st.sampled_from(STATES), acts=actions)
def test_hostile_segments_in_every_state(state, acts):
    p, socks = _build(state)
    for (flags, sq, ack, wnd, data, mss), muts, wait in acts:
        seg = Seg(flags, sq & 0xFFFFFFFF, 0, wnd=wnd, data=data[:1400], mss=mss)
        ack_abs = ((p.iss or 0) + ack) & 0xFFFFFFFF
        pkt = p.packet(seg, ack_abs=ack_abs)
        if muts:
            pkt = _mutate(p, pkt, muts)
        p.link_test.send(pkt)
        p.net.poll()  # must not raise
        _check_invariants(p.net)
        p.advance(wait)
        _check_invariants(p.net)
        p.received()
        for s in socks:  # the application pokes at its sockets too
            try:
                s.recv(10)
            except OSError:
                pass
    for s in socks:
        s.close()
    # Long enough for every retry, FIN-WAIT-2 timeout and TIME-WAIT to run out.
    for _ in range(40):
        p.advance(10000)
        p.received()
        if p.pool_full() and p.net.tw.used == 0:
            break
    _check_invariants(p.net)
    assert p.pool_full(), [(t.state, t.orphan) for t in p.net.tcbs if t.in_use]
    assert p.net.tw.used == 0
    assert not p.net.listeners


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_frames_never_raise(frame):
    p, socks = _build("ESTABLISHED")
    p.link_test.send(frame)
    p.net.poll()
    _check_invariants(p.net)
