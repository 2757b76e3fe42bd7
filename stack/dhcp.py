# DHCP client: an address, netmask, router and DNS servers leased from a server.
# SPDX-License-Identifier: MIT
#
# Reading list: RFC 2131 (the protocol, its state diagram in 4.4 and the timers in 4.4.5),
# RFC 2132 (the options), RFC 5227 (probing an address before use), RFC 4361 (client id).
#
#   INIT --DISCOVER--> SELECTING --OFFER/REQUEST--> REQUESTING --ACK--> PROBING --no
#   conflict--> BOUND --T1--> RENEWING (unicast REQUEST) --T2--> REBINDING (broadcast
#   REQUEST) --lease end--> INIT (address dropped).  NAK: back to INIT.  A conflict while
#   PROBING: DECLINE, INIT after 10 s.
#
# One Client per Stack, driven by net.poll() through net.add_service(): poll(now) does
# what is due and says in how many ms it next needs to run. It never blocks.
#
# Every reply is checked field by field (op, htype, hlen, xid, chaddr, magic cookie, every
# option's length inside the packet, the message type, a sane yiaddr); anything wrong is
# dropped and counted (dhcpInErrors), never raised. Nothing is allocated per packet: a
# message is built in net.udp.payload, a reply read in place in the receive buffer.
#
# Ticks wrap (ticks_diff is valid within half the period: 2**29 ms, about 6 days, on the
# boards) and leases last up to 136 years, so lease times are kept in seconds since the
# lease began (elapsed_s, since) and no deadline is set further than _MAX_WAIT_MS ahead.

from micropython import const

from . import arp, ether, port

CLIENT_PORT = const(68)
SERVER_PORT = const(67)

# States (RFC 2131 figure 5; PROBING is RFC 5227's wait between ACK and BOUND).
STOPPED = const(0)
INIT = const(1)
SELECTING = const(2)
REQUESTING = const(3)
PROBING = const(4)
BOUND = const(5)
RENEWING = const(6)
REBINDING = const(7)
STATE_NAMES = ("STOPPED", "INIT", "SELECTING", "REQUESTING", "PROBING", "BOUND",
               "RENEWING", "REBINDING")

# Message types (option 53, RFC 2132 9.6).
DISCOVER = const(1)
OFFER = const(2)
REQUEST = const(3)
DECLINE = const(4)
ACK = const(5)
NAK = const(6)
RELEASE = const(7)

# Options (RFC 2132).
_OPT_PAD = const(0)
_OPT_MASK = const(1)
_OPT_ROUTER = const(3)
_OPT_DNS = const(6)
_OPT_HOSTNAME = const(12)
_OPT_REQUESTED_IP = const(50)
_OPT_LEASE = const(51)
_OPT_MSG_TYPE = const(53)
_OPT_SERVER_ID = const(54)
_OPT_PARAMS = const(55)
_OPT_T1 = const(58)
_OPT_T2 = const(59)
_OPT_CLIENT_ID = const(61)
_OPT_END = const(255)

_FIXED = const(236)  # op .. file: the BOOTP header (RFC 2131 figure 1)
_OPTIONS = const(240)  # ... and the magic cookie 99.130.83.99
_MIN_MESSAGE = const(300)  # BOOTP's minimum; some relays and old servers insist (RFC 1542)
_MAX_HOSTNAME = const(32)
_MAX_DNS = const(3)

_BACKOFF_FIRST_MS = const(4000)  # RFC 2131 4.1: 4 s, doubled up to 64 s, each +-1 s
_BACKOFF_MAX_MS = const(64000)
_REQUEST_TRIES = const(4)  # REQUESTING: 4 REQUESTs (4+8+16+32 s) unanswered, then INIT
_RENEW_MIN_S = const(60)  # RFC 2131 4.4.5: RENEWING/REBINDING retransmit >= 60 s apart
_PROBE_GAP_MS = const(1000)  # RFC 5227 PROBE_MIN (we send 2 probes, then wait 1 s)
_PROBES = const(2)
_DECLINE_WAIT_MS = const(10000)  # RFC 2131 3.1.5: wait at least 10 s after DECLINE
_NAK_WAIT_MS = const(10000)  # a second NAK in a row: do not spin against a NAKing server
_MAX_WAIT_MS = const(3600000)  # no deadline further ahead than 1 h (ticks stay valid)
_MAX_LEASE_S = const(0x3FFFFFFF)  # longer leases are clamped: a small int on 32 bits
_INFINITE = const(-1)  # lease 0xffffffff (RFC 2132 9.2): never renew


