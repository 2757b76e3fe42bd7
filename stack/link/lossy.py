# A seeded fault injector around any link: drops, duplicates, reorders and corrupts frames.
# SPDX-License-Identifier: MIT
#
# Like smoltcp's FaultInjector, and our stand-in for netem (the test kernel has none).
# Faults apply to frames *sent* through the wrapper; receiving passes straight through.
# The same seed gives the same faults, so a failing run can be replayed.


class Lossy:
    def __init__(self, link, seed=1, loss=0.0, dup=0.0, reorder=0.0, corrupt=0.0):
        self.link = link
        self.mtu = link.mtu
        self.mac = link.mac
        self._x = (seed * 2654435761 + 1) & 0x7FFFFFFF or 1
        # Probabilities as integers out of 65536, so the PRNG never needs floats.
        self._loss = int(loss * 65536)
        self._dup = int(dup * 65536)
        self._reorder = int(reorder * 65536)
        self._corrupt = int(corrupt * 65536)
        self._held = bytearray(link.mtu)
        self._held_len = 0
        self._scratch = bytearray(link.mtu)
        self.dropped = self.duplicated = self.reordered = self.corrupted = 0
        if hasattr(link, "fileno"):
            self.fileno = link.fileno

    def _rand16(self):
        # xorshift on 31 bits: small ints on every port.
        x = self._x
        x ^= (x << 13) & 0x7FFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0x7FFFFFFF
        self._x = x
        return x & 0xFFFF

    def recv_into(self, buf):
        return self.link.recv_into(buf)

    def send(self, frame):
        n = len(frame)
        if self._rand16() < self._loss:
            self.dropped += 1
            return
        if self._rand16() < self._corrupt:
            self.corrupted += 1
            s = self._scratch
            s[:n] = frame
            s[self._rand16() % n] ^= 1 << (self._rand16() & 7)
            frame = memoryview(s)[:n]
        if not self._held_len and self._rand16() < self._reorder:
            # Hold this frame back; it goes out after the next one.
            self.reordered += 1
            self._held[:n] = frame
            self._held_len = n
            return
        self.link.send(frame)
        if self._rand16() < self._dup:
            self.duplicated += 1
            self.link.send(frame)
        if self._held_len:
            self.link.send(memoryview(self._held)[:self._held_len])
            self._held_len = 0

    def flush(self):
        """Send a held-back frame now (call when traffic stops, or it waits forever)."""
        if self._held_len:
            self.link.send(memoryview(self._held)[:self._held_len])
            self._held_len = 0
