# UDP sockets and services (DESIGN.md section 8), datagram by datagram on the virtual clock.
# MIT licence. The test plays 10.0.0.1 with hand-built packets (not the stack's codec).

import struct

from tcpscript import PEER_IP, STACK_IP, Peer, _csum, errno_of
from testing import expect_raises

from stack import AF_INET, SOCK_DGRAM, port, udp

BCAST = b"\xff\xff\xff\xff"


def udp_packet(sport, dport, data, src=PEER_IP, dst=STACK_IP, csum=True, ulen=None):
    ulen = 8 + len(data) if ulen is None else ulen
    u = bytearray(struct.pack(">HHHH", sport, dport, ulen, 0) + data)
    if csum:
        pseudo = src + dst + struct.pack(">BBH", 0, 17, len(u))
        c = 0xFFFF ^ _csum(pseudo + bytes(u))
        c = c or 0xFFFF
        u[6], u[7] = c >> 8, c & 0xFF
    ip = bytearray(struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0) + src + dst)
    c = 0xFFFF ^ _csum(bytes(ip))
    ip[10], ip[11] = c >> 8, c & 0xFF
    return bytes(ip) + bytes(u)


def wire(p):
    """Every packet the stack sent, raw."""
    out = []
    while True:
        n = p.link_test.recv_into(p.buf)
        if not n:
            return out
        out.append(bytes(p.buf[:n]))


def parse_udp(pkt):
    """(src, dst, sport, dport, payload), checking both checksums independently."""
    assert _csum(pkt[:20]) == 0xFFFF and pkt[9] == 17
    total = (pkt[2] << 8) | pkt[3]
    u = pkt[20:total]
    assert (u[4] << 8 | u[5]) == len(u)
    assert _csum(pkt[12:20] + struct.pack(">BBH", 0, 17, len(u)) + u) == 0xFFFF
    return pkt[12:16], pkt[16:20], (u[0] << 8) | u[1], (u[2] << 8) | u[3], u[8:]


def bound(p, lport=5000, **kw):
    s = p.net.socket(AF_INET, SOCK_DGRAM)
    s.setblocking(False)
    s.bind(("0.0.0.0", lport))
    return s


