# DNS stub resolver (A records over UDP) and getaddrinfo(). SPDX-License-Identifier: MIT
#
# Reading list: RFC 1035 (message format, 4.1; compression, 4.1.4), RFC 2181 (TTLs, 8),
# RFC 5452 (forgery resilience: random ID and source port, check server, port, question),
# RFC 6761 6.3 ("localhost" never goes to DNS).
#
# One resolver per Stack (made on first use), one lookup in flight at a time:
#
#   ip = dns.getaddrinfo(net, "printer.lan", 80)[0][-1][0]     # blocks: drives net.poll()
#
#   r = dns.resolver(net)             # non-blocking, for asyncio users:
#   r.start("printer.lan")            # cache, dotted quad and "localhost" are ready at once
#   while (ip4 := r.result()) is None:   # None while pending; 4 bytes when done;
#       await asyncio.sleep_ms(10)        # OSError(-2) if the name did not resolve
#   # (something must keep calling net.poll(): the application's poll task does)
#
# What MicroPython does, and we match: lwIP's getaddrinfo raises OSError(-2) for every
# failure (its callback sets status -2, extmod/modlwip.c), so unknown names, NXDOMAIN,
# SERVFAIL everywhere and timeouts all raise OSError(-2) here too. An invalid name raises
# OSError(-2, "why"). "localhost" gives 127.0.0.1 without DNS (as lwIP does with a loopback
# interface and as RFC 6761 asks) although this stack has no loopback interface to reach it.
# Names ending in ".local" go to the configured servers like any other (many home routers
# answer them); an mDNS querier is not implemented.
#
# Memory: a reply is parsed in place in the stack's receive buffer (no copies, no tuples);
# the question lives in one bytearray made with the resolver. A lookup allocates the
# lower-cased name, its 2-byte random ID and, on success, the 4-byte address. Measured on
# wasm32 (gc.mem_alloc() deltas around start() and our stack's poll() calls, two stacks on the
# in-memory link): 512 bytes per lookup sent and answered, 32 bytes per cache hit; an idle
# poll() allocates nothing. getaddrinfo() adds its list, tuples and address string (~110).
#
# A reply that is malformed or does not match the question in flight is dropped and counted
# (stats dnsInMalformed / dnsInUnmatched); nothing in a reply can raise or loop: every name
# is walked with its length checked (labels <= 63, names <= 255), every compression pointer
# must point before everything the name has visited so far (so each jump goes strictly
# backwards and the walk ends), and CNAME chains are followed at most MAX_CNAMES links.

from micropython import const

from . import port

AF_INET = const(2)
SOCK_STREAM = const(1)
SOCK_DGRAM = const(2)
IPPROTO_TCP = const(6)
IPPROTO_UDP = const(17)
EAI_NONAME = const(-2)  # what MicroPython's lwIP getaddrinfo raises, negative

_DNS_PORT = const(53)
_HDR = const(12)
_TYPE_A = const(1)
_TYPE_CNAME = const(5)
_CLASS_IN = const(1)
_RCODE_NXDOMAIN = const(3)
_MAX_UDP = const(512)  # RFC 1035 4.2.1; we send no EDNS0, so a longer reply is hostile
_MAX_NAME = const(255)  # wire length, root label included (RFC 1035 2.3.4)
_MAX_LABEL = const(63)
_MAX_HOPS = const(32)  # compression pointers followed in one name
MAX_CNAMES = 8  # CNAME links followed in one answer

# Lookup states
_IDLE = const(0)
_PENDING = const(1)
_DONE = const(2)
_FAILED = const(3)

CACHE_ENTRIES = 4
TTL_MAX_S = 3600  # cached answers live at most this long, whatever the TTL says
TIMEOUTS_MS = (1000, 2000)  # each round asks every server once, waiting this long
TOTAL_MS = 10000  # a lookup gives up after this long, whatever is left


def _fail(why):
    return OSError(EAI_NONAME, why)


def parse_dotted(host):
    """'10.0.0.2' -> 4 bytes, or None if host is not a dotted quad."""
    parts = host.split(".")
    if len(parts) != 4:
        return None
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            return None
        out[i] = int(p)
    return bytes(out)