# ---- RFC 5227 address conflict detection (while PROBING) --------------------------------
# Here rather than in iface.py: only this client probes, so a board with a static address
# never loads this code (from .mpy files, the heap keeps every loaded module's bytecode).


def send_arp_probe(net, hi, lo):
    """RFC 5227 probe: who has hi.lo? asked with sender address 0.0.0.0."""
    if net.arp is None:
        return
    net.stats.arpOutRequests += 1
    buf = net.arpbuf
    ether.write_header(buf, ether.BROADCAST, net.mac, ether.TYPE_ARP)
    arp.write_packet(buf, ether.HEADER_LEN, arp.OP_REQUEST, net.mac, b"\x00\x00\x00\x00",
                     b"\x00" * 6, bytes((hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF)))
    if net.capture is not None:
        net.capture(1, buf, len(buf))
    net.link.send(buf)


def watch_arp(net, buf, a):
    """The ARP packet at buf[a:], while net.arp_watch() watches an address (iface.py's
    process_arp calls this). RFC 5227 2.1.1: the probed address is taken if anyone claims
    it as sender, or probes for it too (sender 0.0.0.0, target it) from a MAC not ours."""
    hi, lo = net.watch_hi, net.watch_lo
    shi = (buf[a + 14] << 8) | buf[a + 15]
    slo = (buf[a + 16] << 8) | buf[a + 17]
    if shi == hi and slo == lo:
        net.arp_conflict = True
    elif not (shi or slo) and ((buf[a + 24] << 8) | buf[a + 25]) == hi and (
            (buf[a + 26] << 8) | buf[a + 27]) == lo:
        mac = net.mac
        for k in range(6):
            if buf[a + 8 + k] != mac[k]:
                net.arp_conflict = True
                return


