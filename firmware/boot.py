# boot.py: runs first at every reset (and soft reset), before main.py.
# SPDX-License-Identifier: MIT
#
# Keep it small and safe: a failure here happens before the REPL tools can reach the board.
# The network is brought up in main.py, so a broken config still leaves a working REPL.

import gc

gc.collect()
# Collect after every 8 KB allocated, not only when the heap is full. Importing code from
# .mpy files (and compiling main.py) leaves garbage between the objects that stay; with
# collections only on a full heap, what stays is spread over the whole heap: measured on the
# emulated board (tools/mcu_heap.py), `import stack` from .mpy left no free block above
# 6 KB of 117 KB free, and with this line a 118 KB one. A collection costs a few ms: once
# serving, main.py raises the threshold to a quarter of the free heap.
try:
    gc.threshold(8192)
except AttributeError:  # pragma: no cover - a port without MICROPY_GC_ALLOC_THRESHOLD
    pass
