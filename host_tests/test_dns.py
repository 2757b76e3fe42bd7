# DNS stub resolver (stack/dns.py): the parser on bytes, then the resolver on a virtual
# clock over a fake UDP layer with the names of net.udp. Core test: runs on MicroPython too.
# MIT licence.

from testing import expect_raises

from stack import dns, port
from stack.stats import Stats

S1 = b"\x0a\x00\x00\x01"
S2 = b"\x0a\x00\x00\x02"


# ---- building DNS messages ------------------------------------------------------------


def wire(name):
    out = bytearray(256)
    return bytes(out[:dns.encode_name(name, out)])


def u16(v):
    return bytes((v >> 8, v & 0xFF))


def rr(owner, rtype, ttl, rdata, rclass=1):
    """A resource record; owner is wire bytes (may be or end in a pointer)."""
    return (owner + u16(rtype) + u16(rclass) + bytes((ttl >> 24 & 0xFF, ttl >> 16 & 0xFF,
                                                      ttl >> 8 & 0xFF, ttl & 0xFF))
            + u16(len(rdata)) + rdata)


def reply(qid, qname, records=(), rcode=0, flags=0x81, ancount=None, qtype=1):
    """A response to an A query for qname (str); records are rr() bytes, in order."""
    hdr = (u16(qid) + bytes((flags, 0x80 | rcode)) + u16(1)
           + u16(len(records) if ancount is None else ancount) + u16(0) + u16(0))
    return hdr + wire(qname) + u16(qtype) + u16(1) + b"".join(records)


PTR_Q = b"\xc0\x0c"  # a pointer to the question's name (offset 12)


def parse(msg, qid=0x1234, qname="www.example.com"):
    q = bytearray(256)
    qlen = dns.encode_name(qname, q)
    ans = dns.Answer()
    buf = bytearray(b"\xee" * 5) + msg  # at an offset, as in the stack's receive buffer
    at = dns.parse_reply(buf, 5, len(msg), qid, q, qlen, ans)
    if at >= 0:
        return bytes(buf[at:at + 4]), ans.ttl_s
    return at


# ---- names ----------------------------------------------------------------------------


def test_encode_name():
    assert wire("www.example.com") == b"\x03www\x07example\x03com\x00"
    assert wire("a.") == b"\x01a\x00"  # one trailing dot allowed
    assert len(wire("a" * 63 + ".b")) == 67


def test_encode_name_invalid():
    out = bytearray(256)
    for bad in ("", ".", "a..b", ".a", "a" * 64 + ".com", ("a" * 60 + ".") * 4 + "abcdefghijklm",
                "caf\u00e9.com"):
        e = expect_raises(OSError, dns.encode_name, bad, out)
        assert e.args[0] == -2, (bad, e.args)
    # 253 characters is the longest name
    name = ("a" * 62 + ".") * 4 + "a"
    assert len(name) == 253 and dns.encode_name(name, out) == 255


def test_parse_dotted():
    assert dns.parse_dotted("10.0.0.2") == b"\x0a\x00\x00\x02"
    for bad in ("10.0.0", "10.0.0.256", "a.b.c.d", "10..0.1", "1.2.3.4.5", "0001.1.1.1"):
        assert dns.parse_dotted(bad) is None, bad


def skip(msg, i=12):
    return dns.skip_name(msg, 0, i, len(msg))


def test_skip_name_plain_and_pointer():
    m = bytes(12) + b"\x03www\x00" + b"\x01a\xc0\x0c"
    assert skip(m) == 17
    assert skip(m, 17) == 21  # the name ends in place after its pointer


