# An in-memory link: two ends joined back to back, for tests and the demo.
# SPDX-License-Identifier: MIT
#
# Each direction is a ring of preallocated frame slots, so passing a frame allocates
# nothing that grows with its size (the memory test measures the stack through it).
# A full ring drops the frame and counts it, as a NIC would.


class PipeEnd:
    def __init__(self, mtu, depth, mac=None):
        self.mtu = mtu
        self.mac = mac  # None: IP-only, like TUN; 6 bytes: Ethernet frames, like TAP
        self.peer = None
        size = mtu + 14 if mac else mtu  # an Ethernet frame carries mtu bytes of IP
        self._size = size
        self._slots = [bytearray(size) for _ in range(depth)]
        self._views = [memoryview(b) for b in self._slots]  # made once, sliced per frame
        self._lens = [0] * depth
        self._head = 0
        self._count = 0
        self.drops = 0
        self.sent = 0

    def send(self, frame):
        self.sent += 1
        self.peer._push(frame)

    def _push(self, frame):
        depth = len(self._slots)
        n = len(frame)
        if self._count == depth or n > self._size:
            self.drops += 1
            return
        i = self._head + self._count
        if i >= depth:
            i -= depth
        self._slots[i][:n] = frame
        self._lens[i] = n
        self._count += 1

    def pending(self):
        return self._count

    def recv_into(self, buf):
        if not self._count:
            return 0
        i = self._head
        n = self._lens[i]
        buf[:n] = self._views[i][:n]
        self._head = i + 1 if i + 1 < len(self._slots) else 0
        self._count -= 1
        return n


def pipe(mtu=1500, depth=64, macs=None):
    """Two joined ends: what one sends, the other receives.

    With macs=(mac_a, mac_b) the ends carry Ethernet frames (the stacks then run ARP).
    """
    a = PipeEnd(mtu, depth, macs[0] if macs else None)
    b = PipeEnd(mtu, depth, macs[1] if macs else None)
    a.peer = b
    b.peer = a
    return a, b
