# Connection termination, scripted segment by segment (RFC 9293 3.6, RFC 1122 4.2.2.13).
# MIT licence. Each class is one state; builders derive each state from the one before.

from tcpscript import ACK, FIN, MSS, PSH, RST, SYN, WND, Peer, Seg, errno_of

from stack import SHUT_WR, port


def established():
    p = Peer(msl_ms=1000)
    return p, p.connect()


def fin_wait_1():
    p, s = established()
    s.shutdown(SHUT_WR)
    p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
    assert s.state == "FIN-WAIT-1"
    return p, s


def fin_wait_2():
    p, s = fin_wait_1()
    p.send(Seg(ACK, 1, 2))
    p.expect_nothing()
    assert s.state == "FIN-WAIT-2"
    return p, s


def close_wait():
    p, s = established()
    p.send(Seg(FIN | ACK, 1, 1))
    p.expect([Seg(ACK, 1, 2, wnd=WND - 1)])
    assert s.state == "CLOSE-WAIT"
    return p, s


def last_ack():
    p, s = close_wait()
    s.close()
    p.expect([Seg(FIN | ACK, 1, 2, wnd=WND - 1)])
    assert p.state() == "LAST-ACK"
    return p


def closing():
    p, s = fin_wait_1()
    p.send(Seg(FIN | ACK, 1, 1))  # their FIN; it does not acknowledge ours
    p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
    assert s.state == "CLOSING"
    return p, s


def time_wait():
    p, s = fin_wait_2()
    p.send(Seg(FIN | ACK, 1, 2))
    p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
    assert s.state == "TIME-WAIT"
    return p, s


class TestEstablished:
    def test_established_close_active_four_way(self):
        p, s = established()
        s.close()
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        assert p.state() == "FIN-WAIT-1"
        p.send(Seg(ACK, 1, 2))
        p.expect_nothing()
        assert p.state() == "FIN-WAIT-2"
        p.send(Seg(FIN | ACK, 1, 2))
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        assert p.state() == "TIME-WAIT"
        assert p.pool_full(), "TIME-WAIT must not hold a TCB"

    def test_established_fin_passive_close(self):
        p, s = close_wait()
        assert s.recv(10) == b""  # EOF: closed normally
        s.close()
        p.expect([Seg(FIN | ACK, 1, 2, wnd=WND - 1)])
        assert p.state() == "LAST-ACK"
        p.send(Seg(ACK, 2, 2))
        assert p.state() == "CLOSED"
        assert p.pool_full()
        assert p.net.tw.used == 0, "the passive closer has no TIME-WAIT"

    def test_established_fin_with_data(self):
        p, s = established()
        p.send(Seg(FIN | ACK | PSH, 1, 1, data=b"bye"))
        p.expect([Seg(ACK, 1, 5, wnd=WND - 4)])
        assert s.recv(10) == b"bye"
        assert s.recv(10) == b""
        assert s.state == "CLOSE-WAIT"

    def test_established_close_sends_fin_with_queued_data(self):
        p, s = established()
        s.send(b"a")
        p.expect([Seg(ACK | PSH, 1, 1, wnd=WND, data=b"a")])
        s.send(b"b")  # Nagle holds it: "a" is unacknowledged
        p.expect_nothing()
        s.close()  # the FIN rides on the held data
        p.expect([Seg(ACK | PSH | FIN, 2, 1, wnd=WND, data=b"b")])
        p.send(Seg(ACK, 1, 4))
        assert p.state() == "FIN-WAIT-2"

    def test_established_close_with_unread_data_sends_rst(self):
        p, s = established()
        p.send(Seg(ACK | PSH, 1, 1, data=b"request"))
        p.advance(200)
        p.expect([Seg(ACK, 1, 8, wnd=WND - 7)])
        s.close()  # "request" was never read: RFC 1122 4.2.2.13
        p.expect([Seg(RST | ACK, 1, 8, wnd=0)])
        assert p.state() == "CLOSED"
        assert p.pool_full()
        assert p.net.stats.tcpRstsUnreadData == 1

    def test_established_abort(self):
        p, s = established()
        s.abort()
        p.expect([Seg(RST | ACK, 1, 1, wnd=0)])
        assert p.state() == "CLOSED"
        assert p.pool_full()
        assert p.net.stats.tcpEstabResets == 1

    def test_established_rst_reports_econnreset(self):
        p, s = established()
        p.send(Seg(ACK | PSH, 1, 1, data=b"last words"))
        p.send(Seg(RST, 11))
        p.expect_nothing()
        assert s.state == "CLOSED"
        assert s.recv(100) == b"last words"  # data that arrived first is not lost
        assert errno_of(s.recv, 10) == port.ECONNRESET
        assert errno_of(s.send, b"x") == port.ECONNRESET
        assert s.getsockopt(1, 4) == port.ECONNRESET  # SOL_SOCKET, SO_ERROR
        assert s.getsockopt(1, 4) == 0  # reading cleared it
        s.close()
        assert p.pool_full()

    def test_established_rst_in_window_not_exact_gets_challenge_ack(self):
        p, s = established()
        p.send(Seg(RST, 100))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        assert s.state == "ESTABLISHED"
        assert p.net.stats.tcpChallengeAcks == 1

    def test_established_rst_out_of_window_dropped(self):
        p, s = established()
        p.send(Seg(RST, 100000))
        p.expect_nothing()
        assert s.state == "ESTABLISHED"

    def test_established_syn_gets_challenge_ack(self):
        p, s = established()
        p.send(Seg(SYN, 500, mss=MSS))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        assert s.state == "ESTABLISHED"

    def test_established_challenge_acks_rate_limited(self):
        p, s = established()
        for i in range(15):
            p.send(Seg(RST, 100 + i))
        acks = p.received()
        assert len(acks) == 10, acks
        assert p.net.stats.tcpChallengeAcksSuppressed == 5
        p.advance(1000)  # a new second: allowed again
        p.send(Seg(RST, 200))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])


