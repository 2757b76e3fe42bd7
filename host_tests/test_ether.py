# Ethernet, ARP and ICMP, scripted frame by frame over an in-memory Ethernet link. MIT licence.

import struct

from tcpscript import _csum

from stack import Stack, port
from stack.link.pipe import pipe

OUR_MAC = b"\x02\x00\x00\x00\x00\x02"
PEER_MAC = b"\x02\x00\x00\x00\x00\x01"
GW_MAC = b"\x02\x00\x00\x00\x00\xfe"
BCAST = b"\xff" * 6
OUR_IP = b"\x0a\x00\x00\x02"
PEER_IP = b"\x0a\x00\x00\x01"
GW_IP = b"\x0a\x00\x00\xfe"


class Wire:
    def __init__(self, **kw):
        self.now = port.ticks_add(0, -3000)
        self.test_end, end = pipe(mtu=1500, depth=64, macs=(PEER_MAC, OUR_MAC))
        self.net = Stack(end, ip="10.0.0.2", prefix=24, clock=lambda: self.now, **kw)
        self.buf = bytearray(1600)

    def frames(self):
        out = []
        while True:
            n = self.test_end.recv_into(self.buf)
            if not n:
                return out
            out.append(bytes(self.buf[:n]))

    def send(self, frame):
        self.test_end.send(frame)
        self.net.poll()

    def advance(self, ms):
        self.now = port.ticks_add(self.now, ms)
        self.net.poll()

    def connect(self, ip, p=80):
        """A non-blocking connect from the stack (its SYN may wait on ARP)."""
        s = self.net.socket()
        s.setblocking(False)
        try:
            s.connect((ip, p))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS, e
        return s


def arp_frame(op, sha, spa, tha, tpa, dst=BCAST):
    return (dst + sha + b"\x08\x06" + struct.pack(">HHBBH", 1, 0x0800, 6, 4, op) + sha + spa
            + tha + tpa)


def parse_arp(f):
    assert f[12:14] == b"\x08\x06", f
    op = struct.unpack(">H", f[20:22])[0]
    return f[0:6], op, f[22:28], f[28:32], f[32:38], f[38:42]


def ip_packet(proto, payload, src=PEER_IP, dst=OUR_IP):
    hdr = bytearray(struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(payload), 7, 0x4000, 64, proto,
                                0) + src + dst)
    c = 0xFFFF ^ _csum(bytes(hdr))
    hdr[10], hdr[11] = c >> 8, c & 0xFF
    return bytes(hdr) + payload


def icmp_msg(kind, code, rest, body):
    m = bytearray(bytes((kind, code, 0, 0)) + rest + body)
    c = 0xFFFF ^ _csum(bytes(m))
    m[2], m[3] = c >> 8, c & 0xFF
    return bytes(m)


def test_gratuitous_arp_at_start():
    w = Wire()
    (f,) = w.frames()
    dst, op, sha, spa, tha, tpa = parse_arp(f)
    assert dst == BCAST and op == 1 and sha == OUR_MAC and spa == OUR_IP and tpa == OUR_IP


def test_arp_request_for_us_gets_reply_and_others_do_not():
    w = Wire()
    w.frames()
    w.send(arp_frame(1, PEER_MAC, PEER_IP, b"\x00" * 6, OUR_IP))
    (f,) = w.frames()
    dst, op, sha, spa, tha, tpa = parse_arp(f)
    assert (dst, op, sha, spa, tha, tpa) == (PEER_MAC, 2, OUR_MAC, OUR_IP, PEER_MAC, PEER_IP)
    w.send(arp_frame(1, GW_MAC, GW_IP, b"\x00" * 6, b"\x0a\x00\x00\x09"))
    assert w.frames() == []
    assert [e[3] for e in w.net.arp.entries()] == ["RESOLVED"]  # the asker, not the other