class Client:
    """The DHCP client of one Stack. start() it; net.poll() does the rest."""

    def __init__(self, net):
        self.net = net
        self.state = STOPPED
        self.xid = bytearray(4)  # per exchange, random; bytes (a 32-bit int is a heap object)
        self.yiaddr = bytearray(4)  # offered / leased address
        self.server = bytearray(4)  # server identifier (option 54) of the chosen server
        self.router = bytearray(4)
        self.has_router = False
        self.prefix = 24
        self.dns = [bytearray(4) for _ in range(_MAX_DNS)]
        self.dns_count = 0
        self.lease_s = 0  # _INFINITE for ever
        self.t1_s = 0
        self.t2_s = 0
        self.at = None  # ticks of the next thing to do, or None
        self.tries = 0  # messages sent in this exchange
        self.began = 0  # ticks: this exchange began (the secs field)
        self.since = 0  # ticks: elapsed_s seconds after the lease began
        self.elapsed_s = 0
        self.rexmit_s = 0  # RENEWING/REBINDING: lease second of the next REQUEST
        self.naks = 0  # NAKs in a row
        self.bound = False  # the address is set on the stack (BOUND/RENEWING/REBINDING)
        # Parsed from the reply being handled (valid only inside input()).
        self._type = 0
        self._lease = 0
        self._t1 = 0
        self._t2 = 0
        self._mask = 0
        self._mask_ok = False
        self._has_sid = False
        self._sid = bytearray(4)

    # ---- control ------------------------------------------------------------------------

    def start(self, now=None):
        """Start from INIT (or restart: a running client drops its lease first)."""
        net = self.net
        if now is None:
            now = net.clock()
        if self.state != STOPPED:
            self.stop()
        net.udp.bind_service(CLIENT_PORT, self.input)
        net.add_service(self)
        self.naks = 0
        self._set_state(INIT)
        self.at = now

    def stop(self, release=True):
        """Stop; a leased address is released (RFC 2131 4.4.6) and dropped."""
        net = self.net
        if self.bound and release:
            self._send(RELEASE, net.clock())
        self._drop_address()
        net.arp_watch(0, 0)
        net.udp.unbind_service(CLIENT_PORT)
        net.remove_service(self)
        self._set_state(STOPPED)
        self.at = None

    def renew(self, now=None):
        """Renew a bound lease now (RENEWING: unicast REQUEST); start() if not bound."""
        if not self.bound:
            return self.start(now)
        if now is None:
            now = self.net.clock()
        self._set_state(RENEWING)
        self.net.dirty = True  # a new deadline: poll() must see it (iface.py)
        self._new_xid(now)
        self._send(REQUEST, now)
        step = port.ticks_diff(now, self.since) // 1000
        self.rexmit_s = self.elapsed_s + step + _RENEW_MIN_S
        self._wake_in(_RENEW_MIN_S * 1000, now)

    def running(self):
        return self.state != STOPPED

    def lease_left_s(self, now):
        """Seconds until the lease ends; None when not bound, -1 for an infinite lease."""
        if not self.bound:
            return None
        if self.lease_s == _INFINITE:
            return -1
        return self.lease_s - self.elapsed_s - port.ticks_diff(now, self.since) // 1000

    def _set_state(self, state):
        log = self.net.log
        if log is not None and state != self.state:
            log("dhcp: %s => %s" % (STATE_NAMES[self.state], STATE_NAMES[state]))
        self.state = state

    # ---- timers -------------------------------------------------------------------------

    def poll(self, now):
        """Do what is due; ms until the next deadline, or None."""
        at = self.at
        if at is None:
            return None
        left = port.ticks_diff(at, now)
        if left > 0:
            return left
        for _ in range(3):  # e.g. lease expired -> INIT -> DISCOVER, in one poll()
            self._on_timer(now)
            if self.at is None:
                return None
            left = port.ticks_diff(self.at, now)
            if left > 0:
                return left
        return 0

    def _on_timer(self, now):
        state = self.state
        net = self.net
        if state == INIT:
            # A new exchange: new xid, DISCOVER, SELECTING.
            self._new_xid(now)
            self._set_state(SELECTING)
            self._send(DISCOVER, now)
            self._backoff(now)
        elif state == SELECTING:
            # No usable OFFER yet: DISCOVER again, waiting twice as long (at most 64 s).
            net.stats.dhcpRetransmits += 1
            self._send(DISCOVER, now)
            self._backoff(now)
        elif state == REQUESTING:
            if self.tries >= _REQUEST_TRIES:
                self._restart(now, 0)  # the server went quiet after its OFFER
                return
            net.stats.dhcpRetransmits += 1
            self._send(REQUEST, now)
            self._backoff(now)
        elif state == PROBING:
            hi, lo = self._halves(self.yiaddr)
            if net.arp_conflict:
                self._decline(now)
            elif self.tries < _PROBES:
                self.tries += 1
                send_arp_probe(net, hi, lo)
                self.at = port.ticks_add(now, _PROBE_GAP_MS)
            else:
                self._bind(now)
        else:  # BOUND, RENEWING, REBINDING: lease timers
            self._lease_timer(now)

    def _lease_timer(self, now):
        net = self.net
        if self.lease_s == _INFINITE:
            if self.state != BOUND:
                self._set_state(BOUND)  # renew() unanswered: the lease still holds for ever
            self.at = None
            return
        # Move `since` up to now in whole seconds: elapsed_s stays exact, since stays fresh.
        step = port.ticks_diff(now, self.since) // 1000
        if step > 0:
            self.elapsed_s += step
            self.since = port.ticks_add(self.since, step * 1000)
        t = self.elapsed_s
        if t >= self.lease_s:
            # RFC 2131 4.4.5: the lease ran out; stop using the address, start again.
            net.stats.dhcpLeaseExpiries += 1
            self._drop_address()
            self._restart(now, 0)
            return
        if t >= self.t2_s:
            phase, end_s = REBINDING, self.lease_s  # any server, broadcast
        elif t >= self.t1_s:
            phase, end_s = RENEWING, self.t2_s  # our server, unicast
        else:
            self._wake_at_s(self.t1_s, now)
            return
        if self.state != phase:
            self._set_state(phase)
            self._new_xid(now)
        elif t >= self.rexmit_s:
            net.stats.dhcpRetransmits += 1
        else:
            self._wake_at_s(self.rexmit_s if self.rexmit_s < end_s else end_s, now)
            return
        self._send(REQUEST, now)
        # RFC 2131 4.4.5: next try after half the time left until end_s, at least 60 s;
        # end_s itself comes first if sooner.
        wait_s = (end_s - t) // 2
        if wait_s < _RENEW_MIN_S:
            wait_s = _RENEW_MIN_S
        self.rexmit_s = t + wait_s
        self._wake_at_s(self.rexmit_s if self.rexmit_s < end_s else end_s, now)

    def _wake_at_s(self, at_s, now):
        self._wake_in(self._ms_to(at_s, now), now)

    def _ms_to(self, at_s, now):
        # ms from now to at_s seconds into the lease (a big number only here, rarely).
        d = at_s - self.elapsed_s
        if d > _MAX_WAIT_MS // 1000 + 1:
            return _MAX_WAIT_MS + 1000
        ms = d * 1000 - port.ticks_diff(now, self.since)
        return ms if ms > 0 else 0

    def _wake_in(self, ms, now):
        if ms > _MAX_WAIT_MS:
            ms = _MAX_WAIT_MS  # wake early, count the time, sleep again
        self.at = port.ticks_add(now, ms)

    def _backoff(self, now):
        # RFC 2131 4.1: 4, 8, 16, 32, 64, 64, ... s, each randomised by -1..+1 s.
        n = self.tries - 1
        ms = _BACKOFF_FIRST_MS << n if n < 5 else _BACKOFF_MAX_MS
        if ms > _BACKOFF_MAX_MS:
            ms = _BACKOFF_MAX_MS
        r = port.urandom(2)
        ms += ((r[0] << 8) | r[1]) % 2001 - 1000
        self.at = port.ticks_add(now, ms)

    def _restart(self, now, delay_ms):
        self._set_state(INIT)
        self.net.arp_watch(0, 0)
        self.at = port.ticks_add(now, delay_ms)

    def _new_xid(self, now):
        r = port.urandom(4)
        for i in range(4):
            self.xid[i] = r[i]
        self.tries = 0
        self.began = now

    # ---- transitions --------------------------------------------------------------------

    def _decline(self, now):
        # RFC 5227 2.1.1 / RFC 2131 3.1.5: someone has the address; tell the server, wait.
        self.net.stats.dhcpConflicts += 1
        self._send(DECLINE, now)
        self._restart(now, _DECLINE_WAIT_MS)

    def _bind(self, now):
        net = self.net
        net.arp_watch(0, 0)
        self.naks = 0
        self.elapsed_s = 0
        self.since = now
        self._apply(now)
        net.stats.dhcpLeases += 1
        self._set_state(BOUND)
        self._lease_timer(now)

    def _apply(self, now):
        # The lease's address, mask, router and DNS servers onto the stack.
        net = self.net
        self.bound = True
        net.set_address(bytes(self.yiaddr), self.prefix,
                        bytes(self.router) if self.has_router else None)
        net.dns_servers = [bytes(self.dns[i]) for i in range(self.dns_count)]

    def _drop_address(self):
        if self.bound:
            self.bound = False
            self.net.dns_servers = []
            self.net.clear_address()

    # ---- output -------------------------------------------------------------------------

    def _send(self, mtype, now):
        net = self.net
        p = net.udp.payload
        state = self.state
        self.tries += 1
        # RENEWING talks to the server unicast from our address; everything else is
        # broadcast (REQUEST in REBINDING to any server; DECLINE, and RELEASE too: it goes
        # as the address is dropped, and must not wait for ARP; servers take it either way).
        with_ciaddr = mtype == RELEASE or (mtype == REQUEST and state in (RENEWING, REBINDING))
        for i in range(_FIXED):
            p[i] = 0
        p[0] = 1  # op BOOTREQUEST
        p[1] = 1  # htype Ethernet
        p[2] = 6  # hlen
        for i in range(4):
            p[4 + i] = self.xid[i]
        secs = port.ticks_diff(now, self.began) // 1000
        if secs > 0xFFFF:
            secs = 0xFFFF
        if secs > 0 and mtype != RELEASE and mtype != DECLINE:
            p[8] = secs >> 8
            p[9] = secs & 0xFF
        if not with_ciaddr:
            p[10] = 0x80  # flags: broadcast our replies, we cannot take unicast yet
        else:
            for i in range(4):
                p[12 + i] = self.yiaddr[i]  # ciaddr
        mac = net.mac or b"\x00" * 6
        for i in range(6):
            p[28 + i] = mac[i]  # chaddr
        p[236] = 99
        p[237] = 130
        p[238] = 83
        p[239] = 99
        i = _OPTIONS
        p[i] = _OPT_MSG_TYPE
        p[i + 1] = 1
        p[i + 2] = mtype
        i += 3
        # Client identifier: type 1 (Ethernet) and the MAC (RFC 2132 9.14).
        p[i] = _OPT_CLIENT_ID
        p[i + 1] = 7
        p[i + 2] = 1
        for k in range(6):
            p[i + 3 + k] = mac[k]
        i += 9
        if mtype == REQUEST and state in (SELECTING, REQUESTING) or mtype == DECLINE:
            p[i] = _OPT_REQUESTED_IP
            p[i + 1] = 4
            for k in range(4):
                p[i + 2 + k] = self.yiaddr[k]
            i += 6
        if mtype == REQUEST and state in (SELECTING, REQUESTING) or mtype in (DECLINE,
                                                                               RELEASE):
            p[i] = _OPT_SERVER_ID
            p[i + 1] = 4
            for k in range(4):
                p[i + 2 + k] = self.server[k]
            i += 6
        if mtype == DISCOVER or mtype == REQUEST:
            name = net.hostname
            if name:
                n = len(name)
                if n > _MAX_HOSTNAME:
                    n = _MAX_HOSTNAME
                p[i] = _OPT_HOSTNAME
                p[i + 1] = n
                for k in range(n):
                    p[i + 2 + k] = ord(name[k]) & 0x7F
                i += 2 + n
            p[i] = _OPT_PARAMS
            p[i + 1] = 6
            p[i + 2] = _OPT_MASK
            p[i + 3] = _OPT_ROUTER
            p[i + 4] = _OPT_DNS
            p[i + 5] = _OPT_LEASE
            p[i + 6] = _OPT_T1
            p[i + 7] = _OPT_T2
            i += 8
        p[i] = _OPT_END
        i += 1
        while i < _MIN_MESSAGE:
            p[i] = _OPT_PAD
            i += 1
        stats = net.stats
        if mtype == DISCOVER:
            stats.dhcpOutDiscovers += 1
        elif mtype == REQUEST:
            stats.dhcpOutRequests += 1
        elif mtype == DECLINE:
            stats.dhcpOutDeclines += 1
        else:
            stats.dhcpOutReleases += 1
        if mtype == REQUEST and state == RENEWING:
            hi, lo = self._halves(self.server)
        else:
            hi = lo = 0xFFFF
        net.udp.send(CLIENT_PORT, hi, lo, SERVER_PORT, i)

    # ---- input --------------------------------------------------------------------------

    def input(self, src_hi, src_lo, sport, buf, off, n, kind, now):
        """A datagram to port 68: buf[off:off + n]. Checked; dropped and counted if bad."""
        stats = self.net.stats
        state = self.state
        if state not in (SELECTING, REQUESTING, RENEWING, REBINDING):
            stats.dhcpInIgnored += 1  # nothing asked for (or PROBING: the ACK came)
            return
        if not self._check(sport, buf, off, n):
            stats.dhcpInErrors += 1
            return
        if not self._mine(buf, off):
            stats.dhcpInIgnored += 1  # another client's exchange (replies are broadcast)
            return
        mtype = self._type
        if mtype == OFFER:
            stats.dhcpInOffers += 1
        elif mtype == ACK:
            stats.dhcpInAcks += 1
        elif mtype == NAK:
            stats.dhcpInNaks += 1
        if mtype == NAK:
            # RFC 2131 4.4.5: in REQUESTING, RENEWING, REBINDING a NAK from the server we
            # talk to (any server, when rebinding) ends the lease: INIT at once.
            if state == SELECTING or (state != REBINDING and self._has_sid
                                      and not self._same(self._sid, self.server)):
                stats.dhcpInIgnored += 1
                return
            self._drop_address()
            self.naks += 1
            self._restart(now, 0 if self.naks == 1 else _NAK_WAIT_MS)
            return
        y = off + 16
        if not self._sane(buf[y], buf[y + 1], buf[y + 2], buf[y + 3]) or not self._host_ok(
                buf, y):
            stats.dhcpInErrors += 1
            return
        if mtype == OFFER:
            if state != SELECTING or not self._has_sid:
                stats.dhcpInIgnored += 1
                return
            # The first acceptable OFFER wins (RFC 2131 4.4.1 lets us take any).
            for k in range(4):
                self.yiaddr[k] = buf[y + k]
                self.server[k] = self._sid[k]
            self._set_state(REQUESTING)
            self.tries = 0
            self._send(REQUEST, now)
            self._backoff(now)
            return
        if mtype != ACK or state == SELECTING:
            stats.dhcpInIgnored += 1
            return
        if self._lease == 0:
            stats.dhcpInErrors += 1  # an ACK must give the lease time (RFC 2131 table 3)
            return
        if state == REQUESTING and self._has_sid and not self._same(self._sid, self.server):
            stats.dhcpInIgnored += 1  # another server's ACK
            return
        changed = False
        for k in range(4):
            if self.yiaddr[k] != buf[y + k]:
                changed = True
            self.yiaddr[k] = buf[y + k]
        if self._has_sid:
            for k in range(4):
                self.server[k] = self._sid[k]
        self._take_lease(buf, off, n)
        if state == REQUESTING or changed:
            # RFC 5227: probe the address before using it.
            if changed:
                self._drop_address()
            self._set_state(PROBING)
            self.tries = 0
            hi, lo = self._halves(self.yiaddr)
            self.net.arp_watch(hi, lo)
            r = port.urandom(1)
            self.at = port.ticks_add(now, r[0] * 1000 // 256)  # PROBE_WAIT: 0..1 s, random
            return
        # RENEWING or REBINDING: the same address, a new lease from now.
        self.naks = 0
        self.elapsed_s = 0
        self.since = now
        self._apply(now)
        stats.dhcpRenewals += 1
        self._set_state(BOUND)
        self._lease_timer(now)

    def _check(self, sport, buf, off, n):
        # Header and options, walked once; True when the reply is well formed. Fills
        # self._type, _sid/_has_sid, _lease, _t1, _t2, _mask/_mask_ok. Routers and DNS
        # servers are read later from the same (checked) options by _take_lease().
        if sport != SERVER_PORT or n < _OPTIONS + 3:
            return False
        if buf[off] != 2 or buf[off + 1] != 1 or buf[off + 2] != 6:
            return False  # op BOOTREPLY, htype Ethernet, hlen 6
        c = off + _FIXED
        if buf[c] != 99 or buf[c + 1] != 130 or buf[c + 2] != 83 or buf[c + 3] != 99:
            return False
        self._type = 0
        self._has_sid = False
        self._lease = 0
        self._t1 = self._t2 = 0
        self._mask_ok = False
        i = off + _OPTIONS
        end = off + n
        while True:
            if i >= end:
                return False  # no END option: truncated
            code = buf[i]
            if code == _OPT_END:
                break
            if code == _OPT_PAD:
                i += 1
                continue
            if i + 1 >= end:
                return False
            ln = buf[i + 1]
            v = i + 2
            if v + ln > end:
                return False  # the option runs past the packet
            if code == _OPT_MSG_TYPE:
                if ln != 1:
                    return False
                self._type = buf[v]
            elif code == _OPT_SERVER_ID:
                if ln != 4:
                    return False
                self._has_sid = True
                for k in range(4):
                    self._sid[k] = buf[v + k]
            elif code == _OPT_LEASE or code == _OPT_T1 or code == _OPT_T2:
                if ln != 4:
                    return False
                t = self._seconds(buf, v)
                if code == _OPT_LEASE:
                    self._lease = t
                elif code == _OPT_T1:
                    self._t1 = t
                else:
                    self._t2 = t
            elif code == _OPT_MASK:
                if ln != 4:
                    return False
                p = self._mask_prefix(buf, v)
                if p < 0:
                    return False
                self._mask = p
                self._mask_ok = True
            elif code == _OPT_ROUTER or code == _OPT_DNS:
                if ln == 0 or ln & 3:
                    return False
            i = v + ln
        t = self._type
        return t == OFFER or t == ACK or t == NAK

    def _mine(self, buf, off):
        # Our exchange: our xid, our hardware address.
        for k in range(4):
            if buf[off + 4 + k] != self.xid[k]:
                return False
        mac = self.net.mac
        if mac:
            for k in range(6):
                if buf[off + 28 + k] != mac[k]:
                    return False
        return True

    def _take_lease(self, buf, off, n):
        # The ACK's lease: times, mask, first router, up to 3 DNS servers. Options were
        # checked by _check(); only known lengths are read here.
        lease = self._lease
        if lease == _INFINITE:
            self.lease_s = _INFINITE
            self.t1_s = self.t2_s = 0
        else:
            self.lease_s = lease
            t1, t2 = self._t1, self._t2
            # RFC 2131 4.4.5 defaults, also when the server's are out of order.
            if not 0 < t2 < lease:
                t2 = lease * 7 // 8
            if not 0 < t1 < t2:
                t1 = lease // 2
                if t1 >= t2:
                    t1 = t2
            self.t1_s, self.t2_s = t1, t2
        if self._mask_ok:
            self.prefix = self._mask
        else:  # no mask: the address's class (RFC 1122 3.3.1.1 fallback)
            a = self.yiaddr[0]
            self.prefix = 8 if a < 128 else (16 if a < 192 else 24)
        self.has_router = False
        self.dns_count = 0
        i = off + _OPTIONS
        end = off + n
        while i < end:
            code = buf[i]
            if code == _OPT_END:
                break
            if code == _OPT_PAD:
                i += 1
                continue
            ln = buf[i + 1]
            v = i + 2
            if code == _OPT_ROUTER:
                if self._sane(buf[v], buf[v + 1], buf[v + 2], buf[v + 3]):
                    self.has_router = True
                    for k in range(4):
                        self.router[k] = buf[v + k]
            elif code == _OPT_DNS:
                for j in range(0, ln, 4):
                    if self.dns_count < _MAX_DNS and self._sane(
                            buf[v + j], buf[v + j + 1], buf[v + j + 2], buf[v + j + 3]):
                        d = self.dns[self.dns_count]
                        for k in range(4):
                            d[k] = buf[v + j + k]
                        self.dns_count += 1
            i = v + ln

    # ---- helpers ------------------------------------------------------------------------

    @staticmethod
    def _seconds(buf, v):
        # A 32-bit count of seconds; 0xffffffff is infinity; clamped to a small int.
        if buf[v] == 0xFF and buf[v + 1] == 0xFF and buf[v + 2] == 0xFF and buf[v + 3] == 0xFF:
            return _INFINITE
        if buf[v] >= 0x40:
            return _MAX_LEASE_S
        return (buf[v] << 24) | (buf[v + 1] << 16) | (buf[v + 2] << 8) | buf[v + 3]

    @staticmethod
    def _mask_prefix(buf, v):
        # The prefix length of a contiguous netmask, or -1 (RFC 950: ones then zeros).
        p = 0
        zeros = False
        for k in range(4):
            b = buf[v + k]
            for bit in range(7, -1, -1):
                if b >> bit & 1:
                    if zeros:
                        return -1
                    p += 1
                else:
                    zeros = True
        return p

    @staticmethod
    def _sane(a, b, c, d):
        # A unicast host address: not 0/8, 127/8, multicast, class E or broadcast.
        return 0 < a < 224 and a != 127 and not (a == b == c == d == 255)

    def _host_ok(self, buf, y):
        # With a mask given, yiaddr is neither the subnet's own address nor its broadcast.
        if not self._mask_ok or self._mask > 30:
            return True
        zeros = ones = True
        for k in range(4):
            bits = self._mask - 8 * k  # network bits in this byte
            host = 0xFF if bits <= 0 else (0 if bits >= 8 else 0xFF >> bits)
            b = buf[y + k] & host
            if b:
                zeros = False
            if b != host:
                ones = False
        return not (zeros or ones)

    @staticmethod
    def _same(x, y):
        for k in range(4):
            if x[k] != y[k]:
                return False
        return True

    @staticmethod
    def _halves(a):
        return (a[0] << 8) | a[1], (a[2] << 8) | a[3]
