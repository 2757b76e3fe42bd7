# ARP (RFC 826) for IPv4 over Ethernet: a fixed cache, and a few frames waiting on it.
# SPDX-License-Identifier: MIT
#
# The cache has config.ARP_ENTRIES slots. An entry is FREE, PENDING (request sent, waiting
# for the reply) or RESOLVED (until it expires). A frame whose next hop is not resolved is
# copied into one of config.ARP_QUEUE preallocated buffers (at most one per entry: a newer
# frame replaces the older, as lwIP's default does) and sent when the reply comes. When
# the cache is full, the least recently used RESOLVED entry is reused; when every entry is
# PENDING, the frame is dropped and counted (TCP retransmits it).

from micropython import const

from . import ether, port

_FREE = const(0)
_PENDING = const(1)
_RESOLVED = const(2)

OP_REQUEST = const(1)
OP_REPLY = const(2)
PACKET_LEN = const(28)  # ARP for IPv4 over Ethernet


class ARPCache:
    def __init__(self, entries, queue, frame_size, timeout_ms, retry_ms, retries, stats):
        self.stats = stats
        self.state = [_FREE] * entries
        self.ip_hi = [0] * entries
        self.ip_lo = [0] * entries
        self.macs = [bytearray(6) for _ in range(entries)]
        self.at = [0] * entries  # RESOLVED: expiry tick; PENDING: next request tick
        self.tries = [0] * entries
        self.qbuf = [bytearray(frame_size) for _ in range(queue)]
        self.qlen = [0] * queue  # 0 = slot free
        self.qentry = [0] * queue
        self.timeout_ms = timeout_ms
        self.retry_ms = retry_ms
        self.retries = retries

    def find(self, hi, lo):
        for i in range(len(self.state)):
            if self.state[i] != _FREE and self.ip_hi[i] == hi and self.ip_lo[i] == lo:
                return i
        return -1

    def resolved_mac(self, hi, lo):
        """The MAC for (hi, lo) if known, else None."""
        i = self.find(hi, lo)
        if i >= 0 and self.state[i] == _RESOLVED:
            return self.macs[i]
        return None

    def _slot(self, now):
        """A free entry, or the resolved one closest to expiry; -1 if all are pending."""
        best = -1
        best_left = 0
        for i in range(len(self.state)):
            s = self.state[i]
            if s == _FREE:
                return i
            if s == _RESOLVED:
                left = port.ticks_diff(self.at[i], now)
                if best < 0 or left < best_left:
                    best, best_left = i, left
        if best >= 0:
            self._drop_queued(best)
        return best

    def learn(self, hi, lo, mac, now, create):
        """Record hi.lo is at mac (RFC 826 merge); create an entry only if asked.

        Returns the entry index, or -1. Queued frames for it can then be flushed.
        """
        i = self.find(hi, lo)
        if i < 0:
            if not create:
                return -1
            i = self._slot(now)
            if i < 0:
                return -1
            self.ip_hi[i], self.ip_lo[i] = hi, lo
        self.macs[i][:] = mac
        self.state[i] = _RESOLVED
        self.at[i] = port.ticks_add(now, self.timeout_ms)
        self.tries[i] = 0
        return i

    def start(self, hi, lo, now):
        """Entry for an unresolved next hop: existing or new PENDING; -1 if none can be had.

        Returns (index, send_request_now).
        """
        i = self.find(hi, lo)
        if i >= 0:
            return i, False
        i = self._slot(now)
        if i < 0:
            return -1, False
        self.state[i] = _PENDING
        self.ip_hi[i], self.ip_lo[i] = hi, lo
        self.tries[i] = 1
        self.at[i] = port.ticks_add(now, self.retry_ms)
        return i, True

    def enqueue(self, entry, frame, n):
        """Keep a copy of frame[:n] until entry resolves. False if no buffer was free."""
        free = -1
        for q in range(len(self.qlen)):
            if self.qlen[q] and self.qentry[q] == entry:
                free = q  # one per entry: the newer frame replaces the older
                break
            if not self.qlen[q] and free < 0:
                free = q
        if free < 0:
            return False
        self.qbuf[free][:n] = frame[:n]
        self.qlen[free] = n
        self.qentry[free] = entry
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
        """One pending entry whose retry time has come (to re-request), or -1.

        Along the way, gives up on entries after `retries` requests (dropping their
        queued frame) and frees resolved entries that expired. Call until it returns -1.
        """
        for i in range(len(self.state)):
            s = self.state[i]
            if s == _FREE or port.ticks_diff(now, self.at[i]) < 0:
                continue
            if s == _RESOLVED or self.tries[i] >= self.retries:
                self.state[i] = _FREE
                if self._drop_queued(i) and s == _PENDING:
                    self.stats.arpUnresolved += 1
                continue
            self.tries[i] += 1
            self.at[i] = port.ticks_add(now, self.retry_ms)
            return i
        return -1

    def next_due_ms(self, now):
        best = None
        for i in range(len(self.state)):
            if self.state[i] == _PENDING:
                left = port.ticks_diff(self.at[i], now)
                if best is None or left < best:
                    best = left
        return best

    def entries(self):
        """(ip_hi, ip_lo, mac text, 'RESOLVED'|'PENDING') for display."""
        out = []
        for i in range(len(self.state)):
            if self.state[i] != _FREE:
                out.append((self.ip_hi[i], self.ip_lo[i], ether.mac_text(self.macs[i]),
                            "RESOLVED" if self.state[i] == _RESOLVED else "PENDING"))
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
