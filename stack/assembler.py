# Out-of-order receive data: which byte ranges beyond rcv_nxt are already in the ring.
# SPDX-License-Identifier: MIT
#
# Like smoltcp's assembler, the data itself sits in the receive ring at its offset; this
# only remembers where. Ranges are (start, end) offsets from rcv_nxt, start > 0, sorted,
# disjoint and never touching. A fixed number of slots (config.ASSEMBLER_RANGES): when all
# are taken, a segment that would need another is refused (the peer will retransmit it).
#
# Example: rcv_nxt = 1000, segments 1100-1200 and 1300-1400 arrive: ranges (100, 200) and
# (300, 400). Then 1000-1100 arrives: advance(100) returns 100 more readable bytes (the
# first range), and the second range becomes (100, 200) from the new rcv_nxt 1200.


class Assembler:
    def __init__(self, slots):
        self.slots = slots
        self.starts = [0] * slots
        self.ends = [0] * slots
        self.used = 0

    def clear(self):
        self.used = 0

    def add(self, start, end):
        """Record [start, end); return False if it needs a slot and none is free."""
        starts = self.starts
        ends = self.ends
        used = self.used
        i = 0
        # Skip ranges wholly before the new one (and not touching it).
        while i < used and ends[i] < start:
            i += 1
        # Merge every range that overlaps or touches [start, end).
        j = i
        while j < used and starts[j] <= end:
            if starts[j] < start:
                start = starts[j]
            if ends[j] > end:
                end = ends[j]
            j += 1
        merged = j - i
        if merged == 0:
            if used == self.slots:
                return False
            k = used
            while k > i:
                starts[k] = starts[k - 1]
                ends[k] = ends[k - 1]
                k -= 1
            self.used = used + 1
        elif merged > 1:
            # Close the gap left by ranges folded into slot i.
            k = i + 1
            while j < used:
                starts[k] = starts[j]
                ends[k] = ends[j]
                k += 1
                j += 1
            self.used = used - merged + 1
        starts[i] = start
        ends[i] = end
        return True

    def advance(self, n):
        """rcv_nxt moved forward by n in-order bytes; return how many more are now in order."""
        starts = self.starts
        ends = self.ends
        extra = 0
        drop = 0
        used = self.used
        for i in range(used):
            starts[i] -= n
            ends[i] -= n
        while drop < used and starts[drop] <= 0:
            if ends[drop] > extra:
                extra = ends[drop]
            drop += 1
        if drop:
            for i in range(drop, used):
                starts[i - drop] = starts[i] - extra
                ends[i - drop] = ends[i] - extra
            self.used = used - drop
        elif extra == 0:
            return 0
        return extra

    def total(self):
        """How many out-of-order bytes are held."""
        t = 0
        for i in range(self.used):
            t += self.ends[i] - self.starts[i]
        return t

    def highest(self):
        """The end of the last range (0 if none): ring space taken beyond count."""
        return self.ends[self.used - 1] if self.used else 0