class TestUdpSocket:
    def setup(self):
        self.p = Peer()
        self.s = bound(self.p)

    def deliver(self, *pkts):
        for pkt in pkts:
            self.p.link_test.send(pkt)
        self.p.net.poll()

    def test_recvfrom_gets_datagrams_in_order_with_their_source(self):
        self.deliver(udp_packet(7000, 5000, b"one"), udp_packet(7001, 5000, b"two"))
        assert self.s.recvfrom(100) == (b"one", ("10.0.0.1", 7000))
        assert self.s.recvfrom(100) == (b"two", ("10.0.0.1", 7001))
        assert errno_of(self.s.recvfrom, 100) == port.EAGAIN

    def test_recv_cuts_a_long_datagram_and_drops_the_rest(self):
        self.deliver(udp_packet(7000, 5000, b"abcdef"), udp_packet(7000, 5000, b"gh"))
        assert self.s.recv(3) == b"abc"
        assert self.s.recv(10) == b"gh"

    def test_sendto_builds_a_correct_datagram(self):
        assert self.s.sendto(b"hello", ("10.0.0.1", 9)) == 5
        (pkt,) = wire(self.p)
        assert parse_udp(pkt) == (STACK_IP, PEER_IP, 5000, 9, b"hello")
        assert self.p.net.stats.udpOutDatagrams == 1

    def test_largest_datagram_and_one_byte_more(self):
        big = bytes(range(256)) * 5 + bytes(192)  # 1472: a 1500-byte packet
        assert self.s.sendto(big, ("10.0.0.1", 9)) == 1472
        assert parse_udp(wire(self.p)[0])[4] == big
        assert errno_of(self.s.sendto, big + b"x", ("10.0.0.1", 9)) == port.EMSGSIZE
        self.deliver(udp_packet(7000, 5000, big))
        assert self.s.recv(2000) == big

    def test_queue_overflow_drops_and_counts(self):
        for i in range(4):
            self.deliver(udp_packet(7000, 5000, bytes([i]) * 600))  # 608 bytes a record
        assert self.p.net.stats.udpRcvbufErrors == 1
        for i in range(3):
            assert self.s.recv(1000) == bytes([i]) * 600
        assert errno_of(self.s.recv, 10) == port.EAGAIN
        self.deliver(udp_packet(7000, 5000, b"after"))
        assert self.s.recv(10) == b"after"

    def test_connected_socket_hears_only_its_peer(self):
        self.s.connect(("10.0.0.1", 7000))
        self.deliver(udp_packet(7001, 5000, b"other port"),
                     udp_packet(7000, 5000, b"x", src=b"\x0a\x00\x00\x03"),
                     udp_packet(7000, 5000, b"peer"))
        assert self.s.recv(10) == b"peer"
        self.s.send(b"back")
        assert parse_udp(wire(self.p)[-1])[3:] == (7000, b"back")

    def test_bad_checksum_and_lying_length_dropped(self):
        bad = bytearray(udp_packet(7000, 5000, b"data"))
        bad[-1] ^= 1
        self.deliver(bytes(bad), udp_packet(7000, 5000, b"data", ulen=40),
                     udp_packet(7000, 5000, b"data", ulen=7))
        assert self.p.net.stats.udpInErrors == 3
        assert errno_of(self.s.recv, 10) == port.EAGAIN
        self.deliver(udp_packet(7000, 5000, b"no sum", csum=False))  # 0: none computed
        assert self.s.recv(10) == b"no sum"

    def test_timeout_and_poll_flags(self):
        self.s.settimeout(0.05)  # blocking calls drive poll() until the (real) timeout
        with expect_raises(OSError) as r:
            self.s.recv(10)
        assert r.exception.args[0] == port.ETIMEDOUT
        assert self.s.poll_flags() == 0x004  # POLLOUT only
        self.deliver(udp_packet(7000, 5000, b"x"))
        assert self.s.poll_flags() == 0x005

    def test_close_frees_the_slot_and_port(self):
        t = self.p.net.socket(AF_INET, SOCK_DGRAM)
        t.bind(("0.0.0.0", 5001))
        u = self.p.net.socket(AF_INET, SOCK_DGRAM)
        assert errno_of(u.bind, ("0.0.0.0", 5002)) == port.ENOBUFS  # 2 sockets by default
        assert errno_of(u.bind, ("0.0.0.0", 5000)) == port.EADDRINUSE
        self.s.close()
        u.bind(("0.0.0.0", 5000))
        assert errno_of(self.s.recv, 1) == port.EBADF

    def test_unbound_sendto_takes_a_random_port(self):
        u = self.p.net.socket(AF_INET, SOCK_DGRAM)
        self.s.close()
        u.sendto(b"q", ("10.0.0.1", 53))
        sport = parse_udp(wire(self.p)[0])[2]
        assert 49152 <= sport <= 65535


class TestUdpDelivery:
    def test_closed_port_gets_port_unreachable_rate_limited(self):
        p = Peer()
        for i in range(15):
            p.link_test.send(udp_packet(7000, 4444, b"knock %d" % i))
        p.net.poll()
        got = wire(p)
        assert len(got) == 10, len(got)  # at most 10 a second
        icmp = got[0]
        assert icmp[9] == 1 and icmp[20] == 3 and icmp[21] == 3
        assert _csum(icmp[20:]) == 0xFFFF
        assert icmp[28:56] == udp_packet(7000, 4444, b"knock 0")[:28]  # the quote
        assert p.net.stats.udpNoPorts == 15 and p.net.stats.icmpOutRateLimited == 5
        p.advance(1000)
        p.link_test.send(udp_packet(7000, 4444, b"later"))
        p.net.poll()
        assert len(wire(p)) == 1

    def test_broadcast_and_groups(self):
        p = Peer()
        s = bound(p)
        net = p.net
        p.link_test.send(udp_packet(7000, 5000, b"all", dst=BCAST))
        p.link_test.send(udp_packet(7000, 5000, b"subnet", dst=b"\x0a\x00\x00\xff"))
        p.link_test.send(udp_packet(7000, 5000, b"group", dst=b"\xe0\x00\x00\xfb"))
        p.link_test.send(udp_packet(7000, 4444, b"closed", dst=BCAST))  # no ICMP for these
        net.poll()
        assert s.recv(10) == b"all" and s.recv(10) == b"subnet"
        assert errno_of(s.recv, 10) == port.EAGAIN  # not a member
        net.join_multicast(0xE000, 0x00FB)
        p.link_test.send(udp_packet(7000, 5000, b"group", dst=b"\xe0\x00\x00\xfb"))
        net.poll()
        assert s.recv(10) == b"group"
        assert not wire(p)

    def test_service_sees_datagrams_in_place(self):
        p = Peer()
        seen = []

        def handler(shi, slo, sport, buf, off, n, kind, now):
            seen.append((shi, slo, sport, bytes(buf[off:off + n]), kind))

        p.net.udp.bind_service(68, handler)
        p.link_test.send(udp_packet(67, 68, b"offer", dst=BCAST))
        p.link_test.send(udp_packet(67, 68, b"ack"))
        p.net.poll()
        assert seen == [(0x0A00, 0x0001, 67, b"offer", udp.BROADCAST),
                        (0x0A00, 0x0001, 67, b"ack", udp.UNICAST)]
        n = len(b"request")
        p.net.udp.payload[:n] = b"request"
        p.net.udp.send(68, 0xFFFF, 0xFFFF, 67, n)
        assert parse_udp(wire(p)[0]) == (STACK_IP, BCAST, 68, 67, b"request")


