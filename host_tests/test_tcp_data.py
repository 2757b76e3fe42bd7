# Data transfer: windows, persist, out-of-order, retransmission, fast retransmit, delayed
# ACK, keepalive, scripted segment by segment. MIT licence.

from tcpscript import ACK, MSS, PSH, WND, Peer, Seg, _csum, errno_of

from stack import port


class TestEstablishedData:
    def test_established_zero_window_persist_probes(self):
        p = Peer()
        s = p.connect()
        p.send(Seg(ACK, 1, 1, wnd=0))
        s.send(b"data")
        p.expect_nothing()
        # Probes: an old sequence number (SND.UNA - 1), no data, backing off.
        for wait in (1000, 2000, 4000):
            p.expect_nothing(wait - 1)
            p.advance(1)
            p.expect([Seg(ACK, 0, 1, wnd=WND)])
        p.send(Seg(ACK, 1, 1, wnd=100))  # the window opens
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"data")])
        assert p.net.stats.tcpPersistProbes == 3
        assert s.state == "ESTABLISHED"

    def test_established_out_of_order_then_fill(self):
        p = Peer()
        s = p.connect()
        p.send(Seg(ACK | PSH, 11, 1, data=b"B" * 10))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])  # at once: a duplicate ACK shows the hole
        assert errno_of(s.recv, 100) == port.EAGAIN
        p.send(Seg(ACK | PSH, 1, 1, data=b"A" * 10))
        p.expect([Seg(ACK, 1, 21, wnd=WND - 20)])  # at once: the hole is filled
        assert s.recv(100) == b"A" * 10 + b"B" * 10
        assert p.net.stats.tcpOutOfOrderSegs == 1

    def test_established_out_of_order_fin_waits_for_the_gap(self):
        p = Peer()
        s = p.connect()
        p.send(Seg(ACK | PSH | 0x01, 6, 1, data=b"world"))  # FIN after a gap
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        p.send(Seg(ACK | PSH, 1, 1, data=b"hello"))
        p.expect([Seg(ACK, 1, 11, wnd=WND - 10)])
        assert s.state == "ESTABLISHED"  # the FIN was not kept: it must come again
        p.send(Seg(ACK | 0x01, 11, 1))
        p.expect([Seg(ACK, 1, 12, wnd=WND - 11)])
        assert s.recv(100) == b"helloworld"
        assert s.recv(100) == b""

    def test_established_rexmit_timeout_with_backoff(self):
        p = Peer(retries=2)
        s = p.connect()
        s.send(b"x" * 100)
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"x" * 100)])
        for wait in (1000, 2000):
            p.expect_nothing(wait - 1)
            p.advance(1)
            p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"x" * 100)])
        p.advance(4000)
        assert s.state == "CLOSED"
        assert errno_of(s.send, b"y") == port.ETIMEDOUT
        assert p.net.stats.tcpRetransSegs == 2
        assert p.net.stats.tcpTimeouts == 1

    def test_established_rexmit_then_ack_resumes(self):
        p = Peer()
        s = p.connect()
        s.send(b"x" * 100)
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"x" * 100)])
        p.advance(1000)
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"x" * 100)])
        p.send(Seg(ACK, 1, 101))
        p.expect_nothing(10000)  # all acknowledged: the timer is off

    def test_established_fast_retransmit(self):
        p = Peer()
        s = p.net.socket()
        s.setblocking(False)
        errno_of(s.connect, ("10.0.0.1", p.port))
        p.expect([Seg(0x02, 0, wnd=WND, mss=MSS)])
        p.send(Seg(0x12, 0, 1, mss=536))  # SYN,ACK: MSS 536, so cwnd = 4 segments
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        s.send(b"x" * 4000)
        got = p.received()
        assert [(g.seq, len(g.data)) for g in got] == [(1, 536), (537, 536), (1073, 536),
                                                       (1609, 536)], got
        for _ in range(3):
            p.send(Seg(ACK, 1, 1))  # segment 1 was lost; the rest arrived
        got = p.received()
        # Fast retransmit of segment 1, then one new segment as cwnd = ssthresh + 3 allows.
        assert [(g.seq, len(g.data)) for g in got] == [(1, 536), (2145, 536)], got
        assert p.net.stats.tcpFastRetransmits == 1

    def test_established_delayed_ack(self):
        p = Peer()
        s = p.connect()
        p.send(Seg(ACK | PSH, 1, 1, data=b"one"))
        p.expect_nothing(199)
        p.advance(1)
        p.expect([Seg(ACK, 1, 4, wnd=WND - 3)])

    def test_established_ack_every_second_full_segment(self):
        p = Peer()
        s = p.connect()
        p.send(Seg(ACK, 1, 1, data=b"a" * MSS))
        p.expect_nothing()
        p.send(Seg(ACK, 1 + MSS, 1, data=b"b" * MSS))
        p.expect([Seg(ACK, 1, 1 + 2 * MSS, wnd=WND - 2 * MSS)])

    def test_established_window_fills_then_update_after_read(self):
        p = Peer()
        s = p.connect()
        p.send(Seg(ACK, 1, 1, data=b"a" * 1460))
        p.send(Seg(ACK, 1461, 1, data=b"b" * 1460))
        p.expect([Seg(ACK, 1, 2921, wnd=WND - 2920)])
        p.send(Seg(ACK, 2921, 1, data=b"c" * 1176))
        p.advance(200)
        p.expect([Seg(ACK, 1, 4097, wnd=0)])
        p.send(Seg(ACK, 4097, 1, data=b"d"))  # beyond the window: dropped, re-ACKed
        p.expect([Seg(ACK, 1, 4097, wnd=0)])
        assert len(s.recv(5000)) == 4096
        p.expect([Seg(ACK, 1, 4097, wnd=WND)])  # window update after the read

    def test_established_keepalive(self):
        p = Peer(keepalive_ms=10000, keepalive_intvl_ms=1000, keepalive_probes=2)
        s = p.connect()
        p.expect_nothing(9999)
        p.advance(1)
        p.expect([Seg(ACK, 0, 1, wnd=WND)])
        p.send(Seg(ACK, 1, 1))  # answered: idle again
        p.expect_nothing(9999)
        p.advance(1)
        p.expect([Seg(ACK, 0, 1, wnd=WND)])
        p.advance(1000)
        p.expect([Seg(ACK, 0, 1, wnd=WND)])
        p.advance(1000)
        assert s.state == "CLOSED"
        assert errno_of(s.recv, 1) == port.ETIMEDOUT
        assert p.net.stats.tcpKeepaliveDrops == 1

    def test_established_send_after_shutdown_is_epipe(self):
        p = Peer()
        s = p.connect()
        s.shutdown(1)
        assert errno_of(s.send, b"x") == port.EPIPE

    def test_established_nodelay_sends_small_segments_at_once(self):
        p = Peer()
        s = p.connect()
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        s.send(b"a")
        s.send(b"b")
        got = p.received()
        assert [g.data for g in got] == [b"a", b"b"], got