def encode_name(host, out):
    """Write host in DNS wire form into out (a bytearray of 256); return its length.

    "www.example.com" -> b"\\x03www\\x07example\\x03com\\x00". One trailing dot is allowed.
    Raises OSError(-2, why) for an empty label, a label over 63 bytes, a name over 253
    characters or a non-ASCII name (IDNA is the caller's business).
    """
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > 253:
        raise _fail("invalid name %r: empty or longer than 253" % (host,))
    raw = host.encode()
    if len(raw) != len(host):
        raise _fail("invalid name %r: not ASCII" % (host,))
    n = 0
    start = 0
    end = len(raw)
    while start <= end:
        dot = raw.find(b".", start)
        if dot < 0:
            dot = end
        size = dot - start
        if size == 0 or size > _MAX_LABEL:
            raise _fail("invalid name %r: label empty or over 63" % (host,))
        out[n] = size
        out[n + 1:n + 1 + size] = raw[start:dot]
        n += 1 + size
        start = dot + 1
    out[n] = 0
    return n + 1


def skip_name(buf, base, i, end):
    """Offset just after the name at buf[i] in the message buf[base:end], or -1 if malformed.

    Checks every length: labels <= 63 bytes, the expanded name <= 255, no label types other
    than plain and pointer, and each pointer pointing before the lowest offset this name has
    visited (so a walk can only move backwards and must end) and past the header.
    """
    total = 1  # the root label
    after = -1  # where the name ends in place: after its first pointer, if any
    low = i
    hops = 0
    while i < end:
        c = buf[i]
        if c == 0:
            return i + 1 if after < 0 else after
        if c >= 0xC0:
            if i + 1 >= end:
                return -1
            ptr = base + (((c & 0x3F) << 8) | buf[i + 1])
            if ptr >= low or ptr < base + _HDR:
                return -1  # forward, self or loop pointer, or into the header
            hops += 1
            if hops > _MAX_HOPS:
                return -1
            if after < 0:
                after = i + 2
            low = ptr
            i = ptr
        elif c > _MAX_LABEL:
            return -1  # 0x40 / 0x80 label types (RFC 6891 extended labels): refused
        else:
            total += c + 1
            if total > _MAX_NAME:
                return -1
            i += c + 1
    return -1


def name_eq(a, abase, ai, b, bbase, bi):
    """Are two names equal (ASCII case-insensitive)? Both must have passed skip_name()."""
    while True:
        ca = a[ai]
        while ca >= 0xC0:
            ai = abase + (((ca & 0x3F) << 8) | a[ai + 1])
            ca = a[ai]
        cb = b[bi]
        while cb >= 0xC0:
            bi = bbase + (((cb & 0x3F) << 8) | b[bi + 1])
            cb = b[bi]
        if ca != cb:
            return False
        if ca == 0:
            return True
        for k in range(1, ca + 1):
            x = a[ai + k]
            y = b[bi + k]
            if x != y:
                if 65 <= x <= 90:
                    x += 32
                if 65 <= y <= 90:
                    y += 32
                if x != y:
                    return False
        ai += ca + 1
        bi += ca + 1


def _u16(buf, i):
    return (buf[i] << 8) | buf[i + 1]


def _ttl_s(buf, i):
    # A 32-bit TTL without making a 32-bit int (a heap object on 32-bit boards): RFC 2181 8
    # says a TTL with the top bit set means 0; anything over TTL_MAX_S is capped.
    if buf[i] & 0x80:
        return 0
    if buf[i] or buf[i + 1]:
        return TTL_MAX_S
    t = _u16(buf, i + 2)
    return t if t < TTL_MAX_S else TTL_MAX_S


# parse_reply() outcomes (negative) besides an offset of the address (>= 0)
MALFORMED = -1  # drop, count, keep waiting
NODATA = -2  # a good answer without an A record for the name: the lookup fails
NXDOMAIN = -3  # the name does not exist: the lookup fails
SERVER_ERROR = -4  # SERVFAIL, REFUSED, ...: ask the next server
TRUNCATED = -5  # TC set: ask the next server (we have no DNS over TCP)
UNMATCHED = -6  # not the answer to our question (ID, QR, question): drop, count


class Answer:
    """Where parse_reply() leaves the TTL (seconds) of the address it found."""

    ttl_s = 0


