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
#
# The state lives in a list `a` from index `b` on: a[b] is the number of ranges in use, then
# range i is a[b + 1 + 2i] (start) and a[b + 2 + 2i] (end). A TCB keeps it inside its packed
# fields (tcp.py), so it costs no object of its own; Assembler wraps it for tests.


def size(slots):
    """List entries an assembler of `slots` ranges takes."""
    return 1 + 2 * slots


def add(a, b, slots, start, end):
    """Record [start, end); return False if it needs a slot and none is free."""
    used = a[b]
    i = 0
    # Skip ranges wholly before the new one (and not touching it).
    while i < used and a[b + 2 + 2 * i] < start:
        i += 1
    # Merge every range that overlaps or touches [start, end).
    j = i
    while j < used and a[b + 1 + 2 * j] <= end:
        if a[b + 1 + 2 * j] < start:
            start = a[b + 1 + 2 * j]
        if a[b + 2 + 2 * j] > end:
            end = a[b + 2 + 2 * j]
        j += 1
    merged = j - i
    if merged == 0:
        if used == slots:
            return False
        k = b + 1 + 2 * used
        stop = b + 1 + 2 * i
        while k > stop:  # shift later ranges up one slot
            a[k] = a[k - 2]
            a[k + 1] = a[k - 1]
            k -= 2
        a[b] = used + 1
    elif merged > 1:
        # Close the gap left by ranges folded into slot i.
        k = b + 3 + 2 * i
        src = b + 1 + 2 * j
        stop = b + 1 + 2 * used
        while src < stop:
            a[k] = a[src]
            a[k + 1] = a[src + 1]
            k += 2
            src += 2
        a[b] = used - merged + 1
    a[b + 1 + 2 * i] = start
    a[b + 2 + 2 * i] = end
    return True


def advance(a, b, n):
    """rcv_nxt moved forward by n in-order bytes; return how many more are now in order."""
    used = a[b]
    if not used:
        return 0
    r = b + 1
    stop = r + 2 * used
    k = r
    while k < stop:
        a[k] -= n
        k += 1
    extra = 0
    drop = 0
    while drop < used and a[r + 2 * drop] <= 0:
        if a[r + 2 * drop + 1] > extra:
            extra = a[r + 2 * drop + 1]
        drop += 1
    if drop:
        k = r
        src = r + 2 * drop
        while src < stop:
            a[k] = a[src] - extra
            a[k + 1] = a[src + 1] - extra
            k += 2
            src += 2
        a[b] = used - drop
    return extra


def total(a, b):
    """How many out-of-order bytes are held."""
    t = 0
    for i in range(a[b]):
        t += a[b + 2 + 2 * i] - a[b + 1 + 2 * i]
    return t


def highest(a, b):
    """The end of the last range (0 if none): ring space taken beyond count."""
    used = a[b]
    return a[b + 2 * used] if used else 0


class Assembler:
    """An assembler in a list of its own (tests, and code that wants an object)."""

    def __init__(self, slots):
        self.slots = slots
        self.a = [0] * size(slots)

    @property
    def used(self):
        return self.a[0]

    def clear(self):
        self.a[0] = 0

    def add(self, start, end):
        return add(self.a, 0, self.slots, start, end)

    def advance(self, n):
        return advance(self.a, 0, n)

    def total(self):
        return total(self.a, 0)

    def highest(self):
        return highest(self.a, 0)

    def ranges(self):
        """((start, end), ...) in order: for tests and debugging."""
        a = self.a
        return tuple((a[1 + 2 * i], a[2 + 2 * i]) for i in range(a[0]))
