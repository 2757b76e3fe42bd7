# ARP (RFC 826) for IPv4 over Ethernet: a fixed cache that spoofing neighbours cannot take.
# SPDX-License-Identifier: MIT
#
# The cache has config.ARP_ENTRIES slots. An entry is FREE, PENDING (request sent, waiting
# for the reply), RESOLVED (until it expires) or PROBING (resolved and still used while we
# ask its owner, by unicast, whether it is still there). A frame whose next hop is not
# resolved is copied into one of config.ARP_QUEUE preallocated buffers (at most one per
# entry: a newer frame replaces the older, as lwIP's default does) and sent when the reply
# comes.
#
# Anyone on the LAN can send ARP, so what we believe follows a policy (every refusal is
# counted in stats.arpRefused and in one of its parts, arpRefusedMac/Addr/Claim/Full):
#
# - Only plausible claims (iface.process_arp): the sender MAC must be unicast, not zero and
#   not ours (a broadcast "owner" would send our frames to everyone); the sender address an
#   on-link unicast host: never 0.0.0.0 (an RFC 5227 probe: answered, not learnt), 127/8,
#   multicast, 240/4, 255.255.255.255, our subnet broadcast or our own address.
# - Entries are made by our own traffic (PENDING) and by a request for our address (RFC
#   826: the asker is about to talk to us). Unsolicited replies and gratuitous ARP make none.
# - A PENDING entry takes the first answer from its address (a reply, or the host's own
#   request): until one of them has answered we cannot tell the owner from a forger.
# - A RESOLVED entry never changes its MAC because of what we hear. The same MAC confirms
#   it (its lifetime restarts); another MAC is refused, and the entry goes PROBING: up to
#   ARP_RETRIES unicast requests, a second apart, to the MAC we have. If the owner answers,
#   nothing changed; if not, the address is resolved afresh by broadcast (PENDING, if we
#   still send to it; else the entry is dropped). So a gratuitous ARP or an unsolicited
#   reply cannot redirect our traffic, while a host that really changed its MAC (a new
#   board, a router fail-over) is found again after ARP_RETRIES seconds. A used entry that
#   expires is probed the same way instead of being dropped, so busy traffic does not lose
#   its next hop every ARP_TIMEOUT_MS.
# - Eviction: a new entry takes a FREE slot, else the least recently used entry that is
#   idle (no frame sent through it for _IDLE_MS) and is not the gateway's. An entry in use
#   and the gateway's are never evicted: the new entry is refused instead (and its frame
#   dropped; TCP retransmits). At most half the cache may be PENDING. Replies to what others
#   sent us unasked (echo replies: their source may be forged) are low priority: they may
#   start a resolution only while under a quarter of the cache is PENDING, never take the
#   last free queue buffer, and do not mark an entry as in use. An entry learnt from a
#   request starts idle. So a flood of spoofed pings and requests from any number of
#   sources churns among idle entries, and the gateway and live next hops keep theirs.
#
# Compared with the others: lwIP updates an existing entry from any ARP packet it hears
# and, for one addressed to it, recycles the oldest entry to make room (the gateway's
# too). Linux (arp_accept=0) creates entries only for requests to it, but lets any ARP
# packet change an existing entry's MAC once arp_locktime (1 s) has passed, and relies on
# a table of up to 1024 entries (gc_thresh3). With 8 entries we cannot rely on size: we
# keep the first answer until its owner stops answering, and never evict what is in use.

from micropython import const

from . import ether, port

_FREE = const(0)
_PENDING = const(1)
_RESOLVED = const(2)
_PROBING = const(3)  # resolved and usable, being confirmed by unicast requests

# An entry through which no frame went for this long is idle: it may be evicted, and it is
# dropped rather than probed when it expires. Linux's gc_staletime is 60 s too.
_IDLE_MS = const(60_000)

OP_REQUEST = const(1)
OP_REPLY = const(2)
PACKET_LEN = const(28)  # ARP for IPv4 over Ethernet

# hear() is told why it hears: a packet not for us, a request for our address, a reply to us.
HEARD = const(0)
ASKED = const(1)
ANSWERED = const(2)


