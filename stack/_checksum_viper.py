# Viper kernels for MicroPython ports with a native emitter (unix, ESP32, RP2040): the
# Internet checksum, the byte copy the rings use, and the checks and the finishing of a
# plain TCP segment.
# SPDX-License-Identifier: MIT
#
# Only port.py imports this, inside try/except: ports without viper (WebAssembly) reject
# the decorator at import time and keep the plain loop. Compile with mpy-cross -march=...
#
# It sums the buffer as 16-bit words in the machine's byte order (little-endian on every
# board we target), then swaps the folded sum back: the ones'-complement sum does not
# depend on byte order (RFC 1071 section 2(B)). Halfword loads must be aligned on
# Cortex-M0+ and Xtensa, so the kernel falls back to bytes when the start address is odd.
# port.py checks the result against the plain loop at import and keeps the plain loop if
# they ever disagree (a big-endian port).


import micropython


@micropython.viper
def checksum_viper(buf, start: int, end: int, acc: int) -> int:
    p = ptr8(buf)
    a = int(p) + start
    n = end - start
    s = 0
    if a & 1 == 0:
        # 16 halfwords a turn at constant offsets from one pointer: on the Cortex-M0 (armv6m
        # viper) that is 4.2 k instructions per 1460 bytes, against 17.8 k for a loop of
        # indexed 32-bit loads split into halves, and 21.8 k for one halfword a turn.
        # Each turn adds under 2**20 and a frame has under 2**11 turns: s stays a small int.
        e = a + (n & ~31)
        while a < e:
            q = ptr16(a)
            s += (q[0] + q[1] + q[2] + q[3] + q[4] + q[5] + q[6] + q[7] + q[8] + q[9]
                  + q[10] + q[11] + q[12] + q[13] + q[14] + q[15])
            a += 32
        e = a + (n & 30)
        while a < e:
            s += ptr16(a)[0]
            a += 2
        if n & 1:
            s += ptr8(a)[0]  # the odd last byte: the high byte of a word on the wire
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


@micropython.viper
def copy_viper(dst, doff: int, src, soff: int, n: int) -> int:
    """dst[doff:doff + n] = src[soff:soff + n] when both start at even addresses: 1; else
    0 and nothing copied (the caller copies by slice; the ranges must not overlap).

    16 halfwords a turn, as the checksum: 7 k instructions per 1460 bytes on the Cortex-M0
    against 12 k for a slice assignment of two memoryview slices (which also allocate).
    """
    d = int(ptr8(dst)) + doff
    s = int(ptr8(src)) + soff
    if (d | s) & 1:
        return 0
    e = s + (n & ~31)
    while s < e:
        qs = ptr16(s)
        qd = ptr16(d)
        qd[0] = qs[0]
        qd[1] = qs[1]
        qd[2] = qs[2]
        qd[3] = qs[3]
        qd[4] = qs[4]
        qd[5] = qs[5]
        qd[6] = qs[6]
        qd[7] = qs[7]
        qd[8] = qs[8]
        qd[9] = qs[9]
        qd[10] = qs[10]
        qd[11] = qs[11]
        qd[12] = qs[12]
        qd[13] = qs[13]
        qd[14] = qs[14]
        qd[15] = qs[15]
        s += 32
        d += 32
    e = s + (n & 30)
    while s < e:
        ptr16(d)[0] = ptr16(s)[0]
        s += 2
        d += 2
    if n & 1:
        ptr8(d)[0] = ptr8(s)[0]
    return 1


@micropython.viper
def _plain_tcp4(buf, ip: int, n: int, me) -> int:
    """tcp4_in's checks (see there): 1 if they all pass, else 0. A function of its own
    to keep each under 2 KB of armv6m code (see tcp4_in)."""
    p = ptr8(buf)
    # Differences OR-ed together, one branch each: every branch out costs 8 bytes on
    # armv6m, and this function must stay under 2 KB (see tcp4_in).
    m = ptr8(me)
    if ip == 14:
        if ((p[0] ^ m[0]) | (p[1] ^ m[1]) | (p[2] ^ m[2]) | (p[3] ^ m[3]) | (p[4] ^ m[4])
                | (p[5] ^ m[5]) | (p[12] ^ 8) | p[13]):
            return 0
    if n - ip < 40:
        return 0
    if (p[ip] ^ 0x45) | (p[ip + 9] ^ 6) | (p[ip + 6] & 0x3F) | p[ip + 7]:
        return 0
    total = (p[ip + 2] << 8) | p[ip + 3]
    if total < 40 or total > n - ip:
        return 0
    if (((p[ip + 16] ^ m[6]) | (p[ip + 17] ^ m[7]) | (p[ip + 18] ^ m[8]) | (p[ip + 19] ^ m[9]))
            or not (m[6] | m[7] | m[8] | m[9])):
        return 0
    a = p[ip + 12]
    mask_lo = (m[10] << 8) | m[11]
    if a == 0 or a == 127 or a >= 224 or (((p[ip + 14] << 8) | p[ip + 15]) | mask_lo) == 0xFFFF:
        return 0
    if not ((a ^ m[6]) | (p[ip + 13] ^ m[7]) | (p[ip + 14] ^ m[8]) | (p[ip + 15] ^ m[9])):
        return 0
    t = ip + 20
    hlen = (p[t + 12] >> 4) << 2
    if hlen < 20 or hlen > total - 20:
        return 0
    # Both checksums: the IPv4 header alone, then the pseudo-header's addresses (right
    # before the TCP header) with the segment, plus protocol and TCP length.
    if int(checksum_viper(buf, ip, t, 0)) != 0xFFFF:
        return 0
    c = int(checksum_viper(buf, ip + 12, ip + total, 6 + total - 20))
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    return 1 if c == 0xFFFF else 0


