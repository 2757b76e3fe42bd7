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
# object per buffer. RingBuffer (ringbuf_obj.py, loaded when asked for: nothing in the stack
# uses it) wraps them for code that wants an object.

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


def __getattr__(name):
    # PEP 562: RingBuffer, the functions above as an object, lives in ringbuf_obj.py.
    if name == "RingBuffer":
        from .ringbuf_obj import RingBuffer

        return RingBuffer
    raise AttributeError(name)
