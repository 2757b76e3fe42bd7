# On a LAN we do not control (issue 10 items 4, 5, 6): ARP takeover, martian sources, forged
# ICMP errors and predictable ports, scripted frame by frame on the virtual clock. A core
# test module: it runs on CPython, MicroPython unix and MicroPython WebAssembly. MIT licence.

import struct

from tcpscript import _csum
from test_ether import (BCAST, GW_IP, GW_MAC, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, Wire,
                        arp_frame, icmp_msg, ip_packet, parse_arp)

from stack import Stack, ipv4, port
from stack.link.pipe import pipe

SYN, ACK = 0x02, 0x10
EVIL_MAC = b"\x02\xee\xee\xee\xee\xee"
NEW_MAC = b"\x02\x00\x00\x00\x00\x11"
MCAST_MAC = b"\x01\x00\x5e\x00\x00\x01"
ZERO_MAC = b"\x00" * 6
REMOTE_IP = b"\xc0\x00\x02\x07"  # 192.0.2.7, off-link: reached through the gateway
PEER_ISS = 0x10000000
_M32 = 0xFFFFFFFF


def tcp_packet(src, dst, sport, dport, seq, ack, flags, data=b"", wnd=65535, mss=None):
    opts = struct.pack(">BBH", 2, 4, mss) if mss else b""
    hlen = 20 + len(opts)
    tcp = bytearray(struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (hlen // 4) << 4, flags,
                                wnd, 0, 0) + opts + data)
    c = 0xFFFF ^ _csum(src + dst + struct.pack(">BBH", 0, 6, len(tcp)) + bytes(tcp))
    tcp[16], tcp[17] = c >> 8, c & 0xFF
    return ip_packet(6, bytes(tcp), src=src, dst=dst)


def eth(dst, src, packet):
    return dst + src + b"\x08\x00" + packet


def parse_tcp(ip):
    """(sport, dport, seq, ack, flags, payload length) of the TCP segment in IPv4 packet ip."""
    ihl = (ip[0] & 0x0F) * 4
    total = (ip[2] << 8) | ip[3]
    t = ip[ihl:total]
    sport, dport, seq, ack, off, flags = struct.unpack(">HHIIBB", t[:14])
    return sport, dport, seq, ack, flags, len(t) - (off >> 4) * 4


def halves(addr):
    return (addr[0] << 8) | addr[1], (addr[2] << 8) | addr[3]


# ---- item 4: ARP ---------------------------------------------------------------------------


class Transfer:
    """The stack's socket sends 500 bytes each 100 ms to a remote host through its next hop
    (the gateway, or the host itself on-link). The test plays the next hop: it answers ARP
    for itself, completes the handshake and ACKs every in-order segment at once."""

    def __init__(self, via_gateway):
        if via_gateway:
            self.w = Wire(gateway="10.0.0.254")
            self.remote, self.nh_ip, self.nh_mac = REMOTE_IP, GW_IP, GW_MAC
        else:
            self.w = Wire()
            self.remote, self.nh_ip, self.nh_mac = PEER_IP, PEER_IP, PEER_MAC
        self.w.frames()
        self.segments = 0  # in-order data segments the next hop received
        self.misdirected = 0  # frames for the remote host sent to any MAC but nh_mac
        self.probes = 0  # ARP requests for the next hop sent unicast to nh_mac
        self.rcv_nxt = None
        self.s = self.w.connect("%d.%d.%d.%d" % tuple(self.remote), 5000)
        for _ in range(5):
            self.step([])
        assert self.s.state == "ESTABLISHED", self.s.state

    def answer(self, frames):
        out = []
        for f in frames:
            if f[12:14] == b"\x08\x06":
                dst, op, sha, spa, tha, tpa = parse_arp(f)
                if op == 1 and tpa == self.nh_ip and dst in (BCAST, self.nh_mac):
                    if dst == self.nh_mac:
                        self.probes += 1
                    out.append(arp_frame(2, self.nh_mac, self.nh_ip, OUR_MAC, OUR_IP,
                                         dst=OUR_MAC))
                continue
            ip = f[14:]
            if ip[9] != 6 or ip[16:20] != self.remote:
                continue  # echo replies to the flood and the like
            if f[0:6] != self.nh_mac:
                self.misdirected += 1
                continue
            sport, dport, seq, ack, flags, dlen = parse_tcp(ip)
            if flags & SYN:
                self.rcv_nxt = (seq + 1) & _M32
                out.append(eth(OUR_MAC, self.nh_mac,
                               tcp_packet(self.remote, OUR_IP, dport, sport, PEER_ISS,
                                          self.rcv_nxt, SYN | ACK, mss=1460)))
                continue
            if dlen and seq == self.rcv_nxt:
                self.rcv_nxt = (seq + dlen) & _M32
                self.segments += 1
            if dlen:
                out.append(eth(OUR_MAC, self.nh_mac,
                               tcp_packet(self.remote, OUR_IP, dport, sport,
                                          PEER_ISS + 1, self.rcv_nxt, ACK)))
        return out

    def step(self, flood):
        """100 ms: the flood's frames arrive, the application writes, the stack polls, and
        the next hop answers what it was sent (and the stack polls again)."""
        w = self.w
        for f in flood:
            w.test_end.send(f)
        if self.s.state == "ESTABLISHED":
            try:
                self.s.send(b"d" * 500)
            except OSError:
                pass  # the send ring is full: frames are not getting through
        w.now = port.ticks_add(w.now, 100)
        w.net.poll()
        for _ in range(4):
            replies = self.answer(w.frames())
            if not replies:
                break
            for r in replies:
                w.test_end.send(r)
            w.net.poll()