def parse_reply(buf, off, n, qid, qname, qlen, ans):
    """Check a reply in buf[off:off+n] to query qid for qname[:qlen] (wire form).

    Returns the offset in buf of the 4-byte address (ans.ttl_s is set to the smallest TTL
    along the CNAME chain), or one of the negative outcomes above. Never raises on any
    content: every offset is checked against the end before it is read.
    """
    end = off + n
    if n < _HDR:
        return MALFORMED
    if _u16(buf, off) != qid:
        return UNMATCHED
    flags = buf[off + 2]
    if not flags & 0x80 or flags & 0x78:  # QR must be 1 (a response), OPCODE 0 (QUERY)
        return UNMATCHED
    if _u16(buf, off + 4) != 1:  # QDCOUNT: exactly our one question echoed
        return UNMATCHED
    q = off + _HDR
    i = skip_name(buf, off, q, end)
    if i < 0 or i + 4 > end:
        return MALFORMED
    if _u16(buf, i) != _TYPE_A or _u16(buf, i + 2) != _CLASS_IN:
        return UNMATCHED
    if not name_eq(buf, off, q, qname, 0, 0):
        return UNMATCHED
    if flags & 0x02:  # TC
        return TRUNCATED
    rcode = buf[off + 3] & 0x0F
    if rcode == _RCODE_NXDOMAIN:
        return NXDOMAIN
    if rcode:
        return SERVER_ERROR
    first = i + 4
    ancount = _u16(buf, off + 6)
    # Walk every answer record once to check its lengths; later passes then trust them.
    # A lying ANCOUNT runs off the end here.
    r = first
    for _ in range(ancount):
        r = skip_name(buf, off, r, end)
        if r < 0 or r + 10 > end:
            return MALFORMED
        r += 10 + _u16(buf, r + 8)
        if r > end:
            return MALFORMED
    # Follow the chain: the question's name, then each CNAME target in turn.
    target = q
    ttl = TTL_MAX_S
    for _ in range(MAX_CNAMES + 1):
        r = first
        cname = -1
        for _ in range(ancount):
            owner = r
            r = skip_name(buf, off, r, end)
            rtype = _u16(buf, r)
            rclass = _u16(buf, r + 2)
            rdlen = _u16(buf, r + 8)
            rdata = r + 10
            r = rdata + rdlen
            if rclass != _CLASS_IN or not name_eq(buf, off, owner, buf, off, target):
                continue
            if rtype == _TYPE_A:
                if rdlen != 4:
                    return MALFORMED
                t = _ttl_s(buf, rdata - 6)
                ans.ttl_s = t if t < ttl else ttl
                return rdata
            if rtype == _TYPE_CNAME and cname < 0:
                if skip_name(buf, off, rdata, end) != r:
                    return MALFORMED  # the target must fill its RDATA exactly
                cname = rdata
                t = _ttl_s(buf, rdata - 6)
                if t < ttl:
                    ttl = t
        if cname < 0:
            return NODATA
        target = cname
    return MALFORMED  # a chain longer than MAX_CNAMES, or a loop


def build_query(out, qid, qname, qlen):
    """Write a recursive A query for qname[:qlen] into out; return its length."""
    out[0] = qid >> 8
    out[1] = qid & 0xFF
    out[2] = 0x01  # RD: recursion desired
    out[3] = 0
    out[4] = 0
    out[5] = 1  # QDCOUNT 1
    for k in range(6, _HDR):
        out[k] = 0
    out[_HDR:_HDR + qlen] = qname[:qlen]
    i = _HDR + qlen
    out[i] = 0
    out[i + 1] = _TYPE_A
    out[i + 2] = 0
    out[i + 3] = _CLASS_IN
    return i + 4