class TestNoAddress:
    def test_no_address_sends_from_zero_and_hears_only_broadcast(self):
        from stack import Stack
        from stack.link.pipe import pipe

        test_end, end = pipe(mtu=1500)
        now = [0]
        net = Stack(end, clock=lambda: now[0])
        assert not net.has_address()
        got = []
        net.udp.bind_service(68, lambda *a: got.append(a[6]))
        test_end.send(udp_packet(67, 68, b"x", dst=b"\x00\x00\x00\x00"))
        test_end.send(udp_packet(67, 68, b"x", dst=BCAST))
        net.poll()
        assert got == [udp.BROADCAST]
        net.udp.payload[:1] = b"d"
        net.udp.send(68, 0xFFFF, 0xFFFF, 67, 1)
        buf = bytearray(1600)
        n = test_end.recv_into(buf)
        assert parse_udp(bytes(buf[:n]))[:2] == (b"\x00\x00\x00\x00", BCAST)
        net.set_address(b"\x0a\x00\x00\x07", 24, b"\x0a\x00\x00\x01")
        assert net.has_address() and net.ip == b"\x0a\x00\x00\x07"


class TestAddressChanges:
    # Found by the LAN fuzzer: with no address the stack answered "who has 0.0.0.0?" and
    # sent UDP from 0.0.0.0; frames waiting for ARP left later from an address given up.
    def setup(self):
        from stack import Stack
        from stack.link.pipe import pipe

        self.mac = b"\x02\x00\x00\x00\x00\x02"
        self.peer, end = pipe(mtu=1500, depth=64, macs=(b"\x02\x00\x00\x00\x00\x01",
                                                        self.mac))
        self.now = [0]
        self.net = Stack(end, ip=None, clock=lambda: self.now[0])
        self.buf = bytearray(1600)

    def frames(self):
        out = []
        while True:
            n = self.peer.recv_into(self.buf)
            if not n:
                return out
            out.append(bytes(self.buf[:n]))

    def test_no_address_no_arp_reply_for_zero_and_no_udp(self):
        arp = (b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x07\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01"
               + b"\x02\x00\x00\x00\x00\x07" + b"\x0a\x00\x00\x03" + bytes(6) + bytes(4))
        self.peer.send(arp)
        self.net.poll()
        assert not self.frames()
        u = self.net.socket(AF_INET, SOCK_DGRAM)
        assert errno_of(u.sendto, b"x", ("255.255.255.255", 9)) == port.ENETUNREACH
        s = self.net.socket()
        s.setblocking(False)
        assert errno_of(s.connect, ("10.0.0.3", 80)) == port.ENETUNREACH
        assert not self.frames()

    def test_frames_waiting_for_arp_do_not_outlive_the_address(self):
        self.net.set_address(b"\x0a\x00\x00\x02", 24)
        self.frames()
        u = self.net.socket(AF_INET, SOCK_DGRAM)
        u.sendto(b"hi", ("10.0.0.3", 9999))  # queued: who has 10.0.0.3?
        assert len(self.frames()) == 1
        self.net.clear_address()
        self.net.set_address(b"\x0a\x00\x00\x09", 24)
        self.frames()
        self.now[0] += 5000  # ARP retries would come now
        self.net.poll()
        assert not self.frames()
        reply = (self.mac + b"\x02\x00\x00\x00\x00\x03\x08\x06\x00\x01\x08\x00\x06\x04\x00\x02"
                 + b"\x02\x00\x00\x00\x00\x03" + b"\x0a\x00\x00\x03" + self.mac
                 + b"\x0a\x00\x00\x09")
        self.peer.send(reply)
        self.net.poll()
        assert not self.frames()  # nothing queued under 10.0.0.2 leaves now