def spoofed_flood(k):
    """100 ms of flood: 16 pings (160/s) from 64 spoofed on-link sources, and 6 ARP requests
    for our address, half from those sources, half from 64 others."""
    out = []
    for j in range(16):
        n = (k * 16 + j) % 64
        src = bytes((10, 0, 0, 100 + n))
        ping = icmp_msg(8, 0, struct.pack(">HH", 0x4242, k & 0xFFFF), b"p" * 32)
        out.append(eth(OUR_MAC, bytes((2, 0x66, 0, 0, 0, n)), ip_packet(1, ping, src=src)))
    for j in range(6):
        n = (k * 6 + j) % 64
        spa = bytes((10, 0, 0, (100 if j & 1 else 170) + n))
        out.append(arp_frame(1, bytes((2, 0x77, 0, 0, j & 1, n)), spa, ZERO_MAC, OUR_IP))
    return out


def _flood_keeps_transfer_going(via_gateway):
    quiet = Transfer(via_gateway)
    for k in range(50):
        quiet.step([])
    loud = Transfer(via_gateway)
    for k in range(50):
        loud.step(spoofed_flood(k))
    # 5 s: one segment each 100 ms without the flood, and as many with it.
    assert quiet.segments >= 45, quiet.segments
    assert loud.segments >= quiet.segments, (loud.segments, quiet.segments)
    assert quiet.misdirected == 0 and loud.misdirected == 0
    net = loud.w.net
    assert net.arp.resolved_mac(*halves(loud.nh_ip)) == loud.nh_mac
    # The flood wanted more entries than it may have, and was told no.
    assert net.stats.arpRefusedFull > 0 and net.stats.arpRefused >= net.stats.arpRefusedFull
    assert net.stats.icmpInEchos == 800
    return loud


def test_arp_spoofed_flood_keeps_gateway_and_transfer():
    _flood_keeps_transfer_going(True)


def test_arp_spoofed_flood_keeps_on_link_peer_and_transfer():
    _flood_keeps_transfer_going(False)


def test_arp_flood_leaves_room_to_resolve_a_new_host():
    t = Transfer(True)
    for k in range(20):
        t.step(spoofed_flood(k))
    # Our own new connection to an on-link host still gets its ARP request out, and its
    # SYN follows the reply at once.
    s = t.w.connect("10.0.0.1", 7)
    sent = t.w.frames()
    reqs = [f for f in sent if f[12:14] == b"\x08\x06" and parse_arp(f)[1] == 1
            and parse_arp(f)[5] == PEER_IP]
    assert len(reqs) == 1, sent
    t.w.test_end.send(arp_frame(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=OUR_MAC))
    t.w.net.poll()
    syns = [f for f in t.w.frames() if f[12:14] == b"\x08\x00" and f[14 + 9] == 6
            and f[14 + 16:14 + 20] == PEER_IP]
    assert len(syns) == 1 and syns[0][0:6] == PEER_MAC, syns
    assert parse_tcp(syns[0][14:])[4] == SYN
    assert s.state == "SYN-SENT"