class TestIdlePoll:
    # poll() scans the connections only when something changed or a deadline came
    # (iface.py `dirty`, `due_at`): an idle poll must not cost one scan per connection,
    # and nothing the application does may wait for a deadline to be seen.

    def test_idle_poll_does_not_scan_connections(self):
        p = Peer()
        s = p.connect()
        p.expect_nothing()
        calls = [0, 0]
        tcb = s._tcb
        on_timer, output = tcb.on_timer, tcb.output

        def counted_timer(now):
            calls[0] += 1
            on_timer(now)

        def counted_output(now, force=False):
            calls[1] += 1
            output(now, force)

        tcb.on_timer = counted_timer
        tcb.output = counted_output
        for _ in range(20):
            p.net.poll()
        assert calls == [0, 0]
        # A segment for it: that poll runs its output (an ACK may be due), nothing due
        # runs no timer.
        p.send(Seg(ACK | PSH, 1, 1, data=b"x"))
        assert calls == [0, 1]
        assert s.recv(10) == b"x"

    def test_idle_poll_wakes_for_the_earliest_deadline(self):
        # A board sleeps for what poll() returns: the keepalive probe must leave on time.
        # (poll() may name an earlier time, a deadline that has gone since: harmless.)
        p = Peer(keepalive_ms=10000, keepalive_intvl_ms=1000, keepalive_probes=2)
        s = p.connect()
        p.expect_nothing()
        t0 = p.now
        got = []
        for _ in range(20):
            left = p.net.poll()
            got = p.received()
            if got:
                break
            assert left is not None and left > 0
            p.now = port.ticks_add(p.now, left)
        assert got == [Seg(ACK, 0, 1, wnd=WND)]  # the keepalive probe
        assert port.ticks_diff(p.now, t0) == 10000
        assert s.state == "ESTABLISHED"

    def test_nodelay_set_later_releases_what_nagle_held(self):
        p = Peer()
        s = p.connect()
        s.send(b"a")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"a")])
        s.send(b"b")  # held: "a" is not acknowledged yet (Nagle)
        p.expect_nothing()
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: the next poll sends it
        p.expect([Seg(ACK | PSH, 2, 1, wnd=WND, data=b"b")])