class Resolver:
    """The stack's one stub resolver: a small cache and one lookup in flight.

    start(host) begins a lookup (or finds it in the cache); result() is None while it is
    pending, then the 4-byte address, or raises OSError(-2). poll(now) is called by every
    net.poll() (the resolver is a service) and sends, retries and gives up on time.
    """

    def __init__(self, net, cache_entries=CACHE_ENTRIES, timeouts_ms=TIMEOUTS_MS,
                 total_ms=TOTAL_MS):
        self.net = net
        self.timeouts_ms = timeouts_ms
        self.total_ms = total_ms
        self.qname = bytearray(256)
        self.qlen = 0
        self.host = None  # the lower-cased name of the lookup in flight or last done
        self.state = _IDLE
        self.why = ""  # why the last lookup failed, for humans
        self.ip = None
        self.servers = ()
        self.attempt = 0
        self.attempt_at = None  # tick when the query in flight times out
        self.give_up_at = 0
        self.qid = 0
        self.sport = 0  # our UDP port for the query in flight (0: none bound)
        self.server_hi = 0
        self.server_lo = 0
        self.ans = Answer()
        self.cache_name = [None] * cache_entries
        self.cache_ip = [None] * cache_entries
        self.cache_until = [0] * cache_entries
        self.registered = False

    # ---- the cache ---------------------------------------------------------------------

    def cache_get(self, host, now):
        for k in range(len(self.cache_name)):
            if self.cache_name[k] == host:
                if port.ticks_diff(self.cache_until[k], now) > 0:
                    return self.cache_ip[k]
                self.cache_name[k] = None  # expired
                self.cache_ip[k] = None
        return None

    def cache_put(self, host, ip, ttl_s, now):
        if ttl_s <= 0:
            return  # TTL 0: use once, never cache (RFC 1035 3.2.1)
        # A free or the same name's slot, else the one that expires first.
        best = 0
        for k in range(len(self.cache_name)):
            name = self.cache_name[k]
            if name is None or name == host:
                best = k
                break
            if port.ticks_diff(self.cache_until[k], self.cache_until[best]) < 0:
                best = k
        self.cache_name[best] = host
        self.cache_ip[best] = ip
        self.cache_until[best] = port.ticks_add(now, ttl_s * 1000)

    def cache_clear(self):
        for k in range(len(self.cache_name)):
            self.cache_name[k] = None
            self.cache_ip[k] = None

    # ---- a lookup ----------------------------------------------------------------------

    def start(self, host):
        """Begin resolving host (str). Non-blocking; see result()."""
        net = self.net
        now = net.clock()
        low = host.lower()
        if low.endswith("."):
            low = low[:-1]
        if self.state == _PENDING:
            if self.host == low:
                return
            raise OSError(port.EALREADY)  # one lookup at a time
        ip = self.cache_get(low, now)  # only valid names are cached: look there first
        if ip is not None:
            net.stats.dnsCacheHits += 1
        elif low and "0" <= low[0] <= "9":
            ip = parse_dotted(low)
        if ip is None and low == "localhost":
            ip = b"\x7f\x00\x00\x01"
        if ip is None:
            self.qlen = encode_name(low, self.qname)  # raises on an invalid name
        self.host = low
        if ip is not None:
            self.ip = ip
            self.state = _DONE
            return
        servers = net.dns_servers
        if not servers:
            self._finish(None, "no DNS server configured")
            return
        self.servers = tuple(servers)
        self.ip = None
        self.state = _PENDING
        self.attempt = 0
        self.give_up_at = port.ticks_add(now, self.total_ms)
        net.dirty = True  # a retry deadline: poll() must see it (iface.py)
        if not self.registered:
            net.add_service(self)
            self.registered = True
        self._send(now)

    def result(self):
        """None while pending; the address (4 bytes) when done; OSError(-2) on failure."""
        if self.state == _DONE:
            return self.ip
        if self.state == _PENDING:
            return None
        if self.state == _FAILED:
            raise _fail("%s: %s" % (self.host, self.why))
        raise OSError(port.EINVAL)  # nothing started

    def cancel(self):
        """Abandon the lookup in flight (asyncio cancellation)."""
        if self.state == _PENDING:
            self._finish(None, "cancelled")

    def _unbind(self):
        if self.sport:
            self.net.udp.unbind_service(self.sport)
            self.sport = 0

    def _finish(self, ip, why):
        self._unbind()
        self.attempt_at = None
        self.ip = ip
        self.why = why
        self.state = _DONE if ip is not None else _FAILED

    def _send(self, now):
        """Send attempt number self.attempt: a fresh ID and source port (RFC 5452)."""
        net = self.net
        servers = self.servers
        rounds = len(self.timeouts_ms)
        a = self.attempt
        if a >= rounds * len(servers) or port.ticks_diff(self.give_up_at, now) <= 0:
            self._finish(None, self.why or "no answer")
            return
        server = servers[a % len(servers)]
        self.server_hi = (server[0] << 8) | server[1]
        self.server_lo = (server[2] << 8) | server[3]
        self._unbind()
        udp = net.udp
        self.sport = udp.ephemeral_port()
        udp.bind_service(self.sport, self.on_datagram)
        r = port.urandom(2)
        self.qid = (r[0] << 8) | r[1]
        n = build_query(udp.payload, self.qid, self.qname, self.qlen)
        wait = self.timeouts_ms[a // len(servers)]
        if port.ticks_diff(self.give_up_at, port.ticks_add(now, wait)) < 0:
            wait = port.ticks_diff(self.give_up_at, now)
        self.attempt_at = port.ticks_add(now, wait)
        net.stats.dnsOutQueries += 1
        udp.send(self.sport, self.server_hi, self.server_lo, _DNS_PORT, n)

    def _next_server(self, now, why):
        self.why = why
        self.attempt += 1
        self._send(now)

    def poll(self, now):
        """Service hook: retry or give up when due; ms until then, or None when idle."""
        if self.state != _PENDING or self.attempt_at is None:
            return None
        left = port.ticks_diff(self.attempt_at, now)
        if left > 0:
            return left
        self.net.stats.dnsTimeouts += 1
        self._next_server(now, "timed out")
        if self.state != _PENDING:
            return None
        return port.ticks_diff(self.attempt_at, now)

    def on_datagram(self, src_hi, src_lo, sport, buf, off, n, kind, now):
        """UDP handler for our query's port; buf is the stack's, read it now or never."""
        stats = self.net.stats
        if (self.state != _PENDING or sport != _DNS_PORT or src_hi != self.server_hi
                or src_lo != self.server_lo):
            stats.dnsInUnmatched += 1
            return
        if n > _MAX_UDP:
            stats.dnsInMalformed += 1
            return
        at = parse_reply(buf, off, n, self.qid, self.qname, self.qlen, self.ans)
        if at >= 0:
            stats.dnsInReplies += 1
            ip = bytes(buf[at:at + 4])
            self.cache_put(self.host, ip, self.ans.ttl_s, now)
            self._finish(ip, "")
        elif at == UNMATCHED:
            stats.dnsInUnmatched += 1
        elif at == MALFORMED:
            stats.dnsInMalformed += 1
        elif at == NXDOMAIN or at == NODATA:
            stats.dnsInReplies += 1
            stats.dnsNameErrors += 1
            self._finish(None, "no such name" if at == NXDOMAIN else "no A record")
        else:  # SERVER_ERROR, TRUNCATED: the next server, now
            stats.dnsInReplies += 1
            if at == TRUNCATED:
                stats.dnsInTruncated += 1
                why = "truncated reply"
            else:
                stats.dnsServerErrors += 1
                why = "server error %d" % (buf[off + 3] & 0x0F)
            self._next_server(now, why)


def resolver(net):
    """The stack's one Resolver, made on first use (a board that never resolves pays nothing)."""
    r = getattr(net, "dns_resolver", None)
    if r is None:
        r = Resolver(net)
        net.dns_resolver = r
    return r


def getaddrinfo(net, host, port_no, af=0, type=0, proto=0, flags=0):
    """[(AF_INET, type, proto, "", (ip, port))] as MicroPython's socket.getaddrinfo.

    Blocks, driving net.poll(), until the name resolves or the resolver gives up; raises
    OSError(-2) (MicroPython's lwIP value) if it does not. type 0 means SOCK_STREAM.
    """
    if af not in (0, AF_INET):
        raise _fail("only AF_INET")
    if type == SOCK_DGRAM:
        proto = IPPROTO_UDP
    else:
        type = SOCK_STREAM
        proto = IPPROTO_TCP
    port_no = int(port_no)
    r = resolver(net)
    r.start(host)
    while r.state == _PENDING:
        net.poll()
        if r.state != _PENDING:
            break
        net.wait(1)
    ip = r.result()
    return [(AF_INET, type, proto, "", ("%d.%d.%d.%d" % (ip[0], ip[1], ip[2], ip[3]), port_no))]
