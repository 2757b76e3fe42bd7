# mDNS responder (RFC 6762): <hostname>.local answers A queries and announces itself.
# SPDX-License-Identifier: MIT
#
# Reading list: RFC 6762 (Multicast DNS) sections 5, 6, 7.1, 8.3, 9, 10.2, 11 and 18;
# RFC 1035 section 4 (message format, name compression).
#
# What it does (the part a device needs):
# - Answers questions for <hostname>.local of type A or ANY, class IN or ANY. The name is
#   compared label by label in the received buffer, ASCII case-insensitively, following
#   compression pointers; no string is built per packet.
#   - A QM question (RFC 6762 5.4, top bit of QCLASS clear) gets one multicast response to
#     224.0.0.251:5353: ID 0, no question, our A record with the cache-flush bit (10.2) and a
#     TTL of 120 s. A record is multicast at most once a second (section 6): a query within
#     1 s of the last multicast answer is not answered again (mdnsRateLimited).
#   - A QU question (top bit set) gets the same response by unicast to the asker.
#   - A legacy unicast query (source port not 5353, section 6.7; what `dig -p 5353
#     @224.0.0.251` sends) gets a unicast reply to its address and port, echoing the ID and
#     the question, TTL 10 s, no cache-flush bit.
#   - Known-answer suppression (7.1): a query listing our record with at least half our TTL
#     left is not answered.
# - Announces itself when it gets an address (an address listener): two unsolicited
#   multicast responses, 1 s apart (8.3), sent from poll() (net.add_service).
# - Conflicts (section 9): a response from another host holding an A record for our name
#   with another address is counted (mdnsConflicts), logged (the first time) and remembered
#   in `Responder.conflict` (the last address another host gave, 4 bytes). We do not probe
#   (8.1) and do not rename ourselves to name-2: the application sees the conflict and may
#   pick another hostname and restart (stop(net); net.hostname = ...; start(net)).
# What it does not do: probing, goodbye packets, NSEC for AAAA questions (IPv4 only: AAAA is
# simply not answered), DNS-SD, answering over unicast from off-link senders differently.
#
# Hostile input: every count, length and pointer is checked against the datagram; a pointer
# must point before the label where the current name (or the last jump) started, so names
# cannot loop; labels over 63 bytes and the reserved 0x40/0x80 label types are refused;
# names over 255 bytes are refused. A malformed datagram is dropped and counted
# (mdnsInErrors), never raised. Nothing allocated here grows with the datagram: the reply
# is written into net.udp.payload.

from micropython import const

from . import port

PORT = const(5353)
GROUP_HI = const(0xE000)  # 224.0.0.251
GROUP_LO = const(0x00FB)
TTL_S = const(120)  # RFC 6762 10: host name records, 120 s
LEGACY_TTL_S = const(10)  # RFC 6762 6.7: at most 10 s in legacy unicast replies
ANNOUNCE_MS = const(1000)  # RFC 6762 8.3: announcements at least 1 s apart
ANNOUNCEMENTS = const(2)
RATE_MS = const(1000)  # RFC 6762 6: a record is multicast at most once a second

_TYPE_A = const(1)
_TYPE_ANY = const(255)
_CLASS_IN = const(1)
_CLASS_ANY = const(255)
_TOP_BIT = const(0x8000)  # QU bit in a question's class, cache-flush bit in a record's
_IP_TTL = const(255)  # every mDNS response, unicast too (RFC 6762 11): on-link only
_FLAGS_QR = const(0x80)  # in the first flags byte
_FLAGS_OPCODE = const(0x78)
_FLAGS_RESPONSE = const(0x8400)  # QR, AA (RFC 6762 18.4)
_HEADER_LEN = const(12)
_MAX_NAME = const(255)

# Results of _walk() other than a position: see there.
BAD = const(-1)


def wire_name(hostname):
    """'Board7' -> b'\\x06Board7\\x05local\\x00' (one label, cut to 63 bytes)."""
    label = hostname.encode()[:63]
    if not label:
        raise ValueError("empty hostname")
    return bytes((len(label),)) + label + b"\x05local\x00"


def _lower(name):
    out = bytearray(name)
    for i in range(len(out)):
        if 65 <= out[i] <= 90:
            out[i] |= 32
    return bytes(out)