class ARPCache:
    def __init__(self, entries, queue, frame_size, timeout_ms, retry_ms, retries, stats):
        self.stats = stats
        self.state = [_FREE] * entries
        self.ip_hi = [0] * entries
        self.ip_lo = [0] * entries
        self.macs = [bytearray(6) for _ in range(entries)]
        self.at = [0] * entries  # RESOLVED: expiry tick; PENDING/PROBING: next request tick
        self.used = [0] * entries  # last tick a frame went through it (see _IDLE_MS)
        self.tries = [0] * entries
        self.qbuf = [bytearray(frame_size) for _ in range(queue)]
        self.qlen = [0] * queue  # 0 = slot free
        self.qentry = [0] * queue
        self.timeout_ms = timeout_ms
        self.retry_ms = retry_ms
        self.retries = retries
        self.pending_max = entries // 2 if entries >= 2 else 1
        self.low_pending_max = entries // 4 if entries >= 4 else 1
        # The gateway's address: its entry is never evicted. Set by the Stack; -1: none.
        self.keep_hi = -1
        self.keep_lo = -1
        # Changed (moved()) whenever an entry lookup() could return stops being one or
        # changes its address or MAC, and when the Stack's route changes: an index from
        # `last` (the entry the last successful lookup() used) stays good while gen is the
        # same. A connection keeps its next hop that way (tcp.py _emit).
        self.gen = 0
        self.last = -1

    def moved(self):
        self.gen = (self.gen + 1) & 0x3FFFFFFF  # stays a small int

    def clear(self):
        """Forget every entry and queued frame (our address changed)."""
        self.moved()
        for i in range(len(self.state)):
            self.state[i] = _FREE
        for q in range(len(self.qlen)):
            self.qlen[q] = 0

    def find(self, hi, lo):
        for i in range(len(self.state)):
            if self.state[i] != _FREE and self.ip_hi[i] == hi and self.ip_lo[i] == lo:
                return i
        return -1

    def lookup(self, hi, lo, now, use):
        """The MAC for (hi, lo) if known, else None. use: mark the entry in use (a frame of
        our own goes through it), which keeps it from eviction for _IDLE_MS."""
        for i in range(len(self.state)):
            if self.ip_lo[i] == lo and self.ip_hi[i] == hi and self.state[i] >= _RESOLVED:
                if use:
                    self.used[i] = now
                self.last = i
                return self.macs[i]
        return None

    def resolved_mac(self, hi, lo):
        """The MAC for (hi, lo) if known, else None (for the REPL and tests)."""
        i = self.find(hi, lo)
        if i >= 0 and self.state[i] >= _RESOLVED:
            return self.macs[i]
        return None

    def _idle(self, i, now):
        return port.ticks_diff(now, self.used[i]) >= _IDLE_MS

    def _slot(self, now, pending_max):
        """A FREE entry, or else the least recently used idle one that is not the gateway's;
        -1 (counted) if none, or if pending_max entries are PENDING already (0: no limit)."""
        free = -1
        victim = -1
        age = 0
        pending = 0
        for i in range(len(self.state)):
            s = self.state[i]
            if s == _FREE:
                if free < 0:
                    free = i
            elif s == _PENDING:
                pending += 1
            elif not (self.ip_hi[i] == self.keep_hi and self.ip_lo[i] == self.keep_lo):
                a = port.ticks_diff(now, self.used[i])
                if a >= _IDLE_MS and (victim < 0 or a > age):
                    victim, age = i, a
        if pending_max and pending >= pending_max:
            free = victim = -1
        if free >= 0:
            return free
        if victim >= 0:
            self.state[victim] = _FREE
            self.moved()
            self._drop_queued(victim)
            return victim
        self.stats.arpRefused += 1
        self.stats.arpRefusedFull += 1
        return -1

    def hear(self, hi, lo, buf, off, now, why):
        """An ARP packet from hi.lo (a plausible on-link host) says it is at buf[off:off+6],
        a unicast MAC; why is HEARD, ASKED or ANSWERED. Applies the policy above.

        Returns the entry's index if a PENDING entry just resolved (send its queued frame),
        else -1.
        """
        i = self.find(hi, lo)
        if i < 0:
            if why == HEARD:
                return -1  # the LAN's chatter about a host we do not talk to
            if why == ANSWERED:
                self.stats.arpRefused += 1  # a reply we did not ask for
                self.stats.arpRefusedClaim += 1
                return -1
            i = self._slot(now, 0)
            if i < 0:
                return -1
            self.ip_hi[i], self.ip_lo[i] = hi, lo
            self.state[i] = _RESOLVED
            self.at[i] = port.ticks_add(now, self.timeout_ms)
            self.used[i] = port.ticks_add(now, -_IDLE_MS)  # idle until we send through it
            self.tries[i] = 0
            mac = self.macs[i]
            for k in range(6):
                mac[k] = buf[off + k]
            return -1
        mac = self.macs[i]
        s = self.state[i]
        if s == _PENDING:
            for k in range(6):
                mac[k] = buf[off + k]
            self.state[i] = _RESOLVED
            self.at[i] = port.ticks_add(now, self.timeout_ms)
            self.tries[i] = 0
            return i
        if (mac[0] == buf[off] and mac[1] == buf[off + 1] and mac[2] == buf[off + 2]
                and mac[3] == buf[off + 3] and mac[4] == buf[off + 4]
                and mac[5] == buf[off + 5]):
            # Its owner (or someone repeating the truth): confirmed, probing ends.
            self.state[i] = _RESOLVED
            self.at[i] = port.ticks_add(now, self.timeout_ms)
            self.tries[i] = 0
            if self._idle(i, now):
                # Keep `used` within ticks_diff's range however long chatter confirms it.
                self.used[i] = port.ticks_add(now, -_IDLE_MS)
            return -1
        # Another MAC for a resolved address: refused; ask the MAC we have if it is still
        # there (unless we are asking already).
        self.stats.arpRefused += 1
        self.stats.arpRefusedClaim += 1
        if s == _RESOLVED:
            self.state[i] = _PROBING
            self.tries[i] = 0
            self.at[i] = now
        return -1

    def start(self, hi, lo, now, low):
        """Entry for an unresolved next hop: existing or new PENDING; -1 if none can be had.
        low: the frame answers someone else's packet (see the policy above).

        Returns (index, send_request_now).
        """
        i = self.find(hi, lo)
        if i >= 0:
            if not low:
                self.used[i] = now
            return i, False
        i = self._slot(now, self.low_pending_max if low else self.pending_max)
        if i < 0:
            return -1, False
        self.state[i] = _PENDING
        self.ip_hi[i], self.ip_lo[i] = hi, lo
        self.tries[i] = 1
        self.at[i] = port.ticks_add(now, self.retry_ms)
        self.used[i] = port.ticks_add(now, -_IDLE_MS) if low else now
        return i, True

    def enqueue(self, entry, frame, n, low):
        """Keep a copy of frame[:n] until entry resolves. False if no buffer was free (a low
        priority frame leaves the last free buffer to our own traffic)."""
        q = self.take_queued(entry)  # one per entry: the newer frame replaces the older
        if q < 0:
            free = 0
            for k in range(len(self.qlen)):
                if not self.qlen[k]:
                    free += 1
                    if q < 0:
                        q = k
            if q < 0 or (low and free < 2):
                return False
        self.qbuf[q][:n] = frame[:n]
        self.qlen[q] = n
        self.qentry[q] = entry
        return True

    def take_queued(self, entry):
        """Index of a queued frame for entry, or -1 (caller sends it, then release()s)."""
        for q in range(len(self.qlen)):
            if self.qlen[q] and self.qentry[q] == entry:
                return q
        return -1

    def release(self, q):
        self.qlen[q] = 0

    def _drop_queued(self, entry):
        q = self.take_queued(entry)
        if q >= 0:
            self.qlen[q] = 0
        return q >= 0

    def next_request(self, now):
        """One entry whose request time has come, or -1. Send it a request: broadcast if
        PENDING, unicast to probe_mac(i) if PROBING.

        Along the way, gives up on entries after `retries` requests (dropping a PENDING
        entry's queued frame; a PROBING entry still in use turns PENDING first), drops
        RESOLVED entries that expired idle and starts probing those that expired in use.
        Call until it returns -1.
        """
        for i in range(len(self.state)):
            s = self.state[i]
            if s == _FREE or port.ticks_diff(now, self.at[i]) < 0:
                continue
            if s == _RESOLVED:
                if self._idle(i, now):
                    self.state[i] = _FREE
                    self.moved()
                    continue
                s = self.state[i] = _PROBING
                self.tries[i] = 0
            if self.tries[i] >= self.retries:
                if s == _PROBING and not self._idle(i, now):
                    # Its owner stopped answering at that MAC, and we still send to it:
                    # ask everyone (it may have moved), as a new PENDING entry would.
                    self.state[i] = _PENDING
                    self.moved()
                    self.tries[i] = 1
                    self.at[i] = port.ticks_add(now, self.retry_ms)
                    return i
                self.state[i] = _FREE
                self.moved()
                if self._drop_queued(i) and s == _PENDING:
                    self.stats.arpUnresolved += 1
                continue
            self.tries[i] += 1
            self.at[i] = port.ticks_add(now, self.retry_ms)
            return i
        return -1

    def probe_mac(self, i):
        """The MAC to ask entry i's address at: its own if PROBING, None (broadcast) else."""
        return self.macs[i] if self.state[i] == _PROBING else None

    def next_due_ms(self, now):
        best = None
        for i in range(len(self.state)):
            if self.state[i] == _PENDING or self.state[i] == _PROBING:
                left = port.ticks_diff(self.at[i], now)
                if best is None or left < best:
                    best = left
        return best

    def entries(self):
        """(ip_hi, ip_lo, mac text, 'RESOLVED'|'PENDING'|'PROBING') for display."""
        out = []
        for i in range(len(self.state)):
            s = self.state[i]
            if s != _FREE:
                out.append((self.ip_hi[i], self.ip_lo[i], ether.mac_text(self.macs[i]),
                            ("PENDING", "RESOLVED", "PROBING")[s - 1]))
        return out


def write_packet(buf, off, op, sha, spa, tha, tpa):
    """ARP packet at buf[off:off+28]; hardware addresses 6 bytes, protocol 4."""
    buf[off] = 0
    buf[off + 1] = 1  # Ethernet
    buf[off + 2] = 0x08
    buf[off + 3] = 0x00  # IPv4
    buf[off + 4] = 6
    buf[off + 5] = 4
    buf[off + 6] = 0
    buf[off + 7] = op
    buf[off + 8:off + 14] = sha
    buf[off + 14:off + 18] = spa
    buf[off + 18:off + 24] = tha
    buf[off + 24:off + 28] = tpa