class TestHeaders:
    # _emit() copies a connection's prepared headers (iface.py tcb_hdrs): they must follow
    # an address change, and every checksum must still verify.

    def test_segments_after_an_address_change_carry_the_new_source(self):
        p = Peer()
        s = p.connect()
        s.send(b"a")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"a")])  # checksums verified there
        p.send(Seg(ACK, 1, 2))
        p.net.set_address(b"\x0a\x00\x00\x03", 24)
        s.send(b"b")
        p.net.poll()
        n = p.link_test.recv_into(p.buf)
        pkt = bytes(p.buf[:n])
        assert pkt[12:16] == b"\x0a\x00\x00\x03"
        assert _csum(pkt[:20]) == 0xFFFF  # the IPv4 header checksum
        pseudo = pkt[12:20] + bytes((0, 6, 0, n - 20))
        assert _csum(pseudo + pkt[20:n]) == 0xFFFF  # the TCP checksum
        assert pkt[40:n] == b"b"


class TestRecovery:
    def test_established_newreno_partial_ack_resends_next_hole(self):
        p = Peer()
        s = p.net.socket()
        s.setblocking(False)
        errno_of(s.connect, ("10.0.0.1", p.port))
        p.expect([Seg(0x02, 0, wnd=WND, mss=MSS)])
        p.send(Seg(0x12, 0, 1, mss=536))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        s.send(b"x" * 4000)
        assert len(p.received()) == 4  # 1, 537, 1073, 1609
        for _ in range(3):
            p.send(Seg(ACK, 1, 1))  # segments 1 and 3 were lost
        got = p.received()
        assert [g.seq for g in got] == [1, 2145], got  # fast retransmit + one new
        # A partial ACK (up to the second hole, below `recover`): resend that hole at once,
        # still in recovery (RFC 6582 3.2 step 4).
        p.send(Seg(ACK, 1, 1073))
        got = p.received()
        assert got and got[0].seq == 1073 and len(got[0].data) == 536, got
        assert p.net.stats.tcpFastRetransmits == 1
        p.send(Seg(ACK, 1, 2681))  # the full ACK: recovery ends
        assert not p.net.tcbs[0].in_recovery


def test_isn_is_keyed_by_four_tuple_and_advances_with_time():
    # RFC 6528: ISN = M + F(4-tuple, secret); M ticks every 4 microseconds.
    from stack import seq

    p = Peer()
    net = p.net
    a = seq.to_int(*net.isn(1, 2, 1000, 80, 0))
    b = seq.to_int(*net.isn(1, 2, 1001, 80, 0))
    later = seq.to_int(*net.isn(1, 2, 1000, 80, 1000))
    assert a != b  # another port, another offset
    assert (later - a) & 0xFFFFFFFF == 250000  # 1000 ms of 4-us ticks