def test_skip_name_refuses():
    hdr = bytes(12)
    # forward pointer, self pointer, pointer loop through a label, pointer into the header
    assert skip(hdr + b"\xc0\x0e\x00\x00") == -1
    assert skip(hdr + b"\xc0\x0c") == -1
    assert skip(hdr + b"\x01a\xc0\x0c") == -1
    assert skip(hdr + b"\x01a\xc0\x0e", 12) == -1  # points at itself after a label
    m = hdr + b"\x01a\xc0\x0f\x01b\xc0\x0c"  # 12: a -> 15 (forward from 12's view)
    assert skip(m, 16) == -1  # 16 -> 12 "a" -> ptr 15 > low 12: refused
    assert skip(hdr + b"\xc0\x05") == -1
    assert skip(hdr + b"\x01\x00\xc0\x0d") == -1  # back, but into this name's own label
    # label over 63 (types 0x40 and 0x80 too), truncated label, missing root, cut pointer
    assert skip(hdr + b"\x40" + b"a" * 64 + b"\x00") == -1
    assert skip(hdr + b"\x80\x00") == -1
    assert skip(hdr + b"\x05ab") == -1
    assert skip(hdr + b"\x01a") == -1
    assert skip(hdr + b"\x01a\xc0") == -1
    # a name over 255 bytes, in place and through pointers
    assert skip(hdr + (b"\x3f" + b"a" * 63) * 4 + b"\x00") == -1
    ok = hdr + (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00"  # exactly 255
    assert skip(ok) == len(ok)
    m = hdr + (b"\x3f" + b"a" * 63) * 3 + b"\x00" + b"\x3f" + b"b" * 63 + b"\xc0\x0c"
    assert skip(m, 12 + 64 * 3 + 1) == -1


# ---- replies --------------------------------------------------------------------------

A1 = b"\xc0\x00\x02\x01"
A2 = b"\xc0\x00\x02\x02"


def test_reply_simple_a():
    m = reply(0x1234, "www.example.com", [rr(PTR_Q, 1, 300, A1)])
    assert parse(m) == (A1, 300)


def test_reply_name_case_insensitive():
    m = reply(0x1234, "WWW.Example.COM", [rr(PTR_Q, 1, 60, A1)])
    assert parse(m) == (A1, 60)


def test_reply_cname_chain():
    # www -> web.example.com -> host.example.net -> A; compressed, TTL the chain's smallest
    q = "www.example.com"
    first = 12 + len(wire(q)) + 4
    web = b"\x03web\xc0\x10"  # "web" + pointer to "example.com" in the question
    rec1 = rr(PTR_Q, 5, 600, web)
    web_at = first + len(rec1) - len(web)
    host = b"\x04host\x07example\x03net\x00"
    rec2 = rr(bytes((0xC0, web_at)), 5, 120, host)
    host_at = first + len(rec1) + len(rec2) - len(host)
    rec3 = rr(bytes((0xC0, host_at)), 1, 900, A2)
    assert parse(reply(0x1234, q, [rec1, rec2, rec3])) == (A2, 120)
    # a chain that ends without an A record: no data
    assert parse(reply(0x1234, q, [rec1, rec2])) == dns.NODATA


def test_reply_several_a_takes_first():
    m = reply(0x1234, "www.example.com", [rr(PTR_Q, 1, 30, A1), rr(PTR_Q, 1, 30, A2)])
    assert parse(m) == (A1, 30)


def test_reply_skips_other_records():
    m = reply(0x1234, "www.example.com", [rr(wire("other.com"), 1, 30, A2),
                                          rr(PTR_Q, 16, 30, b"\x02hi"),
                                          rr(PTR_Q, 1, 30, A1, rclass=3),
                                          rr(PTR_Q, 1, 30, A1)])
    assert parse(m) == (A1, 30)


def test_reply_rcodes_and_tc():
    assert parse(reply(0x1234, "www.example.com", rcode=3)) == dns.NXDOMAIN
    assert parse(reply(0x1234, "www.example.com", rcode=2)) == dns.SERVER_ERROR
    assert parse(reply(0x1234, "www.example.com", rcode=5)) == dns.SERVER_ERROR
    assert parse(reply(0x1234, "www.example.com", flags=0x83)) == dns.TRUNCATED
    assert parse(reply(0x1234, "www.example.com")) == dns.NODATA


def test_reply_unmatched():
    good = reply(0x1234, "www.example.com", [rr(PTR_Q, 1, 30, A1)])
    assert parse(good, qid=0x1235) == dns.UNMATCHED
    assert parse(good, qname="www.example.org") == dns.UNMATCHED
    assert parse(reply(0x1234, "www.example.com", [rr(PTR_Q, 1, 30, A1)], flags=0x01)) == \
        dns.UNMATCHED  # QR 0: a query, not a response
    assert parse(reply(0x1234, "www.example.com", qtype=28)) == dns.UNMATCHED
    two_q = good[:4] + u16(2) + good[6:]
    assert parse(two_q) == dns.UNMATCHED


def test_reply_malformed():
    q = "www.example.com"
    good = reply(0x1234, q, [rr(PTR_Q, 1, 30, A1)])
    assert parse(good[:11]) == dns.MALFORMED
    for cut in range(12, len(good)):
        assert parse(good[:cut]) in (dns.MALFORMED, dns.UNMATCHED), cut
    # answer count lying
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 30, A1)], ancount=2)) == dns.MALFORMED
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 30, A1)], ancount=0xFFFF)) == dns.MALFORMED
    # rdlength past the end
    m = reply(0x1234, q, [rr(PTR_Q, 1, 30, A1)])
    assert parse(m[:-6] + u16(200) + m[-4:]) == dns.MALFORMED
    # an A record with 5 bytes, a CNAME whose target overruns or underfills its RDATA
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 30, A1 + b"\x00")])) == dns.MALFORMED
    assert parse(reply(0x1234, q, [rr(PTR_Q, 5, 30, b"\x01a\x00\x00")])) == dns.MALFORMED
    # forward pointer and a pointer loop as an owner name
    assert parse(reply(0x1234, q, [rr(b"\xc0\x30", 1, 30, A1)])) == dns.MALFORMED
    first = 12 + len(wire(q)) + 4
    assert parse(reply(0x1234, q, [rr(bytes((0xC0, first)), 1, 30, A1)])) == dns.MALFORMED
    # a label over 63 and a name over 255 in the answer
    assert parse(reply(0x1234, q, [rr(b"\x40" + b"a" * 64 + b"\x00", 1, 30, A1)])) == \
        dns.MALFORMED
    long_name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"
    assert parse(reply(0x1234, q, [rr(long_name, 1, 30, A1)])) == dns.MALFORMED


