# Viper checksum kernel for MicroPython ports with a native emitter (unix, ESP32, RP2040).
# SPDX-License-Identifier: MIT
#
# Only port.py imports this, inside try/except: ports without viper (WebAssembly) reject
# the decorator at import time and keep the plain loop. Compile with mpy-cross -march=...

import micropython


@micropython.viper
def checksum_viper(buf, start: int, end: int, acc: int) -> int:
    p = ptr8(buf)
    n = end - start
    stop = start + (n & ~1)
    i = start
    s = 0
    while i < stop:
        s += (p[i] << 8) | p[i + 1]
        i += 2
    if n & 1:
        s += p[stop] << 8
    # Fold here: viper ints are machine words, the caller's acc is a small int.
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return acc + s
