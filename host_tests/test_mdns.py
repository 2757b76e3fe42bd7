# mDNS responder (stack/mdns.py, RFC 6762), scripted frame by frame on the virtual clock over
# an in-memory Ethernet link. A core test module: it runs on CPython, MicroPython unix and
# MicroPython WebAssembly. MIT licence.

import struct

from test_ether import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, Wire, arp_frame, ip_packet

from stack import Stack, mdns, port
from stack.link.pipe import pipe

MDNS_IP = b"\xe0\x00\x00\xfb"
MDNS_MAC = b"\x01\x00\x5e\x00\x00\xfb"
OTHER_IP = b"\x0a\x00\x00\x63"  # 10.0.0.99
NAME = b"\x06board7\x05local\x00"
TYPE_A, TYPE_AAAA, TYPE_ANY = 1, 28, 255
QU = 0x8000


def udp_frame(payload, src=PEER_IP, sport=5353, dst=MDNS_IP, dport=5353, mac=MDNS_MAC):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload  # no checksum
    return mac + PEER_MAC + b"\x08\x00" + ip_packet(17, udp, src=src, dst=dst)


def message(questions=(), answers=(), ident=0, flags=0, counts=None):
    """A DNS message; questions are (name, type, class), answers raw records."""
    body = b"".join(n + struct.pack(">HH", t, c) for n, t, c in questions) + b"".join(answers)
    if counts is None:
        counts = (len(questions), len(answers), 0, 0)
    return struct.pack(">HHHHHH", ident, flags, *counts) + body


def record(name=NAME, rtype=TYPE_A, rclass=0x8001, ttl=120, rdata=OUR_IP):
    return name + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def query(name=NAME, qtype=TYPE_A, qclass=1, **kw):
    return message([(name, qtype, qclass)], **kw)


def parse(frame):
    """(dst MAC, dst IP, sport, dport, DNS message) of a UDP frame we sent."""
    assert frame[12:14] == b"\x08\x00" and frame[23] == 17, frame
    ip = frame[14:]
    assert ip[8] == 255, "IP TTL %d: mDNS responses go out with 255 (RFC 6762 11)" % ip[8]
    hlen = (ip[0] & 0x0F) * 4
    sport, dport, ulen = struct.unpack(">HHH", ip[hlen:hlen + 6])
    return frame[0:6], ip[16:20], sport, dport, ip[hlen + 8:hlen + ulen]


def check_answer(msg, ident=0, flush=True, ttl=120):
    """msg is one response holding our A record (after the question, if any); the question."""
    got_id, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    assert (got_id, flags, an, ns, ar) == (ident, 0x8400, 1, 0, 0), msg
    p = 12
    question = None
    if qd:
        assert qd == 1, msg
        question = msg[p:p + len(NAME) + 4]
        p += len(NAME) + 4
        assert msg[p:p + 2] == b"\xc0\x0c", msg  # the answer's name points at the question
        p += 2
    else:
        assert msg[p:p + len(NAME)] == b"\x06Board7\x05local\x00", msg
        p += len(NAME)
    rtype, rclass, got_ttl, rdlen = struct.unpack(">HHIH", msg[p:p + 10])
    assert (rtype, rclass, got_ttl, rdlen) == (1, 0x8001 if flush else 1, ttl, 4), msg
    assert msg[p + 10:] == OUR_IP, msg
    return question


class NoAddressWire(Wire):
    """test_ether's Wire, with a Stack that has no address yet."""

    def __init__(self):
        self.now = port.ticks_add(0, -3000)
        self.test_end, end = pipe(mtu=1500, depth=64, macs=(PEER_MAC, OUR_MAC))
        self.net = Stack(end, ip=None, clock=lambda: self.now, hostname="Board7")
        self.buf = bytearray(1600)