def test_reply_cname_loop_refused():
    q = "www.example.com"
    first = 12 + len(wire(q)) + 4
    # www -> a.example.com, a.example.com -> www (pointer back to the question)
    a_name = b"\x01a\xc0\x10"
    rec1 = rr(PTR_Q, 5, 30, a_name)
    a_at = first + len(rec1) - len(a_name)
    rec2 = rr(bytes((0xC0, a_at)), 5, 30, PTR_Q)
    assert parse(reply(0x1234, q, [rec1, rec2])) == dns.MALFORMED


def test_reply_cname_chain_too_long():
    q = "www.example.com"
    recs = []
    at = 12 + len(wire(q)) + 4
    owner = PTR_Q
    for k in range(dns.MAX_CNAMES + 1):
        target = bytes((1, 0x61 + k)) + b"\xc0\x10"
        rec = rr(owner, 5, 30, target)
        owner = bytes((0xC0, at + len(rec) - len(target)))
        at += len(rec)
        recs.append(rec)
    recs.append(rr(owner, 1, 30, A1))
    assert parse(reply(0x1234, q, recs)) == dns.MALFORMED
    del recs[0]  # one link shorter, from the second name: not our question
    ok = [rr(PTR_Q, 5, 30, b"\x01a\xc0\x10")]
    assert parse(reply(0x1234, q, ok)) == dns.NODATA


