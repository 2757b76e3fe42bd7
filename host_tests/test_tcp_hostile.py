# TCP on a hostile network (issue 10, DESIGN.md section 10): each test is a bug report that
# once held, scripted on the virtual clock. Several segments reach the stack in ONE poll()
# where the bug needs it (Peer.batch). MIT licence.

import struct

from tcpscript import (ACK, FIN, MSS, PEER_IP, PEER_PORT, PSH, RST, STACK_IP, SYN, WND, Peer,
                       Seg, _csum, errno_of)

from test_tcp_open import syn_sent
from testing import expect_raises

from stack import POLLERR, SHUT_WR, SO_ERROR, SO_KEEPALIVE, SOL_SOCKET, port

_ICMP_UNREACH = 3


def batch(p, *pkts):
    """Queue packets on the link, then one poll(): they are all taken together."""
    for pkt in pkts:
        p.link_test.send(pkt)
    return p.net.poll()


def from_ip(pkt, src):
    """The IPv4 packet pkt with another source address (4 bytes), checksums redone."""
    pkt = bytearray(pkt)
    pkt[12:16] = src
    pkt[10] = pkt[11] = 0
    c = 0xFFFF ^ _csum(bytes(pkt[:20]))
    pkt[10], pkt[11] = c >> 8, c & 0xFF
    pkt[36] = pkt[37] = 0
    pseudo = bytes(pkt[12:20]) + struct.pack(">BBH", 0, 6, len(pkt) - 20)
    c = 0xFFFF ^ _csum(pseudo + bytes(pkt[20:]))
    pkt[36], pkt[37] = c >> 8, c & 0xFF
    return bytes(pkt)


def icmp_unreachable(code, quoted, src=PEER_IP):
    """ICMP destination unreachable from src quoting the first 28 bytes of our packet."""
    body = bytearray(struct.pack(">BBHI", _ICMP_UNREACH, code, 0, 0) + quoted[:28])
    c = 0xFFFF ^ _csum(bytes(body))
    body[2], body[3] = c >> 8, c & 0xFF
    ip = bytearray(struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(body), 7, 0, 64, 1, 0)
                   + src + b"\x0a\x00\x00\x02")
    c = 0xFFFF ^ _csum(bytes(ip))
    ip[10], ip[11] = c >> 8, c & 0xFF
    return bytes(ip) + bytes(body)


def our_segment(p, seq_rel):
    """The first 28 bytes of a segment the stack sent on p's connection (for ICMP quotes):
    its IPv4 header and the TCP ports and sequence number (relative to its ISS)."""
    ip = struct.pack(">BBHHHBBH", 0x45, 0, 40, 0, 0x4000, 64, 6, 0) + STACK_IP + PEER_IP
    return ip + struct.pack(">HHI", p.lport, p.port, (p.iss + seq_rel) & 0xFFFFFFFF)


def accepted_with_mss(mss):
    """A Peer and the accepted connection whose SYN carried this MSS option."""
    p = Peer()
    srv = p.listen()
    p.send(Seg(SYN, 0, mss=mss))
    p.received()
    p.send(Seg(ACK, 1, 1))
    conn, _ = srv.accept()
    return p, conn


class TestBatchedHandshake:
    # Item 1: SYN, the same SYN again and the handshake ACK in one poll() made SND.NXT fall
    # below SND.UNA; the next output copied from ring offset -1 (another connection's
    # bytes on MicroPython, BufferError then a dead stack on CPython).
    def test_syn_received_dup_syn_and_ack_in_one_poll(self):
        p = Peer()
        srv = p.listen()
        p.send(Seg(SYN, 0, mss=MSS))
        p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])
        batch(p, p.packet(Seg(SYN, 0, mss=MSS)), p.packet(Seg(ACK, 1, 1)))
        conn, _ = srv.accept()
        tcb = conn._tcb
        assert tcb.snd_una == 1 and tcb.snd_nxt == 1, (tcb.snd_una, tcb.snd_nxt)
        conn.send(b"hello")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"hello")])
        p.send(Seg(ACK, 1, 6))
        conn.send(b"again")  # Nagle: nothing in flight now, so it leaves at once
        p.expect([Seg(ACK | PSH, 6, 1, wnd=WND, data=b"again")])
        assert len(p.net.txbuf) == 1500

    def test_syn_sent_syn_then_syn_ack_in_one_poll(self):
        # Simultaneous open with both of the peer's segments in one batch: the SYN,ACK
        # that would have acknowledged their SYN never left, so an ACK must.
        p, s = syn_sent()
        batch(p, p.packet(Seg(SYN, 0, mss=MSS)), p.packet(Seg(SYN | ACK, 0, 1, mss=MSS)))
        assert s.state == "ESTABLISHED"
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        s.send(b"hi")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"hi")])


    def test_simultaneous_open_close_in_syn_received_resets(self):
        # A FIN before our SYN is acknowledged had no place in the send ring (it was
        # queued at the SYN's own sequence number): the half-open connection is reset.
        p, s = syn_sent()
        p.send(Seg(SYN, 0, mss=MSS))
        p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])
        assert errno_of(s.shutdown, SHUT_WR) == port.ENOTCONN
        s.close()
        p.expect([Seg(RST | ACK, 1, 1, wnd=0)])
        assert p.pool_full()