def test_arp_claims_do_not_redirect_the_gateway():
    t = Transfer(True)
    for _ in range(5):
        t.step([])
    claims = (
        # Gratuitous ARP (a request for its own address) and an unsolicited reply, both
        # saying the gateway is now at EVIL_MAC.
        arp_frame(1, EVIL_MAC, GW_IP, ZERO_MAC, GW_IP),
        arp_frame(2, EVIL_MAC, GW_IP, OUR_MAC, OUR_IP, dst=OUR_MAC),
        # The gateway "at" the broadcast address, or a multicast group.
        arp_frame(2, BCAST, GW_IP, OUR_MAC, OUR_IP, dst=OUR_MAC),
        arp_frame(1, BCAST, GW_IP, ZERO_MAC, GW_IP),
        arp_frame(2, MCAST_MAC, GW_IP, OUR_MAC, OUR_IP, dst=OUR_MAC),
    )
    for claim in claims:
        before = t.segments
        t.w.test_end.send(claim)
        for _ in range(5):
            t.step([])
        assert t.segments >= before + 4, (claim, t.segments - before)
        assert t.misdirected == 0, claim
        assert t.w.net.arp.resolved_mac(*halves(GW_IP)) == GW_MAC
    st = t.w.net.stats
    assert (st.arpRefusedClaim, st.arpRefusedMac, st.arpRefused) == (2, 3, 5), st
    # Each claim of another MAC made us ask the gateway, at the MAC we had, if it was still
    # there (it was: it answered).
    assert t.probes == 2, t.probes


def test_arp_host_that_really_moved_is_found_again():
    t = Transfer(False)
    for _ in range(5):
        t.step([])
    # The peer's board is replaced: the new one announces itself; the old MAC is gone.
    t.w.test_end.send(arp_frame(1, NEW_MAC, PEER_IP, ZERO_MAC, PEER_IP))
    t.nh_mac = NEW_MAC
    t.misdirected = 0
    for _ in range(40):
        t.step([])
    # Unicast probes to the old MAC went unanswered (ARP_RETRIES, a second apart), so a
    # broadcast request asked again, and the new board answered.
    assert t.w.net.arp.resolved_mac(*halves(PEER_IP)) == NEW_MAC
    # TCP's retransmission (backed off meanwhile) goes to it, and the transfer goes on.
    before = t.segments
    for _ in range(100):
        t.step([])
    assert t.segments - before >= 40, t.segments - before
    assert t.w.net.stats.arpRefusedClaim == 1


def test_arp_no_entries_for_martian_senders_or_group_macs():
    w = Wire()
    w.frames()
    st = w.net.stats
    martians = ("255.255.255.255", "10.0.0.255", "224.0.0.1", "127.0.0.1", "10.0.0.2",
                "240.0.0.1")
    for text in martians:
        spa = ipv4.aton(text)
        w.send(arp_frame(1, EVIL_MAC, spa, ZERO_MAC, OUR_IP))
        w.send(arp_frame(2, EVIL_MAC, spa, OUR_MAC, OUR_IP, dst=OUR_MAC))
    assert w.frames() == []  # and not answered
    assert w.net.arp.entries() == []
    assert st.arpRefusedAddr == 2 * len(martians)
    # A sender MAC that is a group, zero or ours: neither answered nor learnt.
    for mac in (BCAST, MCAST_MAC, ZERO_MAC, OUR_MAC):
        w.send(arp_frame(1, mac, PEER_IP, ZERO_MAC, OUR_IP))
    assert w.frames() == []
    assert w.net.arp.entries() == []
    assert st.arpRefusedMac == 4
    # An unsolicited reply from a real neighbour makes no entry either.
    w.send(arp_frame(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=OUR_MAC))
    assert w.net.arp.entries() == []
    assert st.arpRefusedClaim == 1
    # An RFC 5227 probe (sender 0.0.0.0) for our address is answered, and learnt nowhere.
    w.send(arp_frame(1, PEER_MAC, b"\x00" * 4, ZERO_MAC, OUR_IP))
    (rep,) = w.frames()
    assert parse_arp(rep) == (PEER_MAC, 2, OUR_MAC, OUR_IP, PEER_MAC, b"\x00" * 4)
    assert w.net.arp.entries() == []
    assert st.arpRefused == 2 * len(martians) + 4 + 1


