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


@micropython.viper
def _copy_bytes(dst, doff: int, src, soff: int, n: int):
    """copy_viper's odd case, a byte at a time (tcp_out cannot fall back to a slice)."""
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[doff + i] = s[soff + i]
        i += 1


# tcp.py's field indices (TCB.v, an array of 32-bit ints) that tcp_out uses: constants
# must be in this file for viper to fold them; host_tests/test_units.py checks them.
_STATE = const(0)
_SND_HI = const(7)
_SND_LO = const(8)
_RCV_HI = const(9)
_RCV_LO = const(10)
_SND_UNA = const(11)
_SND_NXT = const(12)
_SND_MAX = const(13)
_SND_WND = const(14)
_MAX_SND_WND = const(15)
_SND_MSS = const(18)
_FIN_SEQ = const(19)
_RCV_NXT = const(20)
_RCV_ADV = const(21)
_RX_UNACKED = const(24)
_ACK_NOW = const(25)
_REXMIT_AT = const(28)
_PERSIST_AT = const(29)
_ACK_AT = const(30)
_RTO_MS = const(36)
_RTT_AT = const(39)
_RTT_SEQ = const(40)
_CWND = const(41)
_NODELAY = const(46)
_RX_COUNT = const(49)
_RX_SIZE = const(50)
_TX_HEAD = const(51)
_TX_COUNT = const(52)
_TX_SIZE = const(53)
_ORPHAN = const(2)
_SND_WL1 = const(16)
_SND_WL2 = const(17)
_RD_SHUT = const(23)
_KEEPALIVE_AT = const(32)
_RETRIES = const(33)
_PERSIST_SHIFT = const(34)
_KEEPALIVE_SENT = const(35)
_SRTT_MS = const(37)
_RTTVAR_MS = const(38)
_SSTHRESH = const(42)
_DUPACKS = const(43)
_IN_RECOVERY = const(45)
_RX_HEAD = const(48)
_SOFT_ERR = const(54)
_INDEX = const(57)
_ASM = const(58)
# iface.py Stack.knobs, what of the stack's configuration tcp_predict reads.
_K_MSS = const(0)
_K_ACK_DELAY = const(1)
_K_RTO_MIN = const(2)
_K_RTO_MAX = const(3)
_K_RTO_INITIAL = const(4)
_K_KEEPALIVE = const(5)
_K_IP_OFF = const(6)
_K_IDENT = const(7)


@micropython.viper
def _emit_seg(v, buf, ip: int, hdrs, h: int, txb, n: int, flags: int, ident: int, smss: int):
    """tcp_out's second half (a function of its own, see tcp4_in): the segment at snd_nxt
    with n bytes of payload, written whole to buf[ip:], as tcp.py _emit writes it."""
    f = ptr32(v)
    # _emit: the prepared headers, 16 halfwords (buf[ip + 8] is even on every link).
    d = ptr16(int(ptr8(buf)) + ip + 8)
    s = ptr16(int(ptr8(hdrs)) + h)
    d[0] = s[0]
    d[1] = s[1]
    d[2] = s[2]
    d[3] = s[3]
    d[4] = s[4]
    d[5] = s[5]
    d[6] = s[6]
    d[7] = s[7]
    d[8] = s[8]
    d[9] = s[9]
    d[10] = s[10]
    d[11] = s[11]
    d[12] = s[12]
    d[13] = s[13]
    d[14] = s[14]
    d[15] = s[15]
    f[_ACK_NOW] = 0
    f[_ACK_AT] = -1
    f[_RX_UNACKED] = 0
    # The window to advertise, receiver SWS avoidance (tcp.py _rcv_window).
    size = f[_RX_SIZE]
    free = size - f[_RX_COUNT]
    if free > 65535:
        free = 65535
    rn = f[_RCV_NXT]
    edge = rn + free
    step = size >> 1
    if step > smss:
        step = smss
    adv = f[_RCV_ADV]
    if not (edge < adv + step and adv > rn) and edge > adv:
        adv = edge
        f[_RCV_ADV] = adv
    if n:
        # The payload, from the send ring at nxt (ringbuf.copy_out).
        size = f[_TX_SIZE]
        start = f[_TX_HEAD] + (f[_SND_NXT] - f[_SND_UNA])
        if start >= size:
            start -= size
        first = size - start
        if first > n:
            first = n
        at = ip + 40
        if not copy_viper(buf, at, txb, start, first):
            _copy_bytes(buf, at, txb, start, first)  # an odd address
        if first < n and not copy_viper(buf, at + first, txb, 0, n - first):
            _copy_bytes(buf, at + first, txb, 0, n - first)
    tcp4_out(buf, ip, 40 + n, ident, f[_SND_HI], f[_SND_LO], f[_SND_NXT], f[_RCV_HI],
             f[_RCV_LO], rn, flags, adv - rn)


