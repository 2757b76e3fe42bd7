# Opening: SYN-SENT, LISTEN and SYN-RECEIVED, scripted segment by segment. MIT licence.

from tcpscript import ACK, MSS, RST, SYN, WND, Peer, Seg, errno_of

from stack import port


class TestClosed:
    def test_closed_syn_to_closed_port_gets_rst(self):
        p = Peer()
        p.lport = 81
        p.send(Seg(SYN, 0, mss=MSS))
        (rst,) = p.received()
        # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        assert rst.flags == RST | ACK and rst.raw_seq == 0 and rst.ack == 1, rst
        assert (rst.sport, rst.dport) == (81, p.port)
        assert p.net.stats.tcpOutRsts == 1

    def test_closed_ack_to_closed_port_gets_rst_at_its_ack(self):
        p = Peer()
        p.lport = 81
        p.send(Seg(ACK, 5, data=b"x"), ack_abs=0x12345678)
        (rst,) = p.received()
        assert rst.flags == RST and rst.raw_seq == 0x12345678, rst  # <SEQ=SEG.ACK><CTL=RST>

    def test_closed_rst_gets_nothing(self):
        p = Peer()
        p.lport = 81
        p.send(Seg(RST, 5))
        p.expect_nothing()


def syn_sent(**kw):
    """A Peer and the stack's socket in SYN-SENT, its SYN already seen."""
    p = Peer(**kw)
    s = p.net.socket()
    s.setblocking(False)
    assert errno_of(s.connect, ("10.0.0.1", p.port)) == port.EINPROGRESS
    p.expect([Seg(SYN, 0, wnd=WND, mss=MSS)])
    assert s.state == "SYN-SENT"
    return p, s


class TestSynSent:
    def test_syn_sent_rst_ack_connection_refused(self):
        p, s = syn_sent()
        p.send(Seg(RST | ACK, 0, 1))
        assert s.state == "CLOSED"
        assert errno_of(s.connect, ("10.0.0.1", p.port)) == port.ECONNREFUSED
        assert p.net.stats.tcpAttemptFails == 1
        s.close()
        assert p.pool_full()

    def test_syn_sent_rst_bad_ack_ignored(self):
        p, s = syn_sent()
        p.send(Seg(RST | ACK, 0, 7))
        p.expect_nothing()
        assert s.state == "SYN-SENT"

    def test_syn_sent_syn_ack_bad_ack_gets_rst(self):
        p, s = syn_sent()
        p.send(Seg(SYN | ACK, 0, 9))
        (rst,) = p.received()
        assert rst.flags == RST and rst.seq == 9, rst  # <SEQ=SEG.ACK><CTL=RST>
        assert s.state == "SYN-SENT"

    def test_syn_sent_timeout(self):
        p, s = syn_sent(syn_retries=2)
        for wait in (1000, 2000):
            p.expect_nothing(wait - 1)
            p.advance(1)
            p.expect([Seg(SYN, 0, wnd=WND, mss=MSS)])
        p.expect_nothing(3999)
        assert s.state == "SYN-SENT"
        p.advance(1)
        p.expect_nothing()
        assert s.state == "CLOSED"
        assert errno_of(s.connect, ("10.0.0.1", p.port)) == port.ETIMEDOUT
        assert p.net.stats.tcpAttemptFails == 1

    def test_syn_sent_syn_ack_established_uses_peer_mss(self):
        p, s = syn_sent()
        p.send(Seg(SYN | ACK, 0, 1, mss=100))
        p.expect([Seg(ACK, 1, 1, wnd=WND)])
        s.send(b"x" * 250)
        got = p.received()
        assert [len(g.data) for g in got] == [100, 100], got  # Nagle holds the 50
        p.send(Seg(ACK, 1, 201))
        got = p.received()
        assert [len(g.data) for g in got] == [50], got
        assert p.net.stats.tcpActiveOpens == 1
        assert p.net.stats.tcpCurrEstab == 1

    def test_syn_sent_pool_exhausted(self):
        p = Peer(tcbs=1)
        p.connect()
        s = p.net.socket()
        s.setblocking(False)
        assert errno_of(s.connect, ("10.0.0.1", p.port + 1)) == port.ENOBUFS
        assert p.net.stats.tcpTcbExhausted == 1


class TestListen:
    def test_listen_syn_gets_syn_ack_then_accept(self):
        p = Peer()
        srv = p.listen()
        assert errno_of(srv.accept) == port.EAGAIN
        conn = p.accept(srv)
        assert conn.getpeername() == ("10.0.0.1", p.port)
        assert p.net.stats.tcpPassiveOpens == 1

    def test_listen_backlog_full_drops_syn(self):
        p = Peer()
        srv = p.listen(backlog=1)
        p.send(Seg(SYN, 0, mss=MSS))
        assert len(p.received()) == 1
        p.send(Seg(ACK, 1, 1))  # established, waiting for accept(): it keeps its place
        p.port += 1
        p.iss = None
        p.send(Seg(SYN, 0, mss=MSS))
        p.expect_nothing()
        assert p.net.stats.tcpListenDrops == 1

    def test_listen_zero_backlog_still_accepts_one(self):
        p = Peer()
        srv = p.listen(backlog=0)
        p.accept(srv)

    def test_listen_close_resets_pending_connections(self):
        p = Peer()
        srv = p.listen(backlog=4)
        ports = (p.port, p.port + 1)
        for i, sport in enumerate(ports):
            p.port = sport
            p.iss = None
            p.send(Seg(SYN, 0, mss=MSS))
            p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])
            if i == 0:
                p.send(Seg(ACK, 1, 1))  # established, never accepted
        srv.close()
        got = p.received()
        assert sorted((g.dport, g.flags & RST) for g in got) == [(ports[0], RST),
                                                               (ports[1], RST)], got
        assert p.pool_full()
        p.port = ports[0]
        p.send(Seg(SYN, 0, mss=MSS))
        (rst,) = p.received()  # nothing listens now
        assert rst.flags == RST | ACK


class TestSynReceived:
    def setup(self):
        self.p = Peer()
        self.srv = self.p.listen()
        self.p.send(Seg(SYN, 0, mss=MSS))
        self.p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])

    def test_syn_received_rexmit_syn_ack(self):
        self.p.advance(1000)
        self.p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])
        self.p.advance(2000)
        self.p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])

    def test_syn_received_duplicate_syn_gets_syn_ack(self):
        self.p.send(Seg(SYN, 0, mss=MSS))
        self.p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])

    def test_syn_received_rst_back_to_listen(self):
        self.p.send(Seg(RST, 1))
        self.p.expect_nothing()
        assert self.p.pool_full()
        assert errno_of(self.srv.accept) == port.EAGAIN

    def test_syn_received_bad_ack_gets_rst(self):
        self.p.send(Seg(ACK, 1, 5))
        (rst,) = self.p.received()
        assert rst.flags == RST and rst.seq == 5


class TestSimultaneousOpen:
    def test_syn_sent_syn_simultaneous_open(self):
        p, s = syn_sent()
        p.send(Seg(SYN, 0, mss=MSS))  # their SYN crosses ours
        p.expect([Seg(SYN | ACK, 0, 1, wnd=WND, mss=MSS)])
        assert s.state == "SYN-RECEIVED"
        p.send(Seg(SYN | ACK, 0, 1, mss=MSS))  # their SYN,ACK acknowledges our SYN
        p.expect_nothing()
        assert s.state == "ESTABLISHED"
        s.send(b"hi")
        p.expect([Seg(ACK | 0x08, 1, 1, wnd=WND, data=b"hi")])