class Base:
    def setup(self):
        self.w = Wire(hostname="Board7")
        # The peer asks for our MAC: we learn its own (RFC 826), so unicast needs no ARP.
        self.w.send(arp_frame(1, PEER_MAC, PEER_IP, b"\x00" * 6, OUR_IP))
        self.r = mdns.start(self.w.net)
        self.w.advance(0)
        self.w.advance(1000)  # both announcements out
        self.w.advance(1000)  # and the rate limit over
        self.w.frames()
        self.st = self.w.net.stats

    def ask(self, payload, **kw):
        self.w.send(udp_frame(payload, **kw))
        return [parse(f) for f in self.w.frames()]


class TestQuery(Base):
    def test_qm_query_gets_multicast_answer(self):
        out = self.ask(query())
        assert len(out) == 1, out
        mac, dst, sport, dport, msg = out[0]
        assert (mac, dst, sport, dport) == (MDNS_MAC, MDNS_IP, 5353, 5353)
        check_answer(msg)
        assert self.st.mdnsInQueries == 1 and self.st.mdnsOutResponses == 3

    def test_any_type_and_any_class_answered(self):
        assert len(self.ask(query(qtype=TYPE_ANY))) == 1
        self.w.advance(1000)
        assert len(self.ask(query(qclass=255))) == 1

    def test_qu_query_gets_unicast_answer(self):
        out = self.ask(query(qclass=1 | QU))
        assert len(out) == 1, out
        mac, dst, sport, dport, msg = out[0]
        assert (mac, dst, sport, dport) == (PEER_MAC, PEER_IP, 5353, 5353)
        check_answer(msg)

    def test_legacy_unicast_query_gets_unicast_reply_with_id_and_question(self):
        out = self.ask(query(ident=0x1234, flags=0x0100), sport=40000)
        assert len(out) == 1, out
        mac, dst, sport, dport, msg = out[0]
        assert (mac, dst, sport, dport) == (PEER_MAC, PEER_IP, 5353, 40000)
        q = check_answer(msg, ident=0x1234, flush=False, ttl=10)
        assert q.lower() == NAME + b"\x00\x01\x00\x01", q

    def test_legacy_unicast_to_our_address(self):
        out = self.ask(query(ident=7), sport=40000, dst=OUR_IP, mac=OUR_MAC)
        assert len(out) == 1 and out[0][1:4] == (PEER_IP, 5353, 40000), out
        check_answer(out[0][4], ident=7, flush=False, ttl=10)

    def test_name_compared_case_insensitively(self):
        out = self.ask(query(name=b"\x06bOARD7\x05LoCaL\x00"))
        assert len(out) == 1, out
        check_answer(out[0][4])

    def test_compressed_second_question_answered(self):
        # "other.local" then "board7" + a pointer to "local" in the first question
        q1 = b"\x05other\x05local\x00"
        q2 = b"\x06board7\xc0\x12"
        out = self.ask(message([(q1, 1, 1), (q2, 1, 1)]))
        assert len(out) == 1, out
        check_answer(out[0][4])

    def test_other_names_aaaa_and_other_classes_ignored(self):
        for q in (query(name=b"\x06board8\x05local\x00"),
                  query(name=b"\x07board77\x05local\x00"),
                  query(name=b"\x06board7\x00"),
                  query(name=b"\x06board7\x05local\x01x\x00"),
                  query(name=b"\x05board\x05local\x00"),
                  query(qtype=TYPE_AAAA),
                  query(qtype=TYPE_AAAA, qclass=1 | QU),
                  query(qclass=3),  # CHAOS
                  query(flags=0x2800)):  # opcode 5 (UPDATE): RFC 6762 18.3
            assert self.ask(q) == [], q
        assert self.st.mdnsInQueries == 0 and self.st.mdnsInErrors == 0

    def test_responses_not_answered(self):
        assert self.ask(query(flags=0x8400)) == []
        assert self.st.mdnsInQueries == 0

    def test_known_answer_suppression(self):
        assert self.ask(message([(NAME, 1, 1)], [record(ttl=100)])) == []
        out = self.ask(message([(NAME, 1, 1)], [record(ttl=30)]))  # less than half: answer
        assert len(out) == 1, out

    def test_multicast_answer_at_most_once_a_second(self):
        assert len(self.ask(query())) == 1
        self.w.advance(999)
        assert self.ask(query()) == []
        assert self.st.mdnsRateLimited == 1
        assert len(self.ask(query(qclass=1 | QU))) == 1  # unicast is not limited
        self.w.advance(1)
        assert len(self.ask(query())) == 1

    def test_stopped_responder_silent(self):
        mdns.stop(self.w.net)
        assert self.ask(query()) == []
        assert self.st.mdnsInQueries == 0
        mdns.start(self.w.net)
        self.w.advance(0)
        assert len(self.w.frames()) == 1  # announced again
        self.w.advance(1000)
        self.w.frames()
        self.w.advance(1000)
        assert len(self.ask(query())) == 1