@micropython.viper
def tcp_out(v, buf, hdrs, txb, now: int, force: int, knobs) -> int:
    """One turn of tcp.py TCB.output's send loop, and what _emit does with it, for an
    ESTABLISHED or CLOSE-WAIT connection sending new data (no FIN due, snd_nxt at
    snd_max, its prepared headers made); tcp.py keeps the Python for everything else
    and for ports without viper (tests compare the two).

    The next segment (data within both windows, Nagle and sender SWS avoidance; else a
    bare ACK if one is asked for) is written to the stack's txbuf (buf) whole: the
    prepared headers (hdrs, tcp.py _emit), the payload from the send ring txb, then
    port.tcp4_out, with the next IPv4 ID; the TCB's fields (v) are updated as _emit and
    output() update them. Returns -1: not this case (nor an offset due for rebasing),
    nothing done; 0: nothing to send (the persist timer armed if output() would arm it);
    else the IPv4 length, plus 0x10000 if another turn may send more, plus 0x20000 if
    `force` was used up. now is a tick (port.py: period 2**30); knobs: iface.py's."""
    f = ptr32(v)
    # A field that may be negative (tcp.OFF, -1) is tested by its sign bit: a 64-bit port
    # (unix) loads 32 bits without extending the sign. Wide constants are computed, never
    # written: 1 << 31 would be a Python object on 32-bit ports, and the armv6m emitter
    # loads a constant wider than 16 bits from a literal word next to the code, read
    # 2 bytes off where frozen code is not 4-byte aligned (mpy-tool aligns armv6m code to
    # 2): 0x3FFFFFFF read as 0xFFFFE001 on the Cortex-M0 board
    # (host_tests/test_mpy_cross.py checks for such loads).
    one = 1
    neg = one << 31
    tmask = (one << 30) - 1  # ticks wrap at 2**30 (port.py); not a literal (tcp_out)
    state = f[_STATE]
    if (state != 4 and state != 7) or not (f[_FIN_SEQ] & neg) or f[_SND_NXT] != f[_SND_MAX]:
        return -1  # ESTABLISHED and CLOSE_WAIT (tcp.py); FIN and resending: Python
    if int(f[_SND_UNA]) >= 1 << 27 or int(f[_RCV_NXT]) >= 1 << 27:
        return -1  # an offset at seq.REBASE_AT: output() moves its base first
    h = int(f[_INDEX]) << 5
    if not ptr8(hdrs)[h]:
        return -1  # the prepared headers are not made yet (_make_hdr)
    k = ptr32(knobs)
    una = f[_SND_UNA]
    nxt = f[_SND_NXT]
    tx = f[_TX_COUNT]
    mss = int(f[_SND_MSS])
    if mss > int(k[_K_MSS]):
        mss = int(k[_K_MSS])  # never more than txbuf holds (tcp.py caps it so already)
    avail = tx - (nxt - una)
    if avail < 0:
        avail = 0
    wnd = f[_SND_WND]
    if f[_CWND] < wnd:
        wnd = f[_CWND]
    usable = una + wnd - nxt
    n = avail if avail < mss else mss
    if n > usable:
        n = usable if usable > 0 else 0
    used = 0
    if n and n < mss:
        if n < avail:
            if n < (f[_MAX_SND_WND] >> 1) and not force:
                n = 0  # sender SWS avoidance (RFC 1122 4.2.3.4)
            else:
                used = 0x20000
        elif nxt != una and not f[_NODELAY]:
            n = 0  # Nagle
    if n == 0:
        # output()'s persist timer: data waiting, nothing in flight, nothing sent.
        if avail and nxt == una and f[_REXMIT_AT] & f[_PERSIST_AT] & neg:
            f[_PERSIST_AT] = (now + f[_RTO_MS]) & tmask
        if not f[_ACK_NOW]:
            return 0
        flags = 0x10  # a bare ACK
    elif n == avail:
        flags = 0x18  # ACK, PSH: the last of what is queued
    else:
        flags = 0x10
    ident = (int(k[_K_IDENT]) + 1) & 0xFFFF
    k[_K_IDENT] = ident
    _emit_seg(v, buf, int(k[_K_IP_OFF]), hdrs, h, txb, n, flags, ident, int(k[_K_MSS]))
    if n:
        if f[_RTT_AT] & neg:
            f[_RTT_AT] = now  # time this segment (new data: nxt is snd_max)
            f[_RTT_SEQ] = nxt
        nxt += n
        f[_SND_NXT] = nxt
        f[_SND_MAX] = nxt
        if f[_REXMIT_AT] & neg:
            f[_REXMIT_AT] = (now + f[_RTO_MS]) & tmask
        if n != avail:
            return 40 + n + 0x10000 + used
    return 40 + n + used