class TestFinWait1:
    def test_fin_wait_1_fin_ack_three_way_close(self):
        p, s = fin_wait_1()
        p.send(Seg(FIN | ACK, 1, 2))  # acknowledges our FIN and carries theirs
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        assert s.state == "TIME-WAIT"

    def test_fin_wait_1_fin_simultaneous_close(self):
        p, s = closing()
        p.send(Seg(ACK, 2, 2))
        p.expect_nothing()
        assert s.state == "TIME-WAIT"

    def test_fin_wait_1_rexmit_fin_with_backoff_then_give_up(self):
        p = Peer(retries=3)
        s = p.connect()
        s.close()
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        for wait in (1000, 2000, 4000):
            p.expect_nothing(wait - 1)
            p.advance(1)
            p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.expect_nothing(8000 - 1)
        p.advance(1)  # the fourth timeout: retries (3) are used up
        p.expect_nothing()
        assert p.state() == "CLOSED"
        assert p.pool_full()
        assert p.net.stats.tcpTimeouts == 1
        assert p.net.stats.tcpRetransSegs == 3

    def test_fin_wait_1_give_up_reports_etimedout_to_holder(self):
        p = Peer(retries=1)
        s = p.connect()
        s.shutdown(SHUT_WR)
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.advance(1000)
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.advance(2000)
        assert s.state == "CLOSED"
        assert errno_of(s.recv, 1) == port.ETIMEDOUT

    def test_fin_wait_1_rst(self):
        p, s = fin_wait_1()
        p.send(Seg(RST, 1))
        assert s.state == "CLOSED"
        assert errno_of(s.recv, 1) == port.ECONNRESET

    def test_fin_wait_1_data_after_close_sends_rst(self):
        p, s = established()
        s.close()
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.send(Seg(ACK | PSH, 1, 1, data=b"late"))  # nobody can read this any more
        p.expect([Seg(RST | ACK, 2, 1, wnd=0)])  # "late" is refused, not acknowledged
        assert p.state() == "CLOSED"
        assert p.net.stats.tcpRstsDataAfterClose == 1