class TestAnnounce:
    def test_announced_twice_one_second_apart_at_start(self):
        w = Wire(hostname="Board7")
        w.frames()
        mdns.start(w.net)
        assert w.net.poll() == 1000
        out = [parse(f) for f in w.frames()]
        assert len(out) == 1 and out[0][:4] == (MDNS_MAC, MDNS_IP, 5353, 5353), out
        check_answer(out[0][4])
        w.advance(999)
        assert w.frames() == []
        w.advance(1)
        out = [parse(f) for f in w.frames()]
        assert len(out) == 1, out
        check_answer(out[0][4])
        w.advance(10000)
        assert w.frames() == []
        assert w.net.stats.mdnsOutAnnouncements == 2

    def test_announced_when_address_arrives(self):
        w = NoAddressWire()
        mdns.start(w.net)
        w.advance(5000)
        assert w.frames() == []  # no address: nothing to announce or answer
        w.send(udp_frame(query(), src=PEER_IP))
        assert w.frames() == []
        w.net.set_address(OUR_IP, 24)
        w.advance(0)
        mine = [parse(f) for f in w.frames() if f[12:14] == b"\x08\x00"]
        assert len(mine) == 1, mine
        check_answer(mine[0][4])
        w.advance(1000)
        mine = [parse(f) for f in w.frames()]
        assert len(mine) == 1, mine
        check_answer(mine[0][4])
        w.advance(5000)
        assert w.frames() == []

    def test_clear_address_stops_announcing(self):
        w = Wire(hostname="Board7")
        mdns.start(w.net)
        w.advance(0)
        w.frames()
        w.net.clear_address()
        w.advance(1000)
        assert [f for f in w.frames() if f[12:14] == b"\x08\x00"] == []