class TestZeroWindow:
    # Item 2: a peer that vanished while advertising a zero window held connections for
    # ever (orphans in FIN-WAIT-1 for a week; an open socket ESTABLISHED after hours).
    def zero_window_conn(self, retries=4, **kw):
        p = Peer(retries=retries, **kw)
        srv = p.listen()
        conn = p.accept(srv)
        conn.send(b"r" * 100)
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"r" * 100)])
        p.send(Seg(ACK, 1, 101, wnd=0))  # everything taken, window shut
        conn.send(b"s" * 200)
        p.expect_nothing()
        return p, conn

    def test_orphan_unanswered_probes_abort(self):
        p, conn = self.zero_window_conn()
        conn.close()
        assert p.state() == "FIN-WAIT-1"
        probes = 0
        for _ in range(200):  # at most 200 x 10 s: far more than 4 probes need
            p.advance(10_000)
            probes += len(p.received())
            if p.pool_full():
                break
        assert p.pool_full(), p.state()
        assert probes == 4, probes
        assert p.net.stats.tcpPersistAborts == 1

    def test_established_unanswered_probes_report_etimedout(self):
        p, conn = self.zero_window_conn()
        for _ in range(200):
            p.advance(10_000)
            p.received()
            if conn.state == "CLOSED":
                break
        assert conn.state == "CLOSED"
        assert errno_of(conn.recv, 1) == port.ETIMEDOUT
        assert p.net.stats.tcpPersistAborts == 1

    def test_established_answered_probes_keep_connection(self):
        # RFC 1122 4.2.2.17: a peer that answers may keep its window shut for ever.
        p, conn = self.zero_window_conn()
        probes = 0
        for _ in range(1200):  # 20 minutes: many more probes than retries=4
            p.advance(1000)
            for seg in p.received():
                assert seg.seq == 100 and not seg.data, seg  # a probe: snd_una - 1
                probes += 1
                p.send(Seg(ACK, 1, 101, wnd=0))
        assert probes > 10, probes
        assert conn.state == "ESTABLISHED"
        p.send(Seg(ACK, 1, 101, wnd=WND))  # the window opens: the data goes
        p.expect([Seg(ACK | PSH, 101, 1, wnd=WND, data=b"s" * 200)])

    def test_orphan_answered_probes_end_with_its_lifetime(self):
        p, conn = self.zero_window_conn(retries=15, orphan_timeout_ms=120_000)
        conn.close()
        rst = None
        for _ in range(200):
            p.advance(1000)
            for seg in p.received():
                if seg.flags & RST:
                    rst = seg
                else:
                    p.send(Seg(ACK, 1, 101, wnd=0))
            if p.pool_full():
                break
        assert p.pool_full() and rst is not None
        assert p.net.stats.tcpOrphanTimeouts == 1


class TestSmallWindow:
    # Item 3: a window below the MSS and below half its maximum, data queued: sender SWS
    # avoidance held the data back with no override timer; nothing ever moved again.
    def test_small_window_override_timer_sends(self):
        p = Peer(tx_buf=4096)
        srv = p.listen()
        conn = p.accept(srv)
        conn.send(b"a" * 1000)
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"a" * 1000)])
        p.send(Seg(ACK, 1, 1001, wnd=100))  # max seen 65535; now 100 < MSS, < half
        conn.send(b"b" * 1000)
        p.expect_nothing()
        assert p.net.poll() is not None, "no timer: the data would wait for ever"
        p.advance(1000)  # one RTO: the override timer sends what the window takes
        p.expect([Seg(ACK, 1001, 1, wnd=WND, data=b"b" * 100)])
        p.send(Seg(ACK, 1, 1101, wnd=WND))
        p.expect([Seg(ACK | PSH, 1101, 1, wnd=WND, data=b"b" * 900)])

    def test_small_window_orphan_finishes(self):
        p = Peer(tx_buf=4096)
        srv = p.listen()
        conn = p.accept(srv)
        conn.send(b"a" * 1000)
        p.received()
        p.send(Seg(ACK, 1, 1001, wnd=100))
        conn.send(b"b" * 300)
        conn.close()
        got = {}
        for _ in range(1000):
            p.advance(100)
            for seg in p.received():
                got[seg.seq] = seg.data
                if seg.flags & FIN:
                    p.send(Seg(FIN | ACK, 1, seg.seq + len(seg.data) + 1, wnd=100))
                else:
                    p.send(Seg(ACK, 1, seg.seq + len(seg.data), wnd=100))
            if p.pool_full():
                break
        assert b"".join(got[k] for k in sorted(got)) == b"b" * 300, got
        assert p.pool_full()