def test_reply_ttl_zero_huge_and_negative():
    q = "www.example.com"
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 0, A1)])) == (A1, 0)
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 0x7FFFFFFF, A1)])) == (A1, dns.TTL_MAX_S)
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 70000, A1)])) == (A1, dns.TTL_MAX_S)
    assert parse(reply(0x1234, q, [rr(PTR_Q, 1, 0x80000000, A1)])) == (A1, 0)  # RFC 2181 8


def test_build_query():
    out = bytearray(64)
    q = wire("ab.c")
    n = dns.build_query(out, 0xBEEF, q, len(q))
    assert bytes(out[:n]) == (b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                              b"\x02ab\x01c\x00\x00\x01\x00\x01")


# ---- the resolver on a virtual clock --------------------------------------------------


class FakeUDP:
    """net.udp as lan_api.md describes it: bound handlers, a payload buffer, sent list."""

    def __init__(self):
        self.payload = memoryview(bytearray(1472))
        self.handlers = {}
        self.sent = []  # (sport, dst 4 bytes, dport, bytes)
        self.next_port = 50000

    def bind_service(self, p, handler):
        assert p not in self.handlers
        self.handlers[p] = handler

    def unbind_service(self, p):
        del self.handlers[p]

    def ephemeral_port(self):
        self.next_port += 7
        return self.next_port

    def send(self, sport, dst_hi, dst_lo, dport, n):
        dst = bytes((dst_hi >> 8, dst_hi & 0xFF, dst_lo >> 8, dst_lo & 0xFF))
        self.sent.append((sport, dst, dport, bytes(self.payload[:n])))


class FakeNet:
    def __init__(self, servers=(S1, S2)):
        self.now = 1000
        self.dns_servers = list(servers)
        self.stats = Stats()
        self.udp = FakeUDP()
        self.services = []
        self.responder = None  # called on each poll: may deliver replies

    def clock(self):
        return self.now

    def add_service(self, obj):
        self.services.append(obj)

    def remove_service(self, obj):
        self.services.remove(obj)

    def poll(self):
        if self.responder is not None:
            self.responder(self)
        best = None
        for s in self.services:
            left = s.poll(self.now)
            if left is not None and (best is None or left < best):
                best = left
        return best

    def wait(self, ms):
        self.now = port.ticks_add(self.now, ms)

    def advance(self, ms):
        self.now = port.ticks_add(self.now, ms)
        return self.poll()

    def deliver(self, msg, src=None, sport=53, dport=None):
        """A datagram from src:sport to our port dport (default: the last query's)."""
        last = self.udp.sent[-1]
        src = last[1] if src is None else src
        dport = last[0] if dport is None else dport
        h = self.udp.handlers.get(dport)
        if h is None:
            return False
        buf = bytearray(b"\xaa" * 42) + msg + b"\xbb" * 8
        h((src[0] << 8) | src[1], (src[2] << 8) | src[3], sport, buf, 42, len(msg), 0,
          self.now)
        return True


def last_query(net):
    sport, dst, dport, q = net.udp.sent[-1]
    return (q[0] << 8) | q[1], dst, dport


def answer_last(net, records_for=None, ttl=300, ip=A1, qname="www.example.com", **kw):
    qid, _, _ = last_query(net)
    recs = [rr(PTR_Q, 1, ttl, ip)] if records_for is None else records_for
    return net.deliver(reply(qid, qname, recs, **kw))


def start(net, name="www.example.com"):
    r = dns.resolver(net)
    r.start(name)
    return r


