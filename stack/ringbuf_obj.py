# RingBuffer: a fixed-size byte ring as an object, over ringbuf.py's functions.
# SPDX-License-Identifier: MIT
#
# The stack keeps each ring's head and count in a TCB's packed fields and calls ringbuf.py's
# functions; this class is for code that wants an object (`from stack.ringbuf import
# RingBuffer` still works: ringbuf.py's __getattr__ loads this module). Nothing in the stack
# uses it, and from .mpy files every module loaded keeps its bytecode on the heap, so it
# is not loaded with the core.

from .ringbuf import advance, copy_out, write_at


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