class TestFinWait2:
    def test_fin_wait_2_fin_time_wait(self):
        p, s = time_wait()
        assert p.net.free_tcb_count() == len(p.net.tcbs) - 1  # the socket still holds it
        assert s.recv(1) == b""
        s.close()
        assert p.pool_full()
        assert p.state() == "TIME-WAIT"

    def test_fin_wait_2_peer_keeps_sending_after_half_close(self):
        p, s = fin_wait_2()
        p.send(Seg(ACK | PSH, 1, 2, data=b"more"))
        p.expect_nothing()  # delayed ACK
        p.advance(200)
        p.expect([Seg(ACK, 2, 5, wnd=WND - 4)])
        assert s.recv(10) == b"more"
        p.send(Seg(FIN | ACK, 5, 2))
        # Receiver SWS avoidance: reading 4 bytes did not move the right edge.
        p.expect([Seg(ACK, 2, 6, wnd=WND - 5)])
        assert s.state == "TIME-WAIT"
        assert s.recv(10) == b""

    def test_fin_wait_2_orphan_times_out(self):
        p = Peer(fin_timeout_ms=5000)
        s = p.connect()
        s.close()
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.send(Seg(ACK, 1, 2))
        assert p.state() == "FIN-WAIT-2"
        p.expect_nothing(4999)
        p.advance(1)
        p.expect([Seg(RST | ACK, 2, 1, wnd=0)])
        assert p.state() == "CLOSED"
        assert p.pool_full()
        assert p.net.stats.tcpFinWait2Timeouts == 1

    def test_fin_wait_2_half_closed_socket_does_not_time_out(self):
        p = Peer(fin_timeout_ms=5000)
        s = p.connect()
        s.shutdown(SHUT_WR)
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.send(Seg(ACK, 1, 2))
        p.expect_nothing(60000)
        assert s.state == "FIN-WAIT-2"
        s.close()  # now it is an orphan: the timeout starts
        p.expect_nothing(4999)
        p.advance(1)
        p.expect([Seg(RST | ACK, 2, 1, wnd=0)])

    def test_fin_wait_2_rst(self):
        p, s = fin_wait_2()
        p.send(Seg(RST, 1))
        assert s.state == "CLOSED"
        assert errno_of(s.recv, 1) == port.ECONNRESET


class TestCloseWait:
    def test_close_wait_keeps_sending_after_peer_half_close(self):
        p, s = close_wait()
        assert s.send(b"response") == 8
        p.expect([Seg(ACK | PSH, 1, 2, wnd=WND - 1, data=b"response")])
        p.send(Seg(ACK, 2, 9))
        assert s.recv(5) == b""
        s.close()
        p.expect([Seg(FIN | ACK, 9, 2, wnd=WND - 1)])
        p.send(Seg(ACK, 2, 10))
        assert p.state() == "CLOSED"

    def test_close_wait_rst(self):
        p, s = close_wait()
        p.send(Seg(RST, 2))
        assert s.state == "CLOSED"
        assert errno_of(s.recv, 1) == port.ECONNRESET

    def test_close_wait_fin_again_is_acked(self):
        p, s = close_wait()
        p.send(Seg(FIN | ACK, 1, 1))
        p.expect([Seg(ACK, 1, 2, wnd=WND - 1)])
        assert s.state == "CLOSE-WAIT"


class TestLastAck:
    def test_last_ack_rexmit_fin(self):
        p = last_ack()
        p.expect_nothing(999)
        p.advance(1)
        p.expect([Seg(FIN | ACK, 1, 2, wnd=WND - 1)])
        p.expect_nothing(1999)
        p.advance(1)
        p.expect([Seg(FIN | ACK, 1, 2, wnd=WND - 1)])
        p.send(Seg(ACK, 2, 2))
        assert p.state() == "CLOSED"
        assert p.pool_full()

    def test_last_ack_rst(self):
        p = last_ack()
        p.send(Seg(RST, 2))
        p.expect_nothing()
        assert p.state() == "CLOSED"
        assert p.pool_full()