class TestIcmp:
    # Item 6: a forged port unreachable ended a connect() whatever sequence it quoted.
    def test_syn_sent_unreachable_with_wrong_sequence_ignored(self):
        p, s = syn_sent()
        batch(p, icmp_unreachable(3, our_segment(p, 64)))  # ISS + 64: not our SYN
        assert s.state == "SYN-SENT"
        assert p.net.stats.icmpInBadQuotes == 1
        batch(p, icmp_unreachable(3, our_segment(p, 0)))
        assert s.state == "CLOSED"
        assert errno_of(s.connect, ("10.0.0.1", p.port)) == port.ECONNREFUSED

    # Item 8: on a synchronized connection unreachables are soft errors: no sticky
    # POLLERR; reported only if the connection later times out.
    def test_established_unreachable_is_soft(self):
        p = Peer(retries=2)
        s = p.connect()
        s.send(b"x" * 10)
        seg = our_segment(p, 1)
        batch(p, icmp_unreachable(1, seg))  # host unreachable
        batch(p, icmp_unreachable(4, seg))  # fragmentation needed: not an error at all
        assert not s.poll_flags() & POLLERR
        assert s.getsockopt(SOL_SOCKET, SO_ERROR) == 0
        assert s.state == "ESTABLISHED"
        for _ in range(30):
            p.advance(10_000)
            if s.state == "CLOSED":
                break
        assert errno_of(s.recv, 1) == port.EHOSTUNREACH

    def test_established_soft_error_forgotten_after_progress(self):
        p = Peer(retries=2)
        s = p.connect()
        s.send(b"x" * 10)
        seg = our_segment(p, 1)
        batch(p, icmp_unreachable(1, seg))
        p.send(Seg(ACK, 1, 11))  # it got through after all
        s.send(b"y")
        for _ in range(30):
            p.advance(10_000)
            if s.state == "CLOSED":
                break
        assert errno_of(s.recv, 1) == port.ETIMEDOUT


class TestSynReceivedAck:
    # Item 7: an out-of-window segment in SYN-RECEIVED set "ACK now", which was never
    # sent nor cleared: poll() returned 0 for up to a minute (a board at 100 % CPU).
    def test_syn_received_unacceptable_segment_gets_ack(self):
        p = Peer()
        p.listen()
        p.send(Seg(SYN, 0, mss=MSS))
        p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])
        p.send(Seg(ACK, 100000, 1))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        assert p.net.poll() > 0


class TestCongestion:
    # Item 9: duplicate ACKs grew cwnd without bound (100k of them: 146 M, a heap int).
    def test_dup_acks_do_not_grow_cwnd_without_bound(self):
        p = Peer()
        s = p.connect()
        s.setsockopt(6, 1, 1)  # TCP_NODELAY
        for _ in range(4):
            s.send(b"d" * 100)
        p.received()
        for _ in range(3000):
            p.link_test.send(p.packet(Seg(ACK, 1, 1)))
            p.net.poll()
            p.received()
        assert p.net.tcbs[0].cwnd <= 65535, p.net.tcbs[0].cwnd


class TestTimeWaitTable:
    # Item 10: a freed TIME-WAIT record still matched segments to port 0.
    def test_time_wait_freed_record_not_matched(self):
        from test_tcp_close import time_wait

        p, s = time_wait()
        # Another peer's record lives on, so the table is searched at all.
        p.net.tw.add(0x0A00, 0x0009, 80, 1234, 0, 0, 0, 0, 0,
                     port.ticks_add(p.now, 60_000), p.now, p.net.stats)
        p.advance(2000)  # 2 x MSL (msl_ms=1000): our record is freed
        assert p.net.tw.used == 1
        p.send(Seg(ACK, 2, 2), dport=0)
        (seg,) = p.received()
        assert seg.flags & RST, seg

    def test_time_wait_old_duplicate_gets_ack_rate_limited(self):
        # RFC 9293 3.10.7.4: an unacceptable segment in TIME-WAIT is answered with
        # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, as Linux does; at most one per 500 ms.
        from test_tcp_close import time_wait

        p, s = time_wait()
        p.send(Seg(ACK, 0, 1))  # an old duplicate
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        p.send(Seg(ACK, 0, 1))
        p.expect_nothing()
        p.advance(500)
        p.send(Seg(ACK, 0, 1))
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        p.send(Seg(ACK, 2, 2))  # acceptable: nothing to say
        p.expect_nothing()

    def test_time_wait_recycling_counts_other_peers(self):
        # Item 14: oldest-first across all peers, counted apart when another peer's
        # record goes.
        from test_tcp_close import time_wait

        p, s = time_wait()
        tw = p.net.tw
        st = p.net.stats
        for i in range(tw.slots):  # fill the table with another peer's records
            tw.add(0x0A00, 0x0009, 80, 1000 + i, 0, 0, 0, 0, 0,
                   port.ticks_add(p.now, 60_000 + i), p.now, st)
        assert st.tcpTimeWaitRecycled == 1 and st.tcpTimeWaitRecycledOther == 1
        tw.add(0x0A00, 0x0009, 80, 2000, 0, 0, 0, 0, 0, port.ticks_add(p.now, 70_000),
               p.now, st)
        assert st.tcpTimeWaitRecycled == 2 and st.tcpTimeWaitRecycledOther == 1


