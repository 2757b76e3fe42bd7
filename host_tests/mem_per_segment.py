# Bytes allocated per segment in a steady bulk transfer, and RAM per TCB / TIME-WAIT slot.
# MIT licence. Runs on MicroPython (the figures that matter: 32-bit WebAssembly) and CPython.
#
#   node host_tests/wasm_run.mjs host_tests/mem_per_segment.py
#
# Prints one "key value" line per figure. The GC is disabled while measuring, so
# gc.mem_alloc() deltas are every byte the heap handed out.

import gc
import sys

from stack import Stack
from stack.link.pipe import pipe


def _pair():
    a, b = pipe(mtu=1500, depth=8)
    clock = [0]

    def now():
        return clock[0]

    na = Stack(a, ip="10.0.0.1", clock=now, rx_buf=8192, tx_buf=8192)
    nb = Stack(b, ip="10.0.0.2", clock=now, rx_buf=8192, tx_buf=8192)
    srv = nb.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", 9))
    srv.listen(1)
    c = na.socket()
    c.setblocking(False)
    c.setsockopt(6, 1, 1)  # TCP_NODELAY: one send() is one segment
    try:
        c.connect(("10.0.0.2", 9))
    except OSError:
        pass
    for _ in range(10):
        na.poll()
        nb.poll()
        clock[0] += 1
    s, _ = srv.accept()
    s.setblocking(False)
    return na, nb, c, s, clock


def alloc_per_segment(payload, segments):
    na, nb, c, s, clock = _pair()
    data = memoryview(bytearray(payload))
    sink = bytearray(payload)

    def one():
        c.send(data)
        nb.poll()  # data in, delayed ACK armed
        s.recv_into(sink)
        clock[0] += 1
        na.poll()

    for _ in range(50):  # warm up: windows open, slow start over
        one()
    sent0 = na.stats.tcpOutSegs + nb.stats.tcpOutSegs
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(segments):
        one()
    used = gc.mem_alloc() - before
    gc.enable()
    segs = na.stats.tcpOutSegs + nb.stats.tcpOutSegs - sent0
    assert segs >= segments, (segs, segments)
    return used, segs


def _heap_of(tcbs, tw_slots):
    a, _ = pipe(mtu=1500, depth=1)
    gc.collect()
    m0 = gc.mem_alloc()
    net = Stack(a, ip="10.0.0.1", tcbs=tcbs, rx_buf=1024, tx_buf=1024, tw_slots=tw_slots)
    gc.collect()
    used = gc.mem_alloc() - m0
    del net
    return used


def ram_figures():
    """(bytes per TCB without its two rings, bytes per TIME-WAIT slot, a minimal stack)."""
    base = _heap_of(1, 1)
    per_tcb = (_heap_of(9, 1) - base) // 8 - 2 * 1024
    per_tw = (_heap_of(1, 65) - base) // 64
    return per_tcb, per_tw, base


def main():
    n = 200
    for payload in (100, 1400):
        used, segs = alloc_per_segment(payload, n)
        print("alloc_bytes_per_segment_%d %d" % (payload, used // segs))
    per_tcb, per_tw, base = ram_figures()
    print("tcb_bytes_without_rings %d" % per_tcb)
    print("time_wait_bytes_per_slot %d" % per_tw)
    print("stack_bytes_1tcb_1kib_rings %d" % base)


if __name__ == "__main__" or (sys.implementation.name == "micropython" and "mem_per" in sys.argv[0]):
    main()
