# A fixed-size byte ring: the send and receive buffers of a TCB.
# SPDX-License-Identifier: MIT
#
# Allocated once; data is copied in and out with memoryview slices, never re-allocated.
# `head` is where the oldest byte lives and `count` how many bytes are stored. The receive
# side also writes out-of-order data *beyond* count (write_at); it becomes readable when the
# gap before it fills and the owner adds it to count.
#
# The functions take the ring's memoryview and its head and count as plain arguments, so a
# TCB keeps those two numbers in its packed fields (tcp.py) instead of paying for a ring
# object per buffer. RingBuffer wraps them for code that wants an object (aio.py).

from .port import copy_viper as _copy


def write_at(mv, head, count, offset, data):
    """Copy data to offset bytes past the count stored bytes, without committing it.

    Returns how many bytes fitted (data beyond the ring's free space is cut off).
    """
    return write_from(mv, head, count, offset, data, 0, len(data))


def write_from(mv, head, count, offset, src, at, n):
    """write_at() of src[at:at + n], without making a view of it where viper copies."""
    size = len(mv)
    room = size - count - offset
    if n > room:
        n = room
    if n <= 0:
        return 0
    start = head + count + offset
    if start >= size:
        start -= size
    first = size - start
    if first > n:
        first = n
    # The native copy (port.py) when both ends are at even addresses, else by slice.
    if _copy is None or not _copy(mv, start, src, at, first):
        if type(src) is not memoryview:
            src = memoryview(src)  # slicing bytes would copy them; a view does not
        mv[start:start + first] = src[at:at + first]
    if first < n:
        if _copy is None or not _copy(mv, 0, src, at + first, n - first):
            if type(src) is not memoryview:
                src = memoryview(src)
            mv[0:n - first] = src[at + first:at + n]
    return n


def copy_out(mv, head, offset, dest, n, at=0):
    """Copy n stored bytes starting offset bytes past head into dest[at:at + n].

    dest is a bytearray or memoryview; giving `at` instead of slicing dest saves a view.
    """
    size = len(mv)
    start = head + offset
    if start >= size:
        start -= size
    first = size - start
    if first > n:
        first = n
    if _copy is None or not _copy(dest, at, mv, start, first):
        dest[at:at + first] = mv[start:start + first]
    if first < n:
        if _copy is None or not _copy(dest, at + first, mv, 0, n - first):
            dest[at + first:at + n] = mv[0:n - first]


def advance(head, n, size):
    """The head after dropping the n oldest bytes."""
    # No rewind to 0 when empty: out-of-order bytes may wait beyond count.
    head += n
    return head - size if head >= size else head


class RingBuffer:
    def __init__(self, size):
        self.mv = memoryview(bytearray(size))
        self.size = size
        self.head = 0
        self.count = 0

    def clear(self):
        self.head = 0
        self.count = 0

    def free(self):
        return self.size - self.count

    def write(self, data):
        """Append as much of data as fits; return the number of bytes taken."""
        n = write_at(self.mv, self.head, self.count, 0, data)
        self.count += n
        return n

    def write_at(self, offset, data):
        return write_at(self.mv, self.head, self.count, offset, data)

    def commit(self, n):
        """Make n bytes written with write_at(0, ...) readable."""
        self.count += n

    def copy_out(self, offset, dest, n, at=0):
        copy_out(self.mv, self.head, offset, dest, n, at)

    def consume(self, n):
        """Drop the n oldest bytes."""
        self.head = advance(self.head, n, self.size)
        self.count -= n

    def read_into(self, dest):
        """Move up to len(dest) of the oldest bytes into dest; return how many."""
        n = len(dest)
        if n > self.count:
            n = self.count
        if n:
            copy_out(self.mv, self.head, 0, dest, n)
            self.consume(n)
        return n