class TestChallengeAcks:
    # Item 11: the budget was exactly 10 a second, so counting provoked ACKs told an
    # off-path attacker a connection existed.
    def test_challenge_ack_budget_varies(self):
        p = Peer()
        p.connect()
        counts = []
        for _ in range(12):
            p.advance(1000)
            n = 0
            for _ in range(30):
                p.send(Seg(RST, 5))  # in window, not exact: a challenge ACK, if allowed
                n += len(p.received())
            counts.append(n)
        assert min(counts) >= 5 and max(counts) < 15, counts
        assert len(set(counts)) > 1, counts


class TestSynFlood:
    # Item 12: with tcbs=4, four spoofed SYNs locked a legitimate client out for 123 s.
    def test_syn_flood_recycles_oldest_embryonic(self):
        p = Peer(tcbs=4)
        srv = p.listen(backlog=4)
        for i in range(8):
            spoof = bytes((10, 0, 0, 100 + i))
            p.link_test.send(from_ip(p.packet(Seg(SYN, 0, mss=MSS), sport=2000 + i), spoof))
        p.net.poll()
        p.received()
        assert p.net.free_tcb_count() == 0
        conn = p.accept(srv)  # the legitimate client gets in at once
        conn.send(b"ok")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"ok")])
        assert p.net.stats.tcpSynFloodRecycled >= 5
        assert p.net.stats.tcpListenDrops == 0

    def test_syn_flood_spares_connections_waiting_for_accept(self):
        p = Peer(tcbs=4)
        srv = p.listen(backlog=2)
        first = p.port
        p.send(Seg(SYN, 0, mss=MSS))
        p.received()
        p.send(Seg(ACK, 1, 1))  # established, not accepted yet
        for i in range(6):
            spoof = bytes((10, 0, 0, 100 + i))
            p.link_test.send(from_ip(p.packet(Seg(SYN, 0, mss=MSS), sport=2000 + i), spoof))
        p.net.poll()
        conn, addr = srv.accept()
        assert addr == ("10.0.0.1", first)


    def test_syn_flood_does_not_stop_connecting_out(self):
        p = Peer(tcbs=2)
        p.listen(backlog=4)
        for i in range(4):
            spoof = bytes((10, 0, 0, 100 + i))
            p.link_test.send(from_ip(p.packet(Seg(SYN, 0, mss=MSS), sport=2000 + i), spoof))
        p.net.poll()
        p.received()
        assert p.net.free_tcb_count() == 0
        p.iss = None
        s = p.connect()
        assert s.state == "ESTABLISHED"


