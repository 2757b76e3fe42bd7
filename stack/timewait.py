# The TIME-WAIT table: compact records, so TIME-WAIT never pins a TCB and its buffers.
# SPDX-License-Identifier: MIT
#
# A record is 20 bytes in one bytearray (like Linux's inet_timewait_sock, a fraction of a
# full socket) plus its expiry tick in a list:
#
#   0  remote address hi, lo   4 bytes
#   4  local port, remote port 4 bytes   (local port 0 = free slot)
#   8  SND.NXT (wire)          4 bytes   our next sequence number (FIN + 1)
#   12 RCV.NXT (wire)          4 bytes   the peer's FIN + 1
#   16 receive window          2 bytes   for the ACKs we send from TIME-WAIT
#   18 last out-of-window ACK  2 bytes   its tick, low 16 bits (one each 500 ms at most)
#
# When the table is full the record that expires first (the oldest) is recycled, counted as
# tcpTimeWaitRecycled: the 4-tuple loses its protection early, which is the lesser evil
# than refusing to close (lwIP and uIP do the same). Oldest-first runs across all peers, so
# one busy (or hostile) peer's closes can push out another peer's records: those are also
# counted apart, as tcpTimeWaitRecycledOther.

from micropython import const

from . import port

_REC = const(20)
_OOW_ACK_MS = const(500)  # Linux's tcp_invalid_ratelimit


class TimeWaitTable:
    def __init__(self, slots):
        self.slots = slots
        self.recs = bytearray(_REC * slots)
        self.expiry = [0] * slots
        self.used = 0

    def _get16(self, i):
        r = self.recs
        return (r[i] << 8) | r[i + 1]

    def _put16(self, i, v):
        self.recs[i] = (v >> 8) & 0xFF
        self.recs[i + 1] = v & 0xFF

    def find(self, rip_hi, rip_lo, lport, rport):
        """Slot index of the record for this 4-tuple, or -1."""
        if not self.used or not lport:
            return -1  # local port 0 marks a free slot: nothing real has it
        for slot in range(self.slots):
            i = slot * _REC
            if (self._get16(i + 4) == lport and self._get16(i + 6) == rport
                    and self._get16(i) == rip_hi and self._get16(i + 2) == rip_lo):
                return slot
        return -1

    def add(self, rip_hi, rip_lo, lport, rport, snd_hi, snd_lo, rcv_hi, rcv_lo, wnd, expiry,
            now, stats):
        """Store a record; recycle the oldest if full. Returns the slot."""
        slot = self.find(rip_hi, rip_lo, lport, rport)
        if slot < 0:
            slot = self._free_slot(rip_hi, rip_lo, now, stats)
        i = slot * _REC
        self._put16(i, rip_hi)
        self._put16(i + 2, rip_lo)
        self._put16(i + 4, lport)
        self._put16(i + 6, rport)
        self._put16(i + 8, snd_hi)
        self._put16(i + 10, snd_lo)
        self._put16(i + 12, rcv_hi)
        self._put16(i + 14, rcv_lo)
        self._put16(i + 16, wnd)
        self._put16(i + 18, now - _OOW_ACK_MS)  # the first out-of-window ACK may go
        self.expiry[slot] = expiry
        return slot

    def _free_slot(self, rip_hi, rip_lo, now, stats):
        oldest = 0
        oldest_left = None
        for slot in range(self.slots):
            if not self._get16(slot * _REC + 4):
                self.used += 1
                return slot
            left = port.ticks_diff(self.expiry[slot], now)
            if oldest_left is None or left < oldest_left:
                oldest, oldest_left = slot, left
        stats.tcpTimeWaitRecycled += 1
        i = oldest * _REC
        if self._get16(i) != rip_hi or self._get16(i + 2) != rip_lo:
            stats.tcpTimeWaitRecycledOther += 1
        return oldest

    def clear(self):
        """Forget every record (our address is gone: nothing can reach them)."""
        for slot in range(self.slots):
            self.remove(slot)

    def remove(self, slot):
        i = slot * _REC
        if self._get16(i + 4):
            self.used -= 1
        self.recs[i + 4] = 0
        self.recs[i + 5] = 0

    def snd_nxt(self, slot):
        i = slot * _REC + 8
        return self._get16(i), self._get16(i + 2)

    def rcv_nxt(self, slot):
        i = slot * _REC + 12
        return self._get16(i), self._get16(i + 2)

    def wnd(self, slot):
        return self._get16(slot * _REC + 16)

    def oow_ack_allowed(self, slot, now):
        """May this record answer an unacceptable segment now? (records the answer)"""
        i = slot * _REC + 18
        if (now - self._get16(i)) & 0xFFFF < _OOW_ACK_MS:
            return False
        self._put16(i, now)
        return True

    def restart(self, slot, expiry):
        self.expiry[slot] = expiry

    def expire(self, now):
        """Free every record whose 2xMSL has passed; return ms to the next expiry or None."""
        if not self.used:
            return None
        nearest = None
        for slot in range(self.slots):
            if not self._get16(slot * _REC + 4):
                continue
            left = port.ticks_diff(self.expiry[slot], now)
            if left <= 0:
                self.remove(slot)
            elif nearest is None or left < nearest:
                nearest = left
        return nearest

    def records(self):
        """(slot, rip_hi, rip_lo, lport, rport) of every record: for connections()."""
        out = []
        for slot in range(self.slots):
            i = slot * _REC
            lport = self._get16(i + 4)
            if lport:
                out.append((slot, self._get16(i), self._get16(i + 2), lport,
                            self._get16(i + 6)))
        return out