@micropython.viper
def tcp4_in(buf, ip: int, n: int, me, keys, sg) -> int:
    """The common TCP segment, taken in in native code (iface.py process_frame).

    -2: not the common case; every check goes the long way in Python, which also counts
    what it drops. Otherwise every check passed: on Ethernet (ip 14) a frame to our MAC of
    type IPv4; a 20-byte IPv4 header with a good checksum, no fragment, TCP, to our address
    (not 0.0.0.0), from a source that is plainly no martian (first octet not 0, 127 or 224
    and up, not our address, not all ones in our mask's host bits), a TCP header length
    within the segment, and a good TCP checksum. `me` (iface.py Stack.me, 12 bytes): our
    MAC, address and the low half of our mask, big-endian. Then -1: no
    connection in `keys` (tcp.py TCB._key: KEY_STRIDE halfwords each) has its 4-tuple;
    else that connection's index, with sg (an array of 6 'i') filled in, in this order:
    the sequence and acknowledgment numbers as offsets from its bases (seq.from_wire,
    FAR when far), flags, window, payload offset and length.

    Two functions, each under 2 KB of armv6m code: a longer one needs Thumb-1's long jump,
    a PC-relative load that assumes 4-byte aligned code; frozen code is not always
    aligned so, and the Cortex-M0 board jumped into nowhere (compiled on the board, the
    same code ran).
    """
    if not int(_plain_tcp4(buf, ip, n, me)):
        return -2
    p = ptr8(buf)
    t = ip + 20
    hlen = (p[t + 12] >> 4) << 2
    total = (p[ip + 2] << 8) | p[ip + 3]
    rlo = (p[ip + 14] << 8) | p[ip + 15]
    rhi = (p[ip + 12] << 8) | p[ip + 13]
    # Demultiplex: the remote port first, it differs between most connections.
    sport = (p[t] << 8) | p[t + 1]
    dport = (p[t + 2] << 8) | p[t + 3]
    k = ptr16(keys)
    end = int(len(keys))
    i = 0
    index = 0
    while i < end:
        if (k[i + 1] == sport and k[i] and k[i + 2] == dport and k[i + 3] == rlo
                and k[i + 4] == rhi):
            break
        i += 10
        index += 1
    if i >= end:
        return -1
    s = ptr32(sg)
    # seq.from_wire, twice: against the receive base, then the send base.
    j = 5
    w = t + 4
    while j < 9:
        dhi = ((p[w] << 8) | p[w + 1]) - k[i + j]
        dlo = ((p[w + 2] << 8) | p[w + 3]) - k[i + j + 1]
        if dlo < 0:
            dlo += 0x10000
            dhi -= 1
        dhi &= 0xFFFF
        if dhi < 0x1000:
            r = (dhi << 16) | dlo
        elif dhi >= 0xF000:
            r = ((dhi - 0x10000) << 16) + dlo
        else:
            r = -(1 << 29)  # seq.FAR
        s[(j - 5) >> 1] = r
        j += 2
        w += 4
    s[2] = p[t + 13] & 0x3F
    s[3] = (p[t + 14] << 8) | p[t + 15]
    s[4] = t + hlen
    s[5] = total - 20 - hlen
    return index


@micropython.viper
def tcp4_out(buf, ip: int, total: int, ident: int, shi: int, slo: int, srel: int, rhi: int,
             rlo: int, rrel: int, flags: int, wnd: int):
    """Finish the TCP segment at buf[ip:ip + total] (headers from tcp.py's template, payload
    in place): IPv4 length, ID, DF and checksum; sequence number (base shi.slo + srel),
    acknowledgment number (rhi.rlo + rrel, if flags has ACK), flags, window, TCP checksum.
    tcp.py's _finish_plain() does the same in Python (tests compare them)."""
    p = ptr8(buf)
    p[ip] = 0x45
    p[ip + 1] = 0
    p[ip + 2] = total >> 8
    p[ip + 3] = total
    p[ip + 4] = ident >> 8
    p[ip + 5] = ident
    p[ip + 6] = 0x40
    p[ip + 7] = 0
    p[ip + 10] = 0
    p[ip + 11] = 0
    t = ip + 20
    lo = slo + (srel & 0xFFFF)
    hi = shi + (srel >> 16) + (lo >> 16)
    p[t + 4] = hi >> 8
    p[t + 5] = hi
    p[t + 6] = lo >> 8
    p[t + 7] = lo
    if flags & 0x10:  # ACK
        lo = rlo + (rrel & 0xFFFF)
        hi = rhi + (rrel >> 16) + (lo >> 16)
        p[t + 8] = hi >> 8
        p[t + 9] = hi
        p[t + 10] = lo >> 8
        p[t + 11] = lo
    else:
        p[t + 8] = 0
        p[t + 9] = 0
        p[t + 10] = 0
        p[t + 11] = 0
    p[t + 13] = flags
    p[t + 14] = wnd >> 8
    p[t + 15] = wnd
    p[t + 16] = 0
    p[t + 17] = 0
    c = int(checksum_viper(buf, ip, t, 0)) ^ 0xFFFF
    p[ip + 10] = c >> 8
    p[ip + 11] = c
    c = int(checksum_viper(buf, ip + 12, ip + total, total - 14))  # 6 + TCP length
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    c ^= 0xFFFF
    p[t + 16] = c >> 8
    p[t + 17] = c