class TestHostile(Base):
    def bad(self, payload):
        before = self.st.mdnsInErrors
        assert self.ask(payload) == [], payload
        assert self.st.mdnsInErrors == before + 1, payload

    def test_truncated_header(self):
        self.bad(b"")
        self.bad(query()[:11])

    def test_truncated_question(self):
        q = query()
        for n in range(13, len(q)):
            self.bad(q[:n])

    def test_question_count_lies(self):
        self.bad(message([(NAME, 1, 1)], counts=(2, 0, 0, 0)))
        self.bad(message([(NAME, 1, 1)], counts=(0xFFFF, 0, 0, 0)))

    def test_answer_counts_lie(self):
        # The question is ours, but the message is broken: not answered.
        self.bad(message([(NAME, 1, 1)], counts=(1, 1, 0, 0)))
        self.bad(message([(NAME, 1, 1)], counts=(1, 0, 3, 0)))
        self.bad(message([(NAME, 1, 1)], counts=(1, 0, 0, 0xFFFF)))
        self.bad(message([(NAME, 1, 1)], [record()[:-1]]))  # rdata beyond the end

    def test_label_over_63(self):
        self.bad(query(name=b"\x40" + b"a" * 64 + b"\x05local\x00"))
        self.bad(query(name=b"\x80" + b"a" * 10 + b"\x00"))

    def test_pointer_loops_and_bad_pointers(self):
        self.bad(query(name=b"\xc0\x0c"))  # to itself
        self.bad(query(name=b"\x06board7\xc0\x0c"))  # back to its own start
        self.bad(query(name=b"\xc0\x20"))  # forward
        self.bad(query(name=b"\xc0\x02"))  # into the header
        self.bad(query(name=b"\xc0"))  # cut in half
        self.bad(query(name=b"\xff\xff"))
        # two names pointing at each other: the second points back to the first, whose
        # pointer points forward into the second
        first = b"\x01a\xc0\x14"  # at 12; 0x14 = 20 is the second name
        second = b"\x01b\xc0\x0c"  # at 20
        self.bad(message([(first, 1, 1), (second, 1, 1)]))

    def test_name_over_255(self):
        long_name = b"\x3f" + b"a" * 63
        self.bad(query(name=long_name * 4 + b"\x00"))  # 257 bytes
        self.bad(query(name=long_name * 3 + b"\x3e" + b"a" * 62 + b"\x00"))  # 256 bytes
        assert self.ask(query(name=long_name * 3 + b"\x3d" + b"a" * 61 + b"\x00")) == []
        assert self.st.mdnsInErrors == 2  # 255 bytes: legal, not ours

    def test_responder_survives_and_still_answers(self):
        self.bad(query(name=b"\xc0\x0c"))
        assert len(self.ask(query())) == 1


class TestConflict(Base):
    def test_conflicting_answer_counted(self):
        resp = message(answers=[record(rdata=OTHER_IP)], flags=0x8400)
        assert self.ask(resp) == []
        assert self.st.mdnsConflicts == 1
        assert self.r.conflict == OTHER_IP

    def test_conflict_with_case_and_compression(self):
        # "other.local" answer then "BOARD7" + pointer to its "local"
        rr1 = record(name=b"\x05other\x05local\x00", rdata=OTHER_IP)
        rr2 = record(name=b"\x06BOARD7\xc0\x12", rdata=OTHER_IP)
        assert self.ask(message(answers=[rr1, rr2], flags=0x8400)) == []
        assert self.st.mdnsConflicts == 1

    def test_no_conflict_for_our_address_other_names_or_types(self):
        for rr in (record(), record(name=b"\x06board8\x05local\x00", rdata=OTHER_IP),
                   record(rtype=TYPE_AAAA, rdata=b"\xfe\x80" + b"\x00" * 14),
                   record(rclass=3, rdata=OTHER_IP)):
            assert self.ask(message(answers=[rr], flags=0x8400)) == []
        assert self.st.mdnsConflicts == 0 and self.r.conflict is None

    def test_response_from_other_port_ignored(self):
        resp = message(answers=[record(rdata=OTHER_IP)], flags=0x8400)
        assert self.ask(resp, sport=40000) == []
        assert self.st.mdnsConflicts == 0

    def test_malformed_response_counted_not_conflict(self):
        resp = message(answers=[record(rdata=OTHER_IP)], flags=0x8400, counts=(0, 2, 0, 0))
        assert self.ask(resp) == []
        assert self.st.mdnsConflicts == 0 and self.st.mdnsInErrors == 1


# ---- walk() on bytes ---------------------------------------------------------------------

def test_walk_match_and_end():
    msg = b"\x00" * 12 + b"\x06BoArD7\x05local\x00" + b"\x00\x01"
    r = mdns.walk(msg, 12, 0, len(msg), NAME)
    assert r == (12 + len(NAME)) << 1 | 1
    assert mdns.walk(msg, 12, 0, len(msg), b"\x06board8\x05local\x00") & 1 == 0
    assert mdns.walk(msg, 12, 0, len(msg), None) == (12 + len(NAME)) << 1