class TestCloseWaitRecycling:
    # An application that drops a socket in CLOSE-WAIT without closing it (no finaliser on
    # MicroPython; microdot 2.7.0 on a TLS record cut by a FIN) must not hold its TCB for
    # ever: with the pool full, a new connection takes it once it is old enough.
    def _dropped_close_wait(self, **kw):
        p = Peer(tcbs=1, close_wait_recycle_ms=5000, **kw)
        srv = p.listen(backlog=2)
        conn = p.accept(srv)
        p.send(Seg(FIN | ACK, 1, 1))  # the client is done; the application never closes
        p.expect([Seg(ACK, 1, 2, wnd=WND - 1)])  # the FIN takes a place in the window
        assert conn.state == "CLOSE-WAIT"
        return p, srv, conn

    def _syn_from(self, p, sport):
        p.port = sport
        p.iss = None
        p.send(Seg(SYN, 0, mss=MSS))
        return p.received()

    def test_old_close_wait_makes_room_for_a_new_client(self):
        p, srv, conn = self._dropped_close_wait()
        assert self._syn_from(p, 41000) == []  # pool full, and the CLOSE-WAIT is young
        assert p.net.stats.tcpListenDrops == 1 and p.net.stats.tcpCloseWaitRecycled == 0
        p.advance(5001)
        p.port = PEER_PORT
        p.received()
        got = self._syn_from(p, 41001)
        # An RST to the old client (the application's socket is gone as far as it knows),
        # and the new client's SYN,ACK.
        assert sorted(g.flags for g in got) == sorted([RST | ACK, SYN | ACK]), got
        assert p.net.stats.tcpCloseWaitRecycled == 1
        with expect_raises(OSError) as e:
            conn.recv(10)
        assert e.exception.args[0] == port.ECONNABORTED
        assert conn.poll_flags() & POLLERR
        p.send(Seg(ACK, 1, 1))
        new, addr = srv.accept()
        assert addr == ("10.0.0.1", 41001) and new.state == "ESTABLISHED"
        conn.close()  # the old socket's close must not touch the new connection's TCB
        assert new.state == "ESTABLISHED"
        new.send(b"new")
        assert [g.data for g in p.received()] == [b"new"]

    def test_close_wait_with_data_to_send_is_kept(self):
        p, srv, conn = self._dropped_close_wait()
        p.send(Seg(ACK, 2, 1, wnd=0))  # the client stops reading: our reply stays queued
        conn.send(b"reply")
        p.advance(5001)
        p.received()
        assert self._syn_from(p, 41002) == []
        assert p.net.stats.tcpCloseWaitRecycled == 0 and conn.state == "CLOSE-WAIT"

    def test_recycling_can_be_turned_off(self):
        p = Peer(tcbs=1, close_wait_recycle_ms=None)
        srv = p.listen(backlog=2)
        conn = p.accept(srv)
        p.send(Seg(FIN | ACK, 1, 1))
        p.advance(600_000)
        p.received()
        assert self._syn_from(p, 41003) == []
        assert conn.state == "CLOSE-WAIT"


class TestMss:
    # Item 13: a peer MSS of 1 made 3,000 bytes into 3,000 segments.
    def test_peer_mss_clamped_to_48(self):
        p, conn = accepted_with_mss(1)
        conn.send(b"m" * 480)
        sizes = []
        for _ in range(40):
            got = p.received()
            if not got:
                p.advance(200)
                continue
            for seg in got:
                sizes.append(len(seg.data))
                p.send(Seg(ACK, 1, seg.seq + len(seg.data)))
            if sum(sizes) >= 480:
                break
        assert sum(sizes) == 480 and max(sizes) == 48, sizes

    def test_peer_mss_zero_means_default(self):
        p, conn = accepted_with_mss(0)
        assert conn._tcb.snd_mss == 536


class TestClosingErrors:
    # An RST accepted in LAST-ACK or CLOSING left SO_ERROR 0; Linux reports ECONNRESET.
    def test_last_ack_rst_sets_so_error(self):
        from test_tcp_close import close_wait

        p, s = close_wait()
        s.shutdown(SHUT_WR)  # LAST-ACK, and the application still holds the socket
        p.expect([Seg(FIN | ACK, 1, 2, wnd=WND - 1)])
        p.send(Seg(RST, 2))
        assert s.state == "CLOSED"
        assert s.getsockopt(SOL_SOCKET, SO_ERROR) == port.ECONNRESET
        assert s.recv(1) == b""  # EOF came first, as on Linux

    def test_closing_rst_sets_so_error(self):
        from test_tcp_close import closing

        p, s = closing()
        p.send(Seg(RST, 2))
        assert s.getsockopt(SOL_SOCKET, SO_ERROR) == port.ECONNRESET


class TestRto:
    # RFC 6298 5.7: after a resent SYN the RTO starts data at 3 s.
    def test_rto_three_seconds_after_syn_retransmission(self):
        p, s = syn_sent()
        p.advance(1000)
        p.expect([Seg(SYN, 0, wnd=WND, mss=MSS)])
        p.send(Seg(SYN | ACK, 0, 1, mss=MSS))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        s.send(b"z")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"z")])
        p.expect_nothing(2999)
        p.advance(1)
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"z")])