# ---- item 5: martian sources ---------------------------------------------------------------

MARTIANS = ("255.255.255.255", "10.0.0.255", "224.0.0.1", "0.0.0.0", "127.0.0.1", "10.0.0.2",
            "240.0.0.1", "0.1.2.3", "239.255.255.250")


class IPWire:
    """An IP-only link (like TUN) to a stack at 10.0.0.2/prefix with a listener on port 80."""

    def __init__(self, prefix=24, ip="10.0.0.2", **kw):
        self.now = port.ticks_add(0, -3000)
        self.test_end, end = pipe(mtu=1500, depth=64)
        self.net = Stack(end, ip=ip, prefix=prefix, clock=lambda: self.now, **kw)
        self.ip = ipv4.aton(ip)
        self.srv = self.net.socket()
        self.srv.setblocking(False)
        self.srv.bind(("0.0.0.0", 80))
        self.srv.listen(2)
        self.buf = bytearray(1600)

    def send(self, packet):
        self.test_end.send(packet)
        self.net.poll()

    def received(self):
        out = []
        while True:
            n = self.test_end.recv_into(self.buf)
            if not n:
                return out
            out.append(bytes(self.buf[:n]))

    def syn_and_ping(self, src):
        self.send(tcp_packet(src, self.ip, 40000, 80, 1000, 0, SYN, mss=1460))
        self.send(ip_packet(1, icmp_msg(8, 0, b"\x12\x34\x00\x01", b"ping"), src=src,
                            dst=self.ip))


def test_martian_sources_get_no_reply_and_no_tcb():
    w = IPWire()
    pool = w.net.free_tcb_count()
    for text in MARTIANS:
        w.syn_and_ping(ipv4.aton(text))
        assert w.received() == [], text
        assert w.net.free_tcb_count() == pool, text
    st = w.net.stats
    assert st.ipInMartians == 2 * len(MARTIANS)
    assert (st.tcpInSegs, st.icmpInMsgs, st.tcpOutSegs, st.icmpOutEchoReps) == (0, 0, 0, 0)
    # The same from a neighbour: a SYN,ACK and an echo reply (the test is not vacuous).
    w.syn_and_ping(PEER_IP)
    got = w.received()
    assert len(got) == 2 and parse_tcp(got[0])[4] == SYN | ACK and got[1][20] == 0, got
    assert st.ipInMartians == 2 * len(MARTIANS)


def test_martian_no_broadcast_on_31_and_32_prefixes():
    # RFC 3021: on a /31 both addresses are hosts; 10.0.0.3 is the peer, not a broadcast.
    w = IPWire(prefix=31)
    w.syn_and_ping(b"\x0a\x00\x00\x03")
    assert len(w.received()) == 2
    w = IPWire(prefix=32)
    w.syn_and_ping(b"\x0a\x00\x00\x03")
    assert len(w.received()) == 2
    # On a /30 it is the broadcast.
    w = IPWire(prefix=30)
    w.syn_and_ping(b"\x0a\x00\x00\x03")
    assert w.received() == [] and w.net.stats.ipInMartians == 2


def test_martian_table():
    ip_hi, ip_lo = halves(OUR_IP)
    for prefix, text, want in (
            (24, "0.0.0.0", True), (24, "0.255.1.1", True), (24, "127.0.0.1", True),
            (24, "127.255.255.254", True), (24, "224.0.0.1", True),
            (24, "239.255.255.250", True), (24, "240.0.0.1", True),
            (24, "255.255.255.255", True), (24, "10.0.0.255", True), (24, "10.0.0.2", True),
            (24, "10.0.0.1", False), (24, "10.0.1.255", False), (24, "192.0.2.255", False),
            (24, "1.2.3.4", False), (24, "223.255.255.255", False), (24, "126.0.0.1", False),
            (16, "10.0.255.255", True), (16, "10.0.0.255", False), (8, "10.255.255.255", True),
            (30, "10.0.0.3", True), (31, "10.0.0.3", False), (32, "10.0.0.3", False),
            (0, "255.255.255.255", True), (0, "10.0.0.255", False)):
        mask = (_M32 << (32 - prefix)) & _M32 if prefix else 0
        hi, lo = halves(ipv4.aton(text))
        got = ipv4.martian(hi, lo, ip_hi, ip_lo, mask >> 16, mask & 0xFFFF)
        assert got == want, (prefix, text, got)