class TestClosing:
    def test_closing_rst(self):
        p, s = closing()
        p.send(Seg(RST, 2))
        assert s.state == "CLOSED"
        assert s.recv(1) == b""  # RFC 9293: CLOSING just closes; EOF was already told

    def test_closing_rexmit_fin(self):
        p, s = closing()
        p.advance(1000)
        p.expect([Seg(FIN | ACK, 1, 2, wnd=WND - 1)])

    def test_fin_and_the_ack_of_ours_in_one_poll_still_acknowledge_their_fin(self):
        # Simultaneous close, the peer's FIN and its ACK of our FIN taken in one poll():
        # CLOSING and at once TIME-WAIT. Their FIN must still be acknowledged, or the peer
        # waits in CLOSING for a retransmission timeout (found on two stacks in memory).
        p, s = fin_wait_1()
        p.link_test.send(p.packet(Seg(FIN | ACK, 1, 1)))
        p.link_test.send(p.packet(Seg(ACK, 2, 2)))
        p.net.poll()
        assert s.state == "TIME-WAIT" and p.net.tw.used == 1
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])  # at once, no timeout


class TestTimeWait:
    def test_time_wait_lasts_exactly_two_msl(self):
        p, s = time_wait()  # msl_ms=1000
        p.expect_nothing(1999)
        assert p.state() == "TIME-WAIT"
        p.advance(1)
        assert p.state() == "CLOSED"
        assert s.state == "CLOSED"

    def test_time_wait_default_is_sixty_seconds(self):
        p = Peer()
        s = p.connect()
        s.close()
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.send(Seg(FIN | ACK, 1, 2))
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        p.advance(59999)
        assert p.state() == "TIME-WAIT"
        p.advance(1)
        assert p.state() == "CLOSED"

    def test_time_wait_fin_rexmit_reacked_and_timer_restarted(self):
        p, s = time_wait()
        p.advance(1500)
        p.send(Seg(FIN | ACK, 1, 2))  # our ACK was lost; their FIN comes again
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        p.advance(1999)
        assert p.state() == "TIME-WAIT"
        p.advance(1)
        assert p.state() == "CLOSED"

    def test_time_wait_rst_ignored(self):
        p, s = time_wait()
        p.send(Seg(RST, 2))
        p.expect_nothing()
        assert p.state() == "TIME-WAIT"  # RFC 1337

    def test_time_wait_across_tick_wrap(self):
        # Enter TIME-WAIT 500 ms before the tick counter wraps; it must still last 2xMSL.
        p = Peer(start_ms=port.ticks_add(0, -600), msl_ms=1000)
        s = p.connect()
        s.close()
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.send(Seg(FIN | ACK, 1, 2))
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
        entered = p.now
        p.advance(1999)
        assert port.ticks_diff(p.now, entered) == 1999
        assert p.now < entered, "the clock wrapped while in TIME-WAIT"
        assert p.state() == "TIME-WAIT"
        p.advance(1)
        assert p.state() == "CLOSED"


def server_time_wait(backlog=2):
    """The stack as a server that closed first: its TIME-WAIT guards (peer, 80)."""
    p = Peer(msl_ms=30000)
    srv = p.listen(80, backlog)
    conn = p.accept(srv)
    conn.close()
    p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
    p.send(Seg(FIN | ACK, 1, 2))
    p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])
    assert p.state() == "TIME-WAIT"
    return p, srv