@micropython.viper
def _rto(v, knobs):
    """tcp.py TCB._rto_from_srtt."""
    f = ptr32(v)
    k = ptr32(knobs)
    srtt = int(f[_SRTT_MS])
    if not srtt:
        f[_RTO_MS] = k[_K_RTO_INITIAL]
        return
    var4 = int(f[_RTTVAR_MS]) << 2
    rto = srtt + (var4 if var4 > 1 else 1)
    if rto < int(k[_K_RTO_MIN]):
        rto = int(k[_K_RTO_MIN])
    elif rto > int(k[_K_RTO_MAX]):
        rto = int(k[_K_RTO_MAX])
    f[_RTO_MS] = rto


@micropython.viper
def _ack_in(v, sq: int, ack: int, wnd: int, now: int, knobs):
    """tcp.py TCB._process_ack for a pure ACK of new data outside fast recovery (what
    header prediction lets through), with _rtt_sample and _rto_from_srtt."""
    f = ptr32(v)
    one = 1
    neg = one << 31  # the sign bit (see tcp_out); a field may be negative after rebasing
    tmask = (one << 30) - 1  # ticks wrap at 2**30 (port.py); not a literal (tcp_out)
    wrap = neg << 1  # 2**32 on a 64-bit port, 0 on a 32-bit one: sign extension below
    mss = int(f[_SND_MSS])
    acked = ack - int(f[_SND_UNA])
    tx = int(f[_TX_COUNT])
    data = acked if acked < tx else tx  # the rest acknowledges our FIN
    head = int(f[_TX_HEAD]) + data
    if head >= int(f[_TX_SIZE]):
        head -= int(f[_TX_SIZE])
    f[_TX_HEAD] = head
    f[_TX_COUNT] = tx - data
    f[_SND_UNA] = ack
    if int(f[_SND_NXT]) < ack:
        f[_SND_NXT] = ack
    at = int(f[_RTT_AT])
    rs = int(f[_RTT_SEQ])
    if rs & neg:
        rs -= wrap
    if not (at & neg) and ack > rs:
        # An RTT sample (RFC 6298): port.ticks_diff(now, at) with the period 2**30.
        r = ((now - at + 0x20000000) & tmask) - 0x20000000
        f[_RTT_AT] = -1
        if r < 1:
            r = 1
        srtt = int(f[_SRTT_MS])
        if not srtt:
            f[_SRTT_MS] = r
            f[_RTTVAR_MS] = r >> 1
        else:
            d = srtt - r
            if d < 0:
                d = -d
            f[_RTTVAR_MS] = (3 * int(f[_RTTVAR_MS]) + d) >> 2
            f[_SRTT_MS] = (7 * srtt + r) >> 3
        _rto(v, knobs)
    if f[_RETRIES]:
        f[_RETRIES] = 0
        _rto(v, knobs)
    f[_PERSIST_SHIFT] = 0
    f[_SOFT_ERR] = 0
    # Congestion control (RFC 5681): slow start, else congestion avoidance.
    cwnd = int(f[_CWND])
    if cwnd < int(f[_SSTHRESH]):
        cwnd += acked if acked < mss else mss
    elif cwnd > 0:
        inc = mss * mss // cwnd
        cwnd += inc if inc else 1
    if cwnd > 65535:
        cwnd = 65535
    f[_CWND] = cwnd
    f[_DUPACKS] = 0
    if ack >= int(f[_SND_MAX]):
        f[_REXMIT_AT] = -1
    else:
        f[_REXMIT_AT] = (now + int(f[_RTO_MS])) & tmask
    # Window update, only from a newer segment or a newer ACK of the same (RFC 9293).
    wl1 = int(f[_SND_WL1])
    if wl1 & neg:
        wl1 -= wrap
    wl2 = int(f[_SND_WL2])
    if wl2 & neg:
        wl2 -= wrap
    if wl1 < sq or (wl1 == sq and wl2 <= ack):
        opened = f[_SND_WND] == 0 and wnd > 0
        f[_SND_WND] = wnd
        f[_SND_WL1] = sq
        f[_SND_WL2] = ack
        if wnd > int(f[_MAX_SND_WND]):
            f[_MAX_SND_WND] = wnd
        if opened:
            f[_PERSIST_AT] = -1
            f[_PERSIST_SHIFT] = 0
    if not (f[_PERSIST_AT] & neg) and not f[_ORPHAN]:
        f[_RETRIES] = 0