# ---- item 6: forged ICMP, predictable ports ------------------------------------------------


def _syn_sent():
    w = IPWire()
    s = w.net.socket()
    s.setblocking(False)
    try:
        s.connect(("10.0.0.1", 5000))
    except OSError as e:
        assert e.args[0] == port.EINPROGRESS, e
    (syn,) = w.received()
    return w, s, syn


def unreachable(quote, code=3, src=PEER_IP):
    return ip_packet(1, icmp_msg(3, code, b"\x00" * 4, quote), src=src)


def test_icmp_unreachable_with_bad_quotes_ignored_and_counted():
    w, s, syn = _syn_sent()
    q = syn[:28]  # what a router quotes: the IP header and 8 bytes of our SYN
    other_port = struct.pack(">H", parse_tcp(syn)[0] ^ 1)
    bad = (
        q[:12] + b"\x0a\x00\x00\x63" + q[16:],  # quoted source is not our address
        q[:9] + b"\x11" + q[10:],  # quoted protocol UDP
        b"\x44" + q[1:],  # quoted header length 16 bytes
        b"\x4f" + q[1:],  # ... 60 bytes: more than the message holds
        b"\x65" + q[1:],  # not IPv4
        q[:24],  # 4 bytes of the TCP header: no sequence number
        q[:20] + other_port + q[22:],  # no such connection
    )
    for quote in bad:
        w.send(unreachable(quote))
    assert s.state == "SYN-SENT"
    assert w.net.stats.icmpInBadQuotes == len(bad)
    assert w.net.stats.icmpInDestUnreachs == len(bad)
    # From a martian source it is not even read.
    w.send(unreachable(q, src=b"\xe0\x00\x00\x01"))
    assert s.state == "SYN-SENT"
    assert w.net.stats.ipInMartians == 1 and w.net.stats.icmpInDestUnreachs == len(bad)
    assert w.received() == []
    # The real thing still refuses the connection.
    w.send(unreachable(q))
    assert s.state == "CLOSED"
    try:
        s.connect(("10.0.0.1", 5000))
        raise AssertionError("connect did not fail")
    except OSError as e:
        assert e.args[0] == port.ECONNREFUSED


def _connect_ports(w, dests):
    ports = []
    for ip, p in dests:
        s = w.net.socket()
        s.setblocking(False)
        try:
            s.connect((ip, p))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS, e
        (syn,) = w.received()
        ports.append(parse_tcp(syn)[0])
    return ports


def _check_ports(ports):
    for p in ports:
        assert 49152 <= p <= 65535, p
    assert len(set(ports)) == len(ports), ports
    diffs = [ports[i + 1] - ports[i] for i in range(len(ports) - 1)]
    assert len(set(diffs)) > 1, ports  # not an arithmetic sequence
    return diffs


def test_ephemeral_ports_to_different_destinations_unpredictable():
    w = IPWire(tcbs=24, rx_buf=256, tx_buf=256)
    ports = _connect_ports(w, [("10.0.1.%d" % k, 80) for k in range(1, 21)])
    diffs = _check_ports(ports)
    # Sequential ports give 19 differences of 1; random ones hardly any.
    assert len([d for d in diffs if d == 1 or d == -1]) <= 2, ports


def test_ephemeral_ports_to_one_destination_never_consecutive():
    w = IPWire(tcbs=24, rx_buf=256, tx_buf=256)
    ports = _connect_ports(w, [("10.0.0.1", 80)] * 20)
    diffs = _check_ports(ports)
    assert 1 not in diffs, ports