class TestNativeChecks:
    # Where MicroPython has viper, a plain TCP segment's IPv4 and TCP checks run in native
    # code (port.tcp4_in) and everything else takes the Python checks. Differential:
    # every packet below, mutated one field at a time (checksums made right again, so the
    # other checks are what is tested, or left wrong), must leave the same counters and
    # send the same replies with the native checks as without them.

    def _stack(self):
        from stack import Stack
        from stack.link.pipe import pipe

        peer, end = pipe(mtu=1500, depth=8)
        return Stack(end, ip="10.0.0.2", prefix=24, clock=lambda: 1000), peer

    def _packet(self, mutate, fix):
        from stack import ipv4, tcpseg

        buf = bytearray(1500)
        payload = bytes(range(7, 107))
        ipv4.write_header(buf, 0, b"\x0a\x00\x00\x01", 0x0A00, 2, 6, 20 + len(payload), 9)
        tcpseg.write_header(buf, 20, 4000, 80, ACK | PSH, 5000, 0)
        buf[40:140] = payload
        tcpseg.finish(buf, 0, 20, 120)
        n = mutate(buf)
        if fix:
            buf[10] = buf[11] = 0
            c = 0xFFFF ^ port.fold_checksum(port.checksum(buf, 0, 20, 0))
            buf[10], buf[11] = c >> 8, c & 0xFF
            total = (buf[2] << 8) | buf[3]
            if 40 <= total <= n:
                buf[36] = buf[37] = 0
                tcpseg.finish(buf, 0, 20, total - 20)
        return buf, n

    def _run(self, buf, n, native):
        from stack import iface

        net, peer = self._stack()
        saved = iface._tcp4_in
        iface._tcp4_in = native
        try:
            net.rxbuf[:n] = buf[:n]
            net.process_frame(n, 1000)
        finally:
            iface._tcp4_in = saved
        out = []
        reply = bytearray(1600)
        for _ in range(8):
            k = peer.recv_into(reply)
            if not k:
                break
            out.append(bytes(reply[:k]))
        return sorted(net.stats.items()), out

    def test_native_and_python_checks_agree(self):
        native = port.tcp4_in
        if native is None:
            return  # no native emitter (CPython, WebAssembly): only the Python checks exist

        def put(off, value):
            def m(buf):
                buf[off] = value
                return 140
            return m

        def length(n):
            return lambda buf: n

        def short_with_long_header(buf):
            buf[3] = 60  # 40 bytes of TCP, a 60-byte TCP header claimed
            buf[32] = 0xF0
            return 140

        mutations = [lambda buf: 140, length(139), length(41), length(39), length(20),
                     short_with_long_header]
        for off, values in ((0, (0x46, 0x55, 0x35, 0x44)), (2, (0, 5)), (3, (39, 40, 141)),
                            (6, (0x20, 0x01, 0x80)), (7, (1,)), (9, (17, 1, 7)),
                            (12, (0, 127, 224, 255)), (15, (0, 255)), (16, (11,)),
                            (19, (1, 255, 0)), (32, (0x40, 0xF0, 0x00, 0x60)),
                            (10, (0x12,)), (36, (0x34,)), (100, (0x55,))):
            for v in values:
                mutations.append(put(off, v))
        accepted = 0
        for i, mutate in enumerate(mutations):
            for fix in (True, False):
                buf, n = self._packet(mutate, fix)
                want = self._run(buf, n, None)
                got = self._run(buf, n, native)
                assert got == want, (i, fix, want, got)
                net, _ = self._stack()
                accepted += native(buf, 0, n, net.me, net.tcb_keys, net.sg) > -2
        assert accepted >= 3  # the plain packet (and harmless mutations) take the fast way

    def test_native_checks_follow_our_address(self):
        # The native call reads our address from Stack.me: after the address changes, a
        # segment to the old one is not ours (and goes the long way, which drops it).
        native = port.tcp4_in
        if native is None:
            return  # no native emitter (CPython, WebAssembly): only the Python checks exist
        net, _ = self._stack()
        buf, n = self._packet(lambda buf: 140, True)  # to 10.0.0.2
        assert native(buf, 0, n, net.me, net.tcb_keys, net.sg) > -2
        net.set_address(b"\x0a\x00\x00\x03", 24)
        assert native(buf, 0, n, net.me, net.tcb_keys, net.sg) == -2
        net.rxbuf[:n] = buf[:n]
        net.process_frame(n, 1000)
        assert net.stats.ipInAddrErrors == 1 and net.stats.tcpInSegs == 0
        net.set_address(b"\x0a\x00\x00\x02", 24)
        assert native(buf, 0, n, net.me, net.tcb_keys, net.sg) > -2
        net.clear_address()
        assert native(buf, 0, n, net.me, net.tcb_keys, net.sg) == -2

    def test_native_demultiplexing_and_prediction_agree(self):
        # The same script on two stacks: one takes segments the short way (where there is
        # viper, port.tcp4_in's checks and its search of the TCBs' key table; then header
        # prediction, TCB.predicted), the other every segment the long way (Python checks
        # and demultiplexing, and process() without prediction). Every reply, counter and
        # connection field must be the same after each step. Where there is viper, in-order
        # data after both directions rebased (tcp.py TCB._key must follow the new bases)
        # must still be found and predicted natively.
        from stack import iface, tcp

        native = port.tcp4_in  # None without a native emitter: prediction is still tested
        seen = []

        def recording(*args):
            r = native(*args)
            seen.append((r, args[5][0]))
            return r

        def on(p, use_native, fn):
            saved = iface._tcp4_in
            iface._tcp4_in = recording if use_native and native else None
            try:
                return fn()
            finally:
                iface._tcp4_in = saved

        peers = []
        for use_native in (False, True):
            p = Peer(depth=16)  # two Peers at once: a smaller link each
            srv = p.listen()
            conn = on(p, use_native, lambda: p.accept(srv))
            if not use_native:
                conn._tcb.predicted = lambda *args: False  # process() in full, every time
            peers.append((p, conn, use_native))
        skip = (tcp.SND_HI, tcp.SND_LO)  # the ISS is random

        def same(step, *segs, rebase=False, send=b"", read=False, raw=None, mangle=None):
            results = []
            for p, conn, use_native in peers:
                tcb = conn._tcb
                if rebase:
                    tcb._rebase_rcv()
                    tcb._rebase_snd()
                if send:
                    on(p, use_native, lambda: conn.send(send))
                del seen[:]
                for seg in segs:
                    pkt = p.packet(seg, **(raw or {}))
                    p.link_test.send(mangle(pkt) if mangle else pkt)
                    on(p, use_native, p.net.poll)
                if read:
                    conn.recv(4096)
                on(p, use_native, p.net.poll)
                fields = [tcb.v[i] for i in range(tcp.N_FIELDS) if i not in skip]
                results.append((p.received(), sorted(p.net.stats.items()), fields))
            assert results[0] == results[1], (step, results[0], results[1])
            return results[1][0]

        data = bytes(range(100))
        same("in order", Seg(ACK | PSH, 1, 1, data=data))
        assert not native or (seen and seen[0][0] == 0), seen  # found natively
        same("duplicate", Seg(ACK | PSH, 1, 1, data=data))
        same("out of order", Seg(ACK, 201, 1, data=data))
        same("hole filled", Seg(ACK, 101, 1, data=data), read=True)
        same("ACK, new window", Seg(ACK, 301, 201, wnd=3000), send=bytes(200))
        same("duplicate ACK", Seg(ACK, 301, 201, wnd=3000))
        same("ACK beyond snd_max", Seg(ACK, 301, 900, wnd=3000))
        same("other port", Seg(ACK, 301, 201, data=data), raw={"dport": 81})
        same("other remote port", Seg(ACK, 301, 201, data=data), raw={"sport": 40001})
        same("bad TCP checksum", Seg(ACK, 301, 201, data=data),
             mangle=lambda pkt: pkt[:-1] + bytes((pkt[-1] ^ 1,)))
        same("window change with data", Seg(ACK | PSH, 301, 201, wnd=2000, data=data))
        same("both bases moved", rebase=True)
        rcv_nxt = peers[1][1]._tcb.v[tcp.RCV_NXT]
        same("in order, rebased", Seg(ACK | PSH, 401, 201, wnd=2000, data=data), read=True)
        assert not native or (seen and seen[0] == (0, rcv_nxt)), (seen, rcv_nxt)
        same("ACK, rebased", Seg(ACK, 501, 301, wnd=2000), send=bytes(100))
        same("in-window RST, not exact", Seg(RST | ACK, 502, 301))
        same("FIN", Seg(FIN | ACK, 501, 301, wnd=2000), read=True)


