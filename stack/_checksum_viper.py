# Viper checksum kernel for MicroPython ports with a native emitter (unix, ESP32, RP2040).
# SPDX-License-Identifier: MIT
#
# Only port.py imports this, inside try/except: ports without viper (WebAssembly) reject
# the decorator at import time and keep the plain loop. Compile with mpy-cross -march=...
#
# It sums the buffer as 32-bit words in the machine's byte order (little-endian on every
# board we target), two 16-bit halves per load, then swaps the folded sum back: the ones'-
# complement sum does not depend on byte order (RFC 1071 section 2(B)). One load per four
# bytes instead of two per two: about twice as fast as the byte loop. Word loads must be
# aligned on Cortex-M0+ and Xtensa, so the kernel steps to a 4-byte boundary first and
# falls back to bytes when the start address is odd. port.py checks the result against the
# plain loop at import and keeps the plain loop if they ever disagree (a big-endian port).


import micropython


@micropython.viper
def checksum_viper(buf, start: int, end: int, acc: int) -> int:
    p = ptr8(buf)
    a = int(p) + start
    n = end - start
    s = 0
    if a & 1 == 0:
        if a & 2 and n >= 2:  # one 16-bit word to reach a 4-byte boundary
            s += ptr16(a)[0]
            a += 2
            n -= 2
        q = ptr32(a)
        m = n >> 2
        i = 0
        # Each half is below 2**16 and a frame has under 2**14 words: s stays below 2**31.
        while i < m:
            w = q[i]
            s += (w & 0xFFFF) + ((w >> 16) & 0xFFFF)
            i += 1
        r = a + (m << 2)
        if n & 2:
            s += ptr16(r)[0]
            r += 2
        if n & 1:
            s += ptr8(r)[0]  # the odd last byte: the high byte of a word on the wire
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        s = ((s & 0xFF) << 8) | (s >> 8)  # back to network byte order
    else:
        stop = start + (n & ~1)
        i = start
        while i < stop:
            s += (p[i] << 8) | p[i + 1]
            i += 2
        if n & 1:
            s += p[stop] << 8
        # Fold here: viper ints are machine words, the caller's acc is a small int.
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
    return acc + s