def walk(buf, pos, start, end, name):
    """Skip the domain name at buf[pos]; compare it with `name` on the way.

    start is where the DNS message begins (compression pointers count from there), end where
    it ends. name is a lower-case wire-form name, or None. Returns BAD (-1) if the name is
    malformed, else (p << 1) | match, where p is the position just after the name where it
    is written (after its first pointer, if any) and match is 1 if it equals name (ASCII
    case-insensitively). A small int: nothing is allocated.
    """
    k = 0 if name is not None else -1  # where we are in name; -1: no longer a match
    after = -1
    lowest = pos  # a pointer must point before this: each jump goes back, so no loops
    total = 1  # the root's zero byte
    while pos < end:
        c = buf[pos]
        if c >= 0xC0:
            if pos + 1 >= end:
                return BAD
            target = start + ((c & 0x3F) << 8 | buf[pos + 1])
            if target >= lowest or target < start + _HEADER_LEN:
                return BAD
            if after < 0:
                after = pos + 2
            pos = lowest = target
            continue
        if c > 63:  # 0x40 (extended, RFC 6891 dropped it) and 0x80: reserved
            return BAD
        if c == 0:
            if after < 0:
                after = pos + 1
            return after << 1 | (1 if k >= 0 and name[k] == 0 else 0)
        total += c + 1
        if total > _MAX_NAME or pos + 1 + c > end:
            return BAD
        if k >= 0:
            if name[k] != c:
                k = -1
            else:
                i = 1
                while i <= c:
                    b = buf[pos + i]
                    if 65 <= b <= 90:
                        b |= 32
                    if b != name[k + i]:
                        k = -1
                        break
                    i += 1
                if k >= 0:
                    k += c + 1
        pos += c + 1
    return BAD