@micropython.viper
def tcp_predict(v, sg, rxbuf, rxb, now: int, knobs) -> int:
    """tcp.py TCB.predicted in native code, for a segment tcp4_in took in (sg): a pure ACK
    of new data, or the next data in order into the receive ring rxb from rxbuf. 0: not
    one of these, nothing changed (process() takes it); 2: done; 1: done, a pure ACK
    after which output() has nothing to send (all that is queued is in flight, no ACK
    or FIN due) and no deadline came nearer (it only moves the retransmission timer
    later or stops it), so poll() need not look at the connection."""
    f = ptr32(v)
    s = ptr32(sg)
    k = ptr32(knobs)
    one = 1
    neg = one << 31
    tmask = (one << 30) - 1  # ticks wrap at 2**30 (port.py); not a literal (tcp_out)
    wrap = neg << 1
    sq = int(s[0])  # offsets, negative when old (seq.FAR): the sign extended (_ack_in)
    if sq & neg:
        sq -= wrap
    ack = int(s[1])
    if ack & neg:
        ack -= wrap
    dlen = int(s[5])
    if f[_STATE] != 4 or (s[2] & 0x37) != 0x10 or sq != int(f[_RCV_NXT]):
        return 0  # not ESTABLISHED; a flag other than ACK and PSH; not in order
    una = int(f[_SND_UNA])
    if dlen == 0:
        if ack <= una or ack > int(f[_SND_MAX]) or f[_IN_RECOVERY]:
            return 0
        _ack_in(v, sq, ack, int(s[3]), now, knobs)
        done = 1
        if (int(f[_TX_COUNT]) > int(f[_SND_NXT]) - int(f[_SND_UNA]) or f[_ACK_NOW]
                or not (f[_FIN_SEQ] & neg)):
            done = 2
    elif (ack == una and s[3] == f[_SND_WND] and not f[_ASM] and dlen <= int(f[_RCV_ADV]) - sq
          and not f[_ORPHAN] and not f[_RD_SHUT]):
        # The next data in order, into the ring (ringbuf.write_from), as far as it fits.
        count = int(f[_RX_COUNT])
        size = int(f[_RX_SIZE])
        got = size - count
        if dlen < got:
            got = dlen
        if got > 0:
            start = int(f[_RX_HEAD]) + count
            if start >= size:
                start -= size
            first = size - start
            if first > got:
                first = got
            at = int(s[4])
            if not copy_viper(rxb, start, rxbuf, at, first):
                _copy_bytes(rxb, start, rxbuf, at, first)  # an odd address
            if first < got and not copy_viper(rxb, 0, rxbuf, at + first, got - first):
                _copy_bytes(rxb, 0, rxbuf, at + first, got - first)
        else:
            got = 0
        f[_RX_COUNT] = count + got
        f[_RCV_NXT] = sq + got
        f[_SND_WL1] = sq
        f[_SND_WL2] = ack
        unacked = int(f[_RX_UNACKED]) + got
        f[_RX_UNACKED] = unacked
        # Delayed ACK (tcp.py _schedule_ack).
        if unacked >= int(k[_K_MSS]) << 1:
            f[_ACK_NOW] = 1
        elif f[_ACK_AT] & neg:
            f[_ACK_AT] = (now + int(k[_K_ACK_DELAY])) & tmask
        done = 2
    else:
        return 0
    f[_KEEPALIVE_SENT] = 0
    if not (f[_KEEPALIVE_AT] & neg):
        f[_KEEPALIVE_AT] = (now + int(k[_K_KEEPALIVE])) & tmask
    return done
