# Viper FIFO kernels for the LAN9118 link (stack/link/lan9118.py), for ports with a native
# emitter (the Cortex-M boards, the unix port). SPDX-License-Identifier: MIT
#
# Only lan9118.py imports this, inside try/except. A port without viper (WebAssembly) rejects
# the decorator when it compiles the file (ImportError/SyntaxError there); on CPython the
# decorator raises AttributeError below and the module imports with FAST = False, so every
# file under stack/ still imports on CPython. Compile with mpy-cross -march=... only.
#
# Why viper: machine.mem32[...] returns a Python int, and on a 32-bit board a FIFO word of
# 2**30 or more (or a negative one: mem32 reads are signed) is a heap object, so the plain
# loop allocates for about half the words of a frame. Here a word is a machine register:
# one load per 4 bytes from the FIFO port, nothing allocated. The FIFO port is one address
# (the chip pops a word per read, pushes one per write); the bytes are little-endian in the
# word (QEMU's model; the LAN9118 datasheet's default, WORD_SWAP = 0). The caller's buffer
# is written one byte at a time, so it needs no alignment (Cortex-M0 faults on unaligned
# word stores) and nothing past its first n bytes is touched.

import micropython

FAST = False
try:

    @micropython.viper
    def rx_copy(fifo: uint, buf, n: int, words: int):
        # Pop `words` FIFO words; store the first n bytes of them in buf.
        src = ptr32(fifo)
        dst = ptr8(buf)
        i = 0
        k = 0
        while k < words:
            v = src[0]
            if i + 4 <= n:
                dst[i] = v
                dst[i + 1] = v >> 8
                dst[i + 2] = v >> 16
                dst[i + 3] = v >> 24
            else:
                j = 0
                while i + j < n:
                    dst[i + j] = v >> (8 * j)
                    j += 1
            i += 4
            k += 1

    @micropython.viper
    def rx_skip(fifo: uint, words: int):
        # Pop and drop `words` FIFO words.
        src = ptr32(fifo)
        k = 0
        v = 0
        while k < words:
            v = src[0]
            k += 1

    @micropython.viper
    def tx_copy(fifo: uint, buf, n: int):
        # Push buf[:n] as little-endian words; the last word is zero-padded.
        dst = ptr32(fifo)
        src = ptr8(buf)
        i = 0
        while i + 4 <= n:
            dst[0] = src[i] | (src[i + 1] << 8) | (src[i + 2] << 16) | (src[i + 3] << 24)
            i += 4
        if i < n:
            v = 0
            s = 0
            while i < n:
                v |= src[i] << s
                s += 8
                i += 1
            dst[0] = v

    FAST = True
except (AttributeError, NameError):  # pragma: no cover - CPython: no viper
    pass