class Responder:
    """The mDNS responder of one Stack. start(net) makes it; its input() gets UDP 5353."""

    def __init__(self, net):
        self.net = net
        self.wire = b""  # our name as sent (the hostname's case)
        self.lower = b""  # ... lower case, compared with what arrives
        self.running = False
        self.announce_at = None  # ticks of the next announcement; None: none due
        self.announces_left = 0
        self.mcast_at = None  # ticks of our last multicast answer (rate limit)
        self.conflict = None  # after a conflict, the other address (4 bytes), else None
        self.conflict_buf = bytearray(4)
        # What the last records() saw for our name (A, class IN): see records().
        self.seen_ours = False
        self.seen_other_hi = -1
        self.seen_other_lo = -1
        # Bound methods made once, so the same objects are registered and removed.
        self.on_input = self.input
        self.on_address = self.address_changed

    # ---- start and stop ----------------------------------------------------------------

    def start(self):
        if self.running:
            return
        net = self.net
        self.wire = wire_name(net.hostname)
        self.lower = _lower(self.wire)
        self.conflict = None
        net.udp.bind_service(PORT, self.on_input)
        net.join_multicast(GROUP_HI, GROUP_LO)
        net.address_listeners.append(self.on_address)
        net.add_service(self)
        self.running = True
        self.address_changed()

    def stop(self):
        if not self.running:
            return
        net = self.net
        self.running = False
        self.announce_at = None
        net.udp.unbind_service(PORT)
        net.leave_multicast(GROUP_HI, GROUP_LO)
        if self.on_address in net.address_listeners:
            net.address_listeners.remove(self.on_address)
        net.remove_service(self)

    def _log(self, line):
        if self.net.log is not None:
            self.net.log("mdns: " + line)

    # ---- announcements (RFC 6762 8.3) --------------------------------------------------

    def address_changed(self):
        """Address listener: a new address is announced twice, 1 s apart, from poll()."""
        self.mcast_at = None
        if self.net.has_address():
            self.announce_at = self.net.clock()
            self.announces_left = ANNOUNCEMENTS
        else:
            self.announce_at = None
            self.announces_left = 0

    def poll(self, now):
        """Send a due announcement; ms until the next one, or None."""
        if self.announce_at is None:
            return None
        left = port.ticks_diff(self.announce_at, now)
        if left > 0:
            return left
        if self.net.has_address():
            self.send_answer(GROUP_HI, GROUP_LO, PORT, now)
            self.net.stats.mdnsOutAnnouncements += 1
        self.announces_left -= 1
        if self.announces_left > 0:
            self.announce_at = port.ticks_add(now, ANNOUNCE_MS)
            return ANNOUNCE_MS
        self.announce_at = None
        return None

    # ---- input -------------------------------------------------------------------------

    def records(self, buf, pos, start, end, count):
        """Skip count resource records at buf[pos]; the position after them, or BAD.

        Sets seen_ours if one is our A record with our address and at least half our TTL
        (RFC 6762 7.1), seen_other_hi/lo to the address of one for our name with another.
        """
        lower = self.lower
        net = self.net
        while count > 0:
            count -= 1
            r = walk(buf, pos, start, end, lower)
            if r < 0:
                return BAD
            pos = r >> 1
            if pos + 10 > end:
                return BAD
            rdlen = buf[pos + 8] << 8 | buf[pos + 9]
            data = pos + 10
            if data + rdlen > end:
                return BAD
            if (r & 1 and rdlen == 4 and buf[pos] == 0 and buf[pos + 1] == _TYPE_A
                    and buf[pos + 2] & 0x7F == 0 and buf[pos + 3] == _CLASS_IN):
                hi = buf[data] << 8 | buf[data + 1]
                lo = buf[data + 2] << 8 | buf[data + 3]
                if hi == net.ip_hi and lo == net.ip_lo:
                    # TTL >= TTL_S / 2: its high 16 bits are set, or its low ones are enough
                    if buf[pos + 4] | buf[pos + 5] or (buf[pos + 6] << 8 | buf[pos + 7]) >= (
                            TTL_S // 2):
                        self.seen_ours = True
                else:
                    self.seen_other_hi = hi
                    self.seen_other_lo = lo
            pos = data + rdlen
        return pos

    def input(self, src_hi, src_lo, sport, buf, off, n, kind, now):
        """A datagram to UDP port 5353: buf[off:off + n] (not kept)."""
        net = self.net
        stats = net.stats
        if not net.has_address() or (src_hi == net.ip_hi and src_lo == net.ip_lo):
            return  # nothing to answer with, or our own multicast looped back
        end = off + n
        if n < _HEADER_LEN:
            stats.mdnsInErrors += 1
            return
        flags = buf[off + 2]
        if flags & _FLAGS_OPCODE or buf[off + 3] & 0x0F:
            return  # RFC 6762 18.3, 18.11: other opcodes and non-zero rcodes are ignored
        qdcount = buf[off + 4] << 8 | buf[off + 5]
        rrcount = ((buf[off + 6] << 8 | buf[off + 7]) + (buf[off + 8] << 8 | buf[off + 9])
                   + (buf[off + 10] << 8 | buf[off + 11]))
        lower = self.lower
        pos = off + _HEADER_LEN
        want_mcast = want_unicast = False
        question = 0  # where the first question for us starts
        qtype = 0
        while qdcount > 0:
            qdcount -= 1
            r = walk(buf, pos, off, end, lower)
            if r < 0 or (r >> 1) + 4 > end:
                stats.mdnsInErrors += 1
                return
            p = r >> 1
            t = buf[p] << 8 | buf[p + 1]
            c = buf[p + 2] << 8 | buf[p + 3]
            if (r & 1 and (t == _TYPE_A or t == _TYPE_ANY)
                    and (c & 0x7FFF == _CLASS_IN or c & 0x7FFF == _CLASS_ANY)):
                if not question:
                    question, qtype = pos, t
                if c & _TOP_BIT:
                    want_unicast = True
                else:
                    want_mcast = True
            pos = p + 4
        self.seen_ours = False
        self.seen_other_hi = -1
        if self.records(buf, pos, off, end, rrcount) < 0:
            stats.mdnsInErrors += 1
            return
        if flags & _FLAGS_QR:
            # A response. RFC 6762 6: a response from a port other than 5353 is ignored.
            if sport == PORT and self.seen_other_hi >= 0:
                a = self.conflict_buf  # written in place: a flood of these allocates nothing
                a[0], a[1] = self.seen_other_hi >> 8, self.seen_other_hi & 0xFF
                a[2], a[3] = self.seen_other_lo >> 8, self.seen_other_lo & 0xFF
                stats.mdnsConflicts += 1
                if self.conflict is None and net.log is not None:  # logged once
                    self._log("conflict: %d.%d.%d.%d also answers for %s" % (
                        a[0], a[1], a[2], a[3], self.wire[1:1 + self.wire[0]].decode()))
                self.conflict = a
            return
        if not question:
            return  # not for us
        stats.mdnsInQueries += 1
        if sport != PORT:
            # RFC 6762 6.7: legacy unicast; the reply goes back where the query came from.
            self.send_legacy(src_hi, src_lo, sport, buf[off] << 8 | buf[off + 1], qtype)
            return
        if self.seen_ours:
            return  # RFC 6762 7.1: the asker already knows
        if want_mcast:
            if self.mcast_at is not None and port.ticks_diff(now, self.mcast_at) < RATE_MS:
                stats.mdnsRateLimited += 1
                return
            self.send_answer(GROUP_HI, GROUP_LO, PORT, now)
        elif want_unicast:
            self.send_answer(src_hi, src_lo, sport, None)

    # ---- output ------------------------------------------------------------------------

    def _record(self, p, o, name_ptr, cache_flush, ttl):
        # Our A record at p[o]; name_ptr: a compression pointer to use, or 0 for the name.
        if name_ptr:
            p[o] = 0xC0 | name_ptr >> 8
            p[o + 1] = name_ptr & 0xFF
            o += 2
        else:
            o = self._name(p, o)
        net = self.net
        p[o] = 0
        p[o + 1] = _TYPE_A
        p[o + 2] = 0x80 if cache_flush else 0
        p[o + 3] = _CLASS_IN
        p[o + 4] = p[o + 5] = p[o + 6] = 0
        p[o + 7] = ttl
        p[o + 8] = 0
        p[o + 9] = 4
        p[o + 10] = net.ip_hi >> 8
        p[o + 11] = net.ip_hi & 0xFF
        p[o + 12] = net.ip_lo >> 8
        p[o + 13] = net.ip_lo & 0xFF
        return o + 14

    def _name(self, p, o):
        wire = self.wire
        for i in range(len(wire)):
            p[o + i] = wire[i]
        return o + len(wire)

    @staticmethod
    def _header(p, ident, qdcount):
        p[0] = ident >> 8
        p[1] = ident & 0xFF
        p[2] = _FLAGS_RESPONSE >> 8
        p[3] = _FLAGS_RESPONSE & 0xFF
        p[4] = 0
        p[5] = qdcount
        p[6] = 0
        p[7] = 1  # one answer
        for i in range(8, _HEADER_LEN):
            p[i] = 0

    def send_answer(self, dst_hi, dst_lo, dport, now):
        """Our A record in an mDNS response (ID 0, cache-flush, TTL 120 s) to dst:dport.

        now is given for a multicast answer (remembered for the rate limit), else None.
        """
        udp = self.net.udp
        p = udp.payload
        self._header(p, 0, 0)
        o = self._record(p, _HEADER_LEN, 0, True, TTL_S)
        if now is not None:
            self.mcast_at = now
        self.net.stats.mdnsOutResponses += 1
        udp.send(PORT, dst_hi, dst_lo, dport, o, _IP_TTL)

    def send_legacy(self, dst_hi, dst_lo, dport, ident, qtype):
        """A legacy unicast reply (RFC 6762 6.7): ID and question echoed, TTL 10 s."""
        udp = self.net.udp
        p = udp.payload
        self._header(p, ident, 1)
        o = self._name(p, _HEADER_LEN)
        p[o] = qtype >> 8
        p[o + 1] = qtype & 0xFF
        p[o + 2] = 0
        p[o + 3] = _CLASS_IN
        o = self._record(p, o + 4, _HEADER_LEN, False, LEGACY_TTL_S)
        self.net.stats.mdnsOutResponses += 1
        udp.send(PORT, dst_hi, dst_lo, dport, o, _IP_TTL)


def start(net):
    """Start answering for net.hostname + '.local' (nic.active(True) calls this)."""
    r = getattr(net, "mdns", None)
    if r is None:
        r = Responder(net)
        net.mdns = r
    r.start()
    return r


def stop(net):
    """Stop answering (nic.active(False) calls this); a later start(net) resumes."""
    r = getattr(net, "mdns", None)
    if r is not None:
        r.stop()