def test_connect_waits_for_arp_then_sends_queued_syn():
    w = Wire()
    w.frames()
    s = w.connect("10.0.0.1")
    (req,) = w.frames()
    dst, op, sha, spa, tha, tpa = parse_arp(req)
    assert op == 1 and tpa == PEER_IP and dst == BCAST
    w.send(arp_frame(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=OUR_MAC))
    (syn,) = w.frames()
    assert syn[0:6] == PEER_MAC and syn[6:12] == OUR_MAC and syn[12:14] == b"\x08\x00"
    assert syn[14 + 9] == 6 and syn[14 + 20 + 13] == 0x02  # TCP SYN
    assert w.net.stats.arpOutRequests == 1


def test_off_link_goes_to_gateway_and_no_gateway_no_route():
    w = Wire(gateway="10.0.0.254")
    w.frames()
    s = w.connect("192.0.2.7")
    (req,) = w.frames()
    assert parse_arp(req)[5] == GW_IP  # ARP for the gateway, not the destination
    w2 = Wire()
    w2.frames()
    s2 = w2.connect("192.0.2.7")
    assert w2.frames() == []
    assert w2.net.stats.ipOutNoRoutes == 1


def test_arp_retries_then_gives_up():
    w = Wire(syn_retries=1)
    w.frames()
    s = w.connect("10.0.0.1")
    sent = w.frames()
    for _ in range(40):
        w.advance(100)
        sent += w.frames()
    # Three requests a second apart (config.ARP_RETRIES), then the waiting SYN is dropped.
    assert [parse_arp(f)[1] for f in sent] == [1, 1, 1], sent
    assert w.net.stats.arpOutRequests == 3
    assert w.net.stats.arpUnresolved == 1


def test_ping_gets_echo_reply():
    w = Wire()
    w.frames()
    w.send(arp_frame(1, PEER_MAC, PEER_IP, b"\x00" * 6, OUR_IP))
    w.frames()
    body = bytes(range(56))
    req = icmp_msg(8, 0, b"\x12\x34\x00\x07", body)
    w.send(OUR_MAC + PEER_MAC + b"\x08\x00" + ip_packet(1, req))
    (rep,) = w.frames()
    assert rep[0:6] == PEER_MAC
    ip = rep[14:]
    assert ip[9] == 1 and ip[12:16] == OUR_IP and ip[16:20] == PEER_IP
    assert _csum(ip[:20]) == 0xFFFF
    m = ip[20:]
    assert m[0] == 0 and m[4:8] == b"\x12\x34\x00\x07" and m[8:] == body
    assert _csum(m) == 0xFFFF
    assert w.net.stats.icmpOutEchoReps == 1


def test_icmp_port_unreachable_refuses_connect():
    w = Wire()
    w.frames()
    w.send(arp_frame(1, PEER_MAC, PEER_IP, b"\x00" * 6, OUR_IP))
    w.frames()
    s = w.connect("10.0.0.1")
    (syn,) = w.frames()
    quoted = syn[14:14 + 28]  # IP header + first 8 bytes of the TCP header
    w.send(OUR_MAC + PEER_MAC + b"\x08\x00" + ip_packet(1, icmp_msg(3, 3, b"\x00" * 4, quoted)))
    assert s.state == "CLOSED"
    try:
        s.connect(("10.0.0.1", 80))
        raise AssertionError("connect did not fail")
    except OSError as e:
        assert e.args[0] == port.ECONNREFUSED


def test_frames_for_other_macs_and_bad_ip_are_dropped():
    w = Wire()
    w.frames()
    w.send(b"\x02\x00\x00\x00\x00\x99" + PEER_MAC + b"\x08\x00" + ip_packet(1, b"x" * 8))
    w.send(OUR_MAC + PEER_MAC + b"\x86\xdd" + b"\x00" * 40)  # IPv6
    w.send(OUR_MAC + PEER_MAC)  # runt
    assert w.frames() == []
    assert w.net.stats.ethInDrops == 3
