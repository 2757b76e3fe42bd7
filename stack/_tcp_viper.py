# Viper kernels for a connection's common segments, on its fields (tcp.py TCB.v, an array of
# 32-bit ints): output()'s turn for new data or a bare ACK (tcp_out) and header prediction
# (tcp_predict), each the Python's common case done natively.
# SPDX-License-Identifier: MIT
#
# Only port.py imports this, inside try/except, as _checksum_viper.py: ports without viper
# keep the Python, and so does a board whose files leave this one out (from .mpy files or
# ROMFS its native code is about 8 KB of heap; without it a segment costs the Cortex-M0 a
# third more instructions in and half again out).
# The Python stays the reference: host_tests/test_tcp_hostile.py TestNativeOutput compares
# the two, segment for segment and field for field.
#
# Traps met on the emulated boards, kept out here (host_tests/test_mpy_cross.py checks the
# last two): a 64-bit port loads 32 bits without extending the sign, so a field that may be
# negative (tcp.OFF, offsets after rebasing) is tested by its sign bit; frozen armv6m code
# is aligned to 2 bytes only, while the emitter loads constants wider than 16 bits and jumps
# farther than 2 KB PC-relative assuming 4: such constants are computed, functions short.

import micropython
from micropython import const

from ._checksum_viper import copy_viper, tcp4_out


@micropython.viper
def _copy_bytes(dst, doff: int, src, soff: int, n: int):
    """copy_viper's odd case, a byte at a time (tcp_out cannot fall back to a slice)."""
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[doff + i] = s[soff + i]
        i += 1


# tcp.py's field indices (TCB.v) used below: viper folds only constants of its own file;
# host_tests/test_mpy_cross.py checks them against tcp.py.
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
    """tcp_out's second half (a function of its own: see the header): the segment at snd_nxt
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