class TestNativeOutput:
    # Where MicroPython has viper, output()'s common turn (new data within the windows, or
    # a bare ACK) runs in native code (port.tcp_out, tcp.py _out), and so do the checks,
    # demultiplexing and header prediction of what arrives (port.tcp4_in, tcp_predict in
    # iface.py process_frame). Differential: one
    # script of sends, reads, peer ACKs with changing windows, peer data, a FIN and time
    # passing (delayed ACKs, the persist timer, retransmissions, which go the Python way),
    # on two stacks, one with the native turn and one without; every segment sent and
    # every field must be the same after each step. Without viper both run the Python.

    def _world(self):
        # Rings that wrap at odd places (the payload copy meets odd addresses too), and
        # keepalive on (its probes count until a segment comes: prediction clears that).
        p = Peer(tx_buf=3001, rx_buf=2003, depth=16, keepalive_ms=4000)
        p.wnd = 2003
        srv = p.listen()
        conn = p.accept(srv)
        conn.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
        return p, conn, conn._tcb

    def _step(self, world, x, step, steps, state):
        from stack import IPPROTO_TCP, SHUT_WR, TCP_NODELAY, tcp

        p, conn, tcb = world
        op = x % 9
        what = [op]
        if tcb.v[tcp.IN_USE]:
            # The peer sends what the stack expects next (its rcv_nxt, from the peer's ISS):
            # data the stack could not take is sent again, as a real peer would.
            state["pseq"] = tcb.v[tcp.RCV_NXT] + state["base"]
        try:
            if op <= 1:
                n = (1, 7, 100, 535, 536, 1000, 1460, 1461, 2999)[(x >> 4) % 9]
                what.append(conn.send(bytes((step + i) & 0xFF for i in range(n))))
            elif op <= 3:
                v = tcb.v
                una, mx = v[tcp.SND_UNA], v[tcp.SND_MAX]
                ack = una + (x >> 3) % (mx - una + 1) if mx >= una else una
                ack += state["base"]  # from the ISS, where both bases were moved
                wnd = (0, 1, 100, 700, 1460, 2920, 65535)[(x >> 5) % 7]
                p.send(Seg(ACK, state["pseq"], ack, wnd=wnd))
            elif op == 4 and not state["fin"]:
                n = (1, 300, 1460)[(x >> 4) % 3]
                ack = tcb.v[tcp.SND_UNA] + state["base"]
                p.send(Seg(ACK | PSH, state["pseq"], ack, wnd=65535, data=bytes(n)))
                if (x >> 6) & 1 and tcb.v[tcp.IN_USE]:
                    # More 1 ms later, while the delayed ACK's timer runs: it must not move.
                    p.advance(1)
                    more = tcb.v[tcp.RCV_NXT] + state["base"]
                    p.send(Seg(ACK | PSH, more, ack, wnd=65535, data=bytes(n)))
            elif op == 5:
                what.append(len(conn.recv(1 + (x >> 2) % 700)))
            elif op == 6:
                p.advance((1, 40, 200, 1000, 3000)[(x >> 4) % 5])
            elif op == 7 and step > steps // 2:
                if (x >> 4) % 4 == 0 and not state["shut"]:
                    conn.shutdown(SHUT_WR)  # our FIN: the Python way from here
                    state["shut"] = True
                elif not state["fin"]:
                    p.send(Seg(FIN | ACK, state["pseq"], tcb.v[tcp.SND_UNA] + state["base"],
                               wnd=65535))
                    state["fin"] = True  # CLOSE-WAIT: the native turn still sends
            elif op == 8:
                conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, (x >> 4) & 1)
        except OSError as e:
            what.append(("error", e.args[0]))
        p.net.poll()
        # What was sent, without keeping the payloads (a board's heap): lengths and sums.
        what.append([(s.flags, s.seq, s.ack, s.wnd, len(s.data), sum(s.data))
                     for s in p.received()])
        if tcb.v[tcp.IN_USE]:
            what.append([tcb.v[i] for i in range(tcp.N_FIELDS)
                         if i != tcp.SND_HI and i != tcp.SND_LO])  # the ISS is random
        return what

    def test_native_output_agrees(self):
        from stack import iface, seq, tcp

        native_out = port.tcp_out
        native_in = iface._tcp4_in
        native_predict = iface._predict
        kinds = {1: 0, 0: 0, -1: 0}  # what the native turn returned: sent, nothing, not its

        def counted(*args):
            r = native_out(*args)
            kinds[1 if r > 0 else r] += 1
            return r

        # Three worlds: 0 native (port.tcp_out, tcp4_in and tcp_predict where they exist),
        # 1 the Python for all three, 2 the native checks without _tcp_viper.py (a board
        # that leaves it out: tcp4_in, then the Python's prediction and output).
        def on(world, fn):
            tcp._out = counted if world == 0 and native_out else None
            iface._tcp4_in = native_in if world != 1 else None
            iface._predict = native_predict if world == 0 else None
            try:
                return fn()
            finally:
                tcp._out = native_out
                iface._tcp4_in = native_in
                iface._predict = native_predict

        steps = 150
        for seed in (1, 2, 3, 4):
            worlds = [on(k, self._world) for k in range(3)]
            states = [{"pseq": 1, "fin": False, "shut": False, "base": 0} for _ in worlds]
            x = seed
            for step in range(steps):
                if seed > 2 and step == 2 * steps // 3:
                    # Both bases moved (seq.py) with the offsets still small: from here they
                    # are negative, which the native code must read with their sign (on a
                    # 64-bit port it leaves them to the Python; on the boards it runs).
                    for k in range(3):
                        worlds[k][2]._rebase_snd()
                        worlds[k][2]._rebase_rcv()
                        states[k]["base"] = seq.REBASE_AT
                x = (x * 75 + 74) % 65537  # the ZX81's generator: small ints everywhere
                got = [on(k, lambda: self._step(worlds[k], x, step, steps, states[k]))
                       for k in range(3)]
                assert got[0] == got[1] == got[2], ("seed", seed, step, "native", got[0],
                                                    "python", got[1], "checks", got[2])
            stats = [sorted(w[0].net.stats.items()) for w in worlds]
            assert stats[0] == stats[1] == stats[2], seed
            worlds = None
        # Where there is viper, the native turn sent segments, found nothing to send, and
        # left cases to the Python (a FIN, resending).
        assert not native_out or (kinds[1] > 50 and kinds[0] > 20 and kinds[-1] > 5), kinds