def test_resolver_simple():
    net = FakeNet()
    r = start(net)
    assert r.result() is None
    assert len(net.udp.sent) == 1
    sport, dst, dport, q = net.udp.sent[0]
    assert dst == S1 and dport == 53 and sport in net.udp.handlers
    assert q[2:] == bytes((1, 0, 0, 1, 0, 0, 0, 0, 0, 0)) + wire("www.example.com") + \
        b"\x00\x01\x00\x01"
    assert answer_last(net)
    assert r.result() == A1
    assert net.udp.handlers == {}  # the port is released
    assert net.stats.dnsOutQueries == 1 and net.stats.dnsInReplies == 1
    assert net.advance(5000) is None  # idle: no deadline, no traffic
    assert len(net.udp.sent) == 1


def test_resolver_random_id_and_port_per_query():
    net = FakeNet(servers=(S1,))
    r = start(net)
    net.advance(1000)  # timeout: a retry
    ids = set()
    ports = set()
    for s in net.udp.sent:
        ids.add((s[3][0] << 8) | s[3][1])
        ports.add(s[0])
    assert len(net.udp.sent) == 2 and len(ports) == 2
    assert list(net.udp.handlers) == [net.udp.sent[-1][0]]  # only the newest port is bound
    answer_last(net)
    assert r.result() == A1


def test_resolver_cache_hit_and_expiry():
    net = FakeNet()
    r = start(net)
    answer_last(net, ttl=60)
    assert r.result() == A1
    net.advance(59000)
    r.start("WWW.example.com.")
    assert r.result() == A1 and len(net.udp.sent) == 1  # from the cache: no traffic
    assert net.stats.dnsCacheHits == 1
    net.advance(1000)
    r.start("www.example.com")
    assert r.result() is None and len(net.udp.sent) == 2  # expired: asked again
    answer_last(net, ip=A2)
    assert r.result() == A2


def test_resolver_ttl_zero_not_cached():
    net = FakeNet()
    r = start(net)
    answer_last(net, ttl=0)
    assert r.result() == A1
    r.start("www.example.com")
    assert r.result() is None and len(net.udp.sent) == 2


def test_resolver_huge_ttl_capped():
    net = FakeNet()
    r = start(net)
    answer_last(net, ttl=0x7FFFFFFF)
    net.advance(dns.TTL_MAX_S * 1000 - 1)
    r.start("www.example.com")
    assert r.result() == A1
    net.advance(1)
    r.start("www.example.com")
    assert r.result() is None


def test_resolver_cache_is_small_and_fixed():
    net = FakeNet()
    r = dns.resolver(net)
    names = ["n%d.example.com" % k for k in range(dns.CACHE_ENTRIES + 2)]
    for k in range(len(names)):
        r.start(names[k])
        qid, _, _ = last_query(net)
        net.deliver(reply(qid, names[k], [rr(PTR_Q, 1, 100 + k, A1)]))
        assert r.result() == A1
    assert len(r.cache_name) == dns.CACHE_ENTRIES
    # the soonest to expire went first
    assert "n0.example.com" not in r.cache_name and "n1.example.com" not in r.cache_name
    assert names[-1] in r.cache_name


def test_resolver_server1_silent_server2_answers():
    net = FakeNet()
    r = start(net)
    assert net.udp.sent[-1][1] == S1
    assert net.advance(999) == 1
    assert len(net.udp.sent) == 1
    net.advance(1)
    assert len(net.udp.sent) == 2 and net.udp.sent[-1][1] == S2
    assert net.stats.dnsTimeouts == 1
    # a late answer from server 1 (to its old port) is not taken
    old_port = net.udp.sent[0][0]
    assert not net.deliver(reply(0, "www.example.com"), src=S1, dport=old_port)
    answer_last(net)
    assert r.result() == A1


def test_resolver_retry_timing_then_gives_up():
    net = FakeNet()
    r = start(net)
    times = [net.now]
    for _ in range(20000):
        net.advance(1)
        if len(net.udp.sent) > len(times):
            times.append(net.now)
        if r.state != 1:
            break
    gaps = [port.ticks_diff(times[k + 1], times[k]) for k in range(len(times) - 1)]
    assert [s[1] for s in net.udp.sent] == [S1, S2, S1, S2]
    assert gaps == [1000, 1000, 2000], gaps
    assert port.ticks_diff(net.now, times[-1]) == 2000  # the last one's timeout, then fail
    e = expect_raises(OSError, r.result)
    assert e.args[0] == -2
    assert net.stats.dnsTimeouts == 4
    assert net.udp.handlers == {}