class TestTimeWaitNewSyn:
    def test_time_wait_syn_higher_seq_opens_new_connection(self):
        p, srv = server_time_wait()
        old = p.iss
        old_snd_nxt = (old + 2) & 0xFFFFFFFF
        p.iss = None
        p.send(Seg(SYN, 100000, mss=MSS))  # above the old connection's sequence space
        (synack,) = p.received()
        assert synack.flags == SYN | ACK
        assert synack.raw_seq == (old_snd_nxt + 65537) & 0xFFFFFFFF  # new ISN above old
        assert synack.ack == 100001
        assert p.net.stats.tcpTimeWaitReopened == 1
        p.send(Seg(ACK, 100001, 1))
        conn, addr = srv.accept()
        assert conn.state == "ESTABLISHED"

    def test_time_wait_syn_lower_seq_not_accepted(self):
        p, srv = server_time_wait()
        p.send(Seg(SYN, 0, mss=MSS))  # at or below the old rcv_nxt: maybe an old duplicate
        p.expect([Seg(ACK, 2, 2, wnd=WND - 1)])  # re-ACK of the old connection, no SYN,ACK
        assert p.state() == "TIME-WAIT"
        assert p.net.stats.tcpTimeWaitReopened == 0


class TestReadiness:
    def test_readiness_through_a_connection_life(self):
        from stack import POLLERR, POLLHUP, POLLIN, POLLOUT

        p, s = established()
        assert s.poll_flags() == POLLOUT
        p.send(Seg(ACK | PSH, 1, 1, data=b"x"))
        assert s.poll_flags() == POLLIN | POLLOUT
        s.recv(1)
        p.send(Seg(FIN | ACK, 2, 1))  # peer closed: readable (EOF), still writable
        assert s.poll_flags() == POLLIN | POLLOUT
        p.send(Seg(RST, 3))
        assert s.poll_flags() == POLLIN | POLLERR | POLLHUP
        assert s.readable() and s.writable()

    def test_readiness_listener_and_half_close(self):
        from stack import POLLHUP, POLLIN

        p = Peer()
        srv = p.listen()
        assert srv.poll_flags() == 0
        p.send(Seg(0x02, 0, mss=1460))
        p.received()
        assert srv.poll_flags() == 0  # half-open connections are not ready
        p.send(Seg(ACK, 1, 1))
        assert srv.poll_flags() == POLLIN
        conn, _ = srv.accept()
        conn.shutdown(SHUT_WR)
        p.received()
        p.send(Seg(FIN | ACK, 1, 2))
        assert conn.poll_flags() == POLLIN | POLLHUP  # both directions closed


class TestLingeringClose:
    def test_lingering_close_keeps_response_despite_unread_request(self):
        p, s = established()
        p.send(Seg(ACK | PSH, 1, 1, data=b"POST / with a body nobody reads"))
        s.send(b"HTTP/1.0 200 OK\r\n\r\nhi")
        s.lingering_close(2000)
        got = p.received()
        # The response and then a FIN: no RST although the request was never read.
        assert [g.flags & (FIN | RST) for g in got] == [0, FIN] or [
            g.flags & (FIN | RST) for g in got] == [FIN], got
        assert b"".join(g.data for g in got) == b"HTTP/1.0 200 OK\r\n\r\nhi"
        p.send(Seg(ACK | PSH, 32, 23, data=b"more body"))  # still discarded, still ACKed
        p.advance(200)
        (ack,) = p.received()
        assert ack.flags == ACK and ack.ack == 41, ack
        p.send(Seg(FIN | ACK, 41, 23))
        p.expect([Seg(ACK, 23, 42, wnd=None)])
        assert p.state() == "TIME-WAIT"
        assert p.net.stats.tcpOutRsts == 0

    def test_lingering_close_gives_up_with_rst(self):
        p, s = established()
        s.lingering_close(3000)
        p.expect([Seg(FIN | ACK, 1, 1, wnd=WND)])
        p.send(Seg(ACK, 1, 2))
        p.expect_nothing(2999)
        p.advance(1)
        p.expect([Seg(RST | ACK, 2, 1, wnd=0)])
        assert p.pool_full()
        assert p.net.stats.tcpLingerTimeouts == 0  # it waited in FIN-WAIT-2
        assert p.net.stats.tcpFinWait2Timeouts == 1