def test_ephemeral_port_skips_ports_in_use_and_time_wait():
    w = IPWire()
    net = w.net
    rhi, rlo = halves(PEER_IP)
    c = net.next_port
    p = net.ephemeral_port(rhi, rlo, 80)
    # The same choice, with p taken by a listener, then by a TIME-WAIT record.
    net.next_port = c
    lst = net.socket()
    lst.bind(("0.0.0.0", p))
    lst.listen(1)
    q = net.ephemeral_port(rhi, rlo, 80)
    assert q != p and 49152 <= q <= 65535, (p, q)
    lst.close()
    net.next_port = c
    net.tw.add(rhi, rlo, p, 80, 0, 0, 0, 0, 0, port.ticks_add(w.now, 60_000), w.now, net.stats)
    q = net.ephemeral_port(rhi, rlo, 80)
    assert q != p and 49152 <= q <= 65535, (p, q)
    # Many destinations: always in range.
    for k in range(200):
        q = net.ephemeral_port(k * 257 & 0xFFFF, k * 65 & 0xFFFF, 1 + k)
        assert 49152 <= q <= 65535, q


# ---- a connection's next hop (tcp.py _emit keeps the ARP entry while arp.gen stands) -------

NEW_GW_IP = b"\x0a\x00\x00\xfd"
NEW_GW_MAC = b"\x02\x00\x00\x00\x00\xfd"


def test_connection_follows_a_new_gateway():
    # A DHCP renewal may keep our address and change the gateway (set_address with the
    # same address: the ARP cache stands). The connection's remembered next hop must not:
    # its segments go to the new gateway as soon as ARP finds it, never to the old one.
    t = Transfer(True)
    for _ in range(5):
        t.step([])
    assert t.segments >= 5 and t.misdirected == 0
    t.w.net.set_address(OUR_IP, 24, NEW_GW_IP)
    t.nh_ip, t.nh_mac = NEW_GW_IP, NEW_GW_MAC
    before = t.segments
    for _ in range(10):
        t.step([])
    assert t.misdirected == 0, t.misdirected
    assert t.segments - before >= 5, t.segments - before


def test_arp_gen_moves_whenever_a_remembered_entry_may_not_hold():
    # arp.py's contract with tcp.py: an index from `last` is good while `gen` is the same.
    # So gen must move whenever an entry lookup() returned stops being usable or is reused,
    # and must not move on lookups (or the connection would look up every segment).
    from stack import arp

    w = Wire()
    w.frames()
    a = w.net.arp
    peer = halves(PEER_IP)
    w.send(arp_frame(1, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP))  # a request: resolved entry
    w.frames()
    assert a.lookup(peer[0], peer[1], w.now, True) == PEER_MAC
    i = a.last
    gen = a.gen
    for _ in range(3):
        a.lookup(peer[0], peer[1], w.now, True)
    assert a.gen == gen and a.last == i

    def moved():
        nonlocal gen
        changed = a.gen != gen
        gen = a.gen
        return changed

    # Expired while in use: probed at the MAC we have (still usable, may stay), then given
    # up on and asked by broadcast (PENDING: unusable, must move).
    arp_timeout = 300_000  # config.ARP_TIMEOUT_MS
    w.now = port.ticks_add(w.now, arp_timeout)
    a.used[i] = w.now  # a frame went through it just now
    w.net.dirty = True  # an expiry is no deadline of poll()'s: the next full pass sees it
    w.net.poll()
    moved()
    assert a.state[i] == 3  # PROBING
    for _ in range(60):
        if a.state[i] != 3:
            break
        a.used[i] = w.now  # still sending through it
        w.net.dirty = True
        w.advance(100)
    assert a.state[i] == 1 and moved()  # PENDING
    # Resolved again, then expired idle: dropped (FREE), must move.
    w.send(arp_frame(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=OUR_MAC))
    assert a.lookup(peer[0], peer[1], w.now, False) == PEER_MAC
    moved()
    w.now = port.ticks_add(w.now, arp_timeout + 60_000)
    w.net.dirty = True
    w.net.poll()
    assert a.find(*peer) < 0 and moved()
    # Evicted for another address (an idle entry reused), and everything forgotten.
    for k in range(len(a.state)):
        w.send(arp_frame(1, bytes((2, 0, 0, 0, 1, k)), bytes((10, 0, 0, 100 + k)), ZERO_MAC,
                         OUR_IP))
    w.frames()
    moved()
    w.now = port.ticks_add(w.now, 61_000)
    w.send(arp_frame(1, NEW_MAC, b"\x0a\x00\x00\x63", ZERO_MAC, OUR_IP))  # a slot reused
    assert moved()
    a.clear()
    assert moved()
    assert arp.ARPCache  # the module under test