def test_resolver_total_bound():
    net = FakeNet(servers=(S1, S2, b"\x0a\x00\x00\x03"))
    r = start(net)
    r.total_ms = 2500
    r.give_up_at = port.ticks_add(net.now, 2500)
    for _ in range(3000):
        net.advance(1)
    assert r.state == 3 and len(net.udp.sent) == 3
    # gave up at 2500 ms: the third query's timeout was cut to what was left
    assert net.stats.dnsTimeouts == 3


def test_resolver_no_servers():
    net = FakeNet(servers=())
    r = start(net)
    expect_raises(OSError, r.result)
    assert net.udp.sent == []


def test_resolver_nxdomain_fails_at_once_not_cached():
    net = FakeNet()
    r = start(net)
    answer_last(net, records_for=[], rcode=3)
    e = expect_raises(OSError, r.result)
    assert e.args[0] == -2 and net.stats.dnsNameErrors == 1
    assert len(net.udp.sent) == 1 and net.udp.handlers == {}
    r.start("www.example.com")
    assert len(net.udp.sent) == 2  # negative answers are not cached


def test_resolver_servfail_and_truncated_ask_next_server():
    net = FakeNet()
    r = start(net)
    answer_last(net, records_for=[], rcode=2)
    assert r.result() is None and net.udp.sent[-1][1] == S2
    assert net.stats.dnsServerErrors == 1
    answer_last(net, flags=0x83)  # TC
    assert r.result() is None and net.udp.sent[-1][1] == S1
    assert net.stats.dnsInTruncated == 1
    answer_last(net)
    assert r.result() == A1


def test_resolver_ignores_and_counts_forgeries():
    net = FakeNet()
    r = start(net)
    qid, dst, _ = last_query(net)
    good = reply(qid, "www.example.com", [rr(PTR_Q, 1, 30, A1)])
    net.deliver(reply(qid ^ 1, "www.example.com", [rr(PTR_Q, 1, 30, A2)]))  # wrong ID
    net.deliver(good, sport=5353)  # wrong source port
    net.deliver(good, src=S2)  # wrong server
    net.deliver(reply(qid, "www.example.org", [rr(PTR_Q, 1, 30, A2)]))  # wrong question
    assert net.stats.dnsInUnmatched == 4
    assert r.result() is None
    net.deliver(good)
    assert r.result() == A1


def test_resolver_drops_malformed_and_keeps_waiting():
    net = FakeNet()
    r = start(net)
    qid, _, _ = last_query(net)
    bad = [
        reply(qid, "www.example.com", [rr(PTR_Q, 1, 30, A1)], ancount=9),
        reply(qid, "www.example.com", [rr(b"\xc0\x40", 1, 30, A1)]),  # forward pointer
        reply(qid, "www.example.com", [rr(PTR_Q, 1, 30, A1)]) + b"\x00" * 600,  # oversized
        reply(qid, "www.example.com", [rr(PTR_Q, 1, 30, A1)])[:20],  # truncated packet
    ]
    for m in bad:
        net.deliver(m)
    assert net.stats.dnsInMalformed == 4
    assert r.result() is None
    net.deliver(bad[0][:6] + u16(1) + bad[0][8:])
    assert r.result() == A1


def test_resolver_one_lookup_at_a_time():
    net = FakeNet()
    r = start(net)
    r.start("www.example.com")  # the same name: carries on
    assert len(net.udp.sent) == 1
    e = expect_raises(OSError, r.start, "other.example.com")
    assert e.args[0] == port.EALREADY
    r.cancel()
    expect_raises(OSError, r.result)
    assert net.udp.handlers == {}