def test_walk_pointer_end_is_after_pointer():
    msg = b"\x00" * 12 + NAME + b"\x06board7\xc0\x13"  # pointer to "local" at 19
    p = 12 + len(NAME)
    assert mdns.walk(msg, p, 0, len(msg), NAME) == (p + 9) << 1 | 1


def test_walk_refuses():
    for name in (b"\x06board7", b"\x06boa", b"\xc0\x0c", b"\x41" + b"a" * 65 + b"\x00"):
        msg = b"\x00" * 12 + name
        assert mdns.walk(msg, 12, 0, len(msg), NAME) == mdns.BAD, name


def test_wire_name():
    assert mdns.wire_name("Board7") == b"\x06Board7\x05local\x00"
    assert len(mdns.wire_name("x" * 100)) == 1 + 63 + 7


_SENT = [0]


def _count_send(sport, dst_hi, dst_lo, dport, n, ttl=64):
    _SENT[0] += 1


def test_query_handling_allocates_nothing():
    """On MicroPython: a query, a legacy query, a conflict and a malformed packet are handled
    with the heap locked (the UDP send itself is stubbed: it is udp.py's to prove)."""
    try:
        from micropython import heap_lock, heap_unlock
    except ImportError:  # CPython
        return
    w = Wire(hostname="Board7")
    r = mdns.start(w.net)
    w.advance(3000)
    sent = _SENT
    sent[0] = 0
    w.net.udp.send = _count_send  # a plain function: calling a closure may allocate
    packets = [bytearray(p) for p in (
        query(qclass=1 | QU), query(ident=9),
        message(answers=[record(rdata=OTHER_IP)], flags=0x8400),
        query(name=b"\x06board7\xc0\x0c"), message([(NAME, 1, 1)], counts=(1, 0, 0, 0xFFFF)))]
    ports = (5353, 40000, 5353, 5353, 5353)
    now = w.now
    heap_lock()
    try:
        for i in range(len(packets)):
            r.input(0x0A00, 0x0001, ports[i], packets[i], 0, len(packets[i]), 2, now)
    finally:
        heap_unlock()
    assert sent[0] == 2 and w.net.stats.mdnsInErrors == 2, sent
    assert w.net.stats.mdnsConflicts == 1


def test_mutated_packets_never_raise():
    """Valid queries and responses with random bytes changed, or cut short: each is dropped,
    counted or answered; the responder never raises and still answers afterwards."""
    w = Wire(hostname="Board7")
    r = mdns.start(w.net)
    for ms in (0, 1000, 1000):  # both announcements out
        w.advance(ms)
    w.net.udp.send = _count_send
    seeds = [message([(b"\x05other\x05local\x00", 1, 1), (b"\x06board7\xc0\x12", 1, 1)],
                     [record(name=b"\xc0\x0c", ttl=30)]),
             message(answers=[record(rdata=OTHER_IP), record(name=b"\xc0\x0c")], flags=0x8400),
             query(ident=5, qclass=0x8001)]
    x = 12345
    for i in range(1500):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        p = bytearray(seeds[i % len(seeds)])
        for _ in range(1 + (x >> 8) % 3):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            p[(x >> 4) % len(p)] = (x >> 16) & 0xFF
        n = len(p) if x & 1 else (x >> 12) % len(p)
        r.input(0x0A00, 0x0001, 5353 if x & 2 else 40000, p, 0, n, 2, w.now)
        w.now = port.ticks_add(w.now, 7)
    st = w.net.stats
    assert st.mdnsInErrors > 100, st.mdnsInErrors
    del w.net.udp.send  # the real one again
    w.advance(1000)
    w.frames()
    w.send(udp_frame(query()))
    out = [parse(f) for f in w.frames()]
    assert len(out) == 1, out
    check_answer(out[0][4])