def test_getaddrinfo_dotted_quad_and_localhost_need_no_dns():
    net = FakeNet()
    assert dns.getaddrinfo(net, "10.1.2.3", 80) == [(2, 1, 6, "", ("10.1.2.3", 80))]
    assert dns.getaddrinfo(net, "localhost", 80) == [(2, 1, 6, "", ("127.0.0.1", 80))]
    assert dns.getaddrinfo(net, "10.1.2.3", 53, 0, dns.SOCK_DGRAM) == \
        [(2, 2, 17, "", ("10.1.2.3", 53))]
    assert net.udp.sent == []


def test_getaddrinfo_blocks_until_answer():
    net = FakeNet()

    def respond(net):  # server 1 silent, server 2 answers 30 ms after being asked
        if len(net.udp.sent) == 2 and net.asked is None:
            net.asked = net.now
        if len(net.udp.sent) == 2 and port.ticks_diff(net.now, net.asked) >= 30:
            answer_last(net)

    net.asked = None
    net.responder = respond
    t0 = net.now
    got = dns.getaddrinfo(net, "www.example.com", 443)
    assert got == [(dns.AF_INET, dns.SOCK_STREAM, dns.IPPROTO_TCP, "", ("192.0.2.1", 443))]
    assert 1000 <= port.ticks_diff(net.now, t0) <= 1040


def test_getaddrinfo_unknown_name_raises_minus_2():
    net = FakeNet()
    net.responder = lambda net: net.udp.handlers and answer_last(
        net, records_for=[], rcode=3, qname="nope.example.com")
    e = expect_raises(OSError, dns.getaddrinfo, net, "nope.example.com", 80)
    assert e.args[0] == -2
    e = expect_raises(OSError, dns.getaddrinfo, net, "bad..name", 80)
    assert e.args[0] == -2


def test_getaddrinfo_times_out():
    net = FakeNet()
    t0 = net.now
    e = expect_raises(OSError, dns.getaddrinfo, net, "www.example.com", 80)
    assert e.args[0] == -2
    assert port.ticks_diff(net.now, t0) <= dns.TOTAL_MS + 2


# ---- over the real stack: two Stacks on the in-memory link, B serves DNS on port 53 ------


class TinyServer:
    """Answers A queries on B's port 53 from a table; `spoof_first` sends a forged copy first
    (from another source port) and `silent` drops queries."""

    def __init__(self, net, table):
        self.net = net
        self.table = table
        self.queries = 0
        self.spoof_first = False
        self.silent = False
        net.udp.bind_service(53, self.on_query)

    def on_query(self, shi, slo, sport, buf, off, n, kind, now):
        self.queries += 1
        if self.silent:
            return
        q = bytes(buf[off:off + n])
        end = dns.skip_name(q, 0, 12, n) + 4
        name = []
        i = 12
        while q[i]:
            name.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        ip = self.table.get(".".join(name))
        recs = [rr(PTR_Q, 1, 60, ip)] if ip else []
        msg = (q[:2] + bytes((0x81, 0x80 if ip else 0x83)) + u16(1) + u16(len(recs))
               + bytes(4) + q[12:end] + b"".join(recs))
        udp = self.net.udp
        if self.spoof_first:
            udp.payload[:len(msg)] = msg
            udp.send(5353, shi, slo, sport, len(msg))
        udp.payload[:len(msg)] = msg
        udp.send(53, shi, slo, sport, len(msg))


def _pair_with_server():
    from pair import Pair

    pair = Pair()
    pair.a.dns_servers = [b"\x0a\x00\x00\x02"]
    return pair, TinyServer(pair.b, {"www.example.com": A1})


def test_stack_resolves_over_udp():
    pair, srv = _pair_with_server()
    srv.spoof_first = True
    r = dns.resolver(pair.a)
    r.start("www.example.com")
    pair.run_until(lambda: r.state != 1, what="an answer")
    assert r.result() == A1 and srv.queries == 1
    assert pair.a.stats.dnsInUnmatched == 1  # the copy from port 5353
    assert pair.a.stats.dnsInReplies == 1
    r.start("nope.example.com")
    pair.run_until(lambda: r.state != 1, what="an answer")
    assert expect_raises(OSError, r.result).args[0] == -2
    assert not [p for p in pair.a.udp.services if p >= 49152]  # no port left bound


def test_stack_retries_over_udp_and_gives_up():
    pair, srv = _pair_with_server()
    srv.silent = True
    r = dns.resolver(pair.a)
    t0 = pair.now
    r.start("www.example.com")
    pair.run_until(lambda: r.state != 1, what="giving up")
    assert srv.queries == 2  # one server, two rounds (1 s, then 2 s)
    assert 3000 <= port.ticks_diff(pair.now, t0) <= 3010
    assert expect_raises(OSError, r.result).args[0] == -2
    assert not [p for p in pair.a.udp.services if p >= 49152]  # no port left bound


def test_stack_second_lookup_retries_on_time():
    # The resolver stays a service after its first lookup; a second one sets a retry
    # deadline from the application, which poll() must not miss (it skips its full pass
    # until the deadline it last saw: iface.py `dirty`).
    pair, srv = _pair_with_server()
    r = dns.resolver(pair.a)
    r.start("www.example.com")
    pair.run_until(lambda: r.state != 1, what="an answer")
    for _ in range(5):
        pair.step()  # idle: nothing due on A any more
    assert pair.a.poll() is None
    srv.silent = True
    t0 = pair.now
    r.start("nope.example.com")
    pair.run_until(lambda: r.state != 1, what="giving up")
    assert srv.queries == 3  # the first lookup, then this one's two tries
    assert 3000 <= port.ticks_diff(pair.now, t0) <= 3010


from test_blocking import _Driving  # noqa: E402  (a link that runs the other stack)


def test_stack_getaddrinfo_blocks():
    pair, srv = _pair_with_server()
    pair.a.link = _Driving(pair.a.link, pair)
    assert pair.a.getaddrinfo("www.example.com", 80) == [(2, 1, 6, "", ("192.0.2.1", 80))]
    assert pair.a.getaddrinfo("www.example.com", 53, 0, 2) == [
        (2, 2, 17, "", ("192.0.2.1", 53))]  # from the cache
    assert srv.queries == 1
    e = expect_raises(OSError, pair.a.getaddrinfo, "nope.example.com", 80)
    assert e.args[0] == -2


def test_mutated_replies_never_raise():
    """Random byte flips, cuts and pointer bytes in good replies: parse_reply returns an
    outcome, and an address only from inside the message."""
    q = "www.example.com"
    first = 12 + len(wire(q)) + 4
    web = b"\x03web\xc0\x10"
    rec1 = rr(PTR_Q, 5, 600, web)
    seeds = [reply(0x1234, q, [rec1, rr(bytes((0xC0, first + len(rec1) - len(web))), 1, 9,
                                        A2)]),
             reply(0x1234, q, [rr(PTR_Q, 1, 30, A1), rr(PTR_Q, 1, 30, A2)])]
    x = 12345
    for k in range(3000):
        m = bytearray(seeds[k & 1])
        for _ in range(1 + k % 4):
            x = (x * 1103515245 + 12345) & 0x3FFFFFFF
            i = 2 + x % (len(m) - 2)  # keep the ID
            v = (x >> 8) & 0xFF
            if v < 16:
                v = 0xC0  # pointers are what we want to hit most
            m[i] = v
        if k % 5 == 0:
            m = m[:12 + x % (len(m) - 11)]
        got = parse(bytes(m))
        assert isinstance(got, tuple) or -6 <= got <= -1, got
