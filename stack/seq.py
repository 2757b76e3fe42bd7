# Sequence numbers: 32-bit wire values kept as small relative integers.
# SPDX-License-Identifier: MIT
#
# On 32-bit MicroPython a small int has 31 bits: a 32-bit sequence number would be a heap
# object, and every `seq + len` would allocate. So a TCB never holds wire sequence numbers.
# Each direction has a *base* (a wire value held as two 16-bit halves, hi and lo) and every
# sequence variable is an offset from it:
#
#     wire = base + rel  (mod 2**32)
#
# At the handshake the send base is ISS and the receive base is IRS, so the SYN is rel 0 and
# the first data byte rel 1. When snd_una (or rcv_nxt) passes REBASE_AT the TCB moves the
# base forward by REBASE_AT and subtracts it from every offset of that direction, so offsets
# stay within +-2**28 and never wrap. That is why offsets may be compared with a bare `<`:
# "seq_lt(a, b)" of RFC 9293 is exactly `a < b` here, and `a + n` never overflows.
#
# Example: ISS = 0xFFFFFF00. After sending 0x200 bytes, snd_nxt is rel 0x201 and the wire
# value is 0x00000101; no integer above 2**29 was ever made.

from micropython import const

REBASE_AT = const(1 << 27)
_REBASE_HI = const((1 << 27) >> 16)
# Offsets of a wire value more than 2**28 from the base are "far": not in any window.
# FAR is older than any real offset, so every acceptability test rejects it.
FAR = const(-(1 << 29))


def from_wire(buf, off, base_hi, base_lo):
    """The offset from base of the big-endian sequence number at buf[off:off+4], or FAR."""
    dhi = ((buf[off] << 8) | buf[off + 1]) - base_hi
    dlo = ((buf[off + 2] << 8) | buf[off + 3]) - base_lo
    if dlo < 0:
        dlo += 0x10000
        dhi -= 1
    dhi &= 0xFFFF
    if dhi < 0x1000:  # 0 <= diff < 2**28
        return (dhi << 16) | dlo
    if dhi >= 0xF000:  # -2**28 <= diff < 0
        return ((dhi - 0x10000) << 16) + dlo
    return FAR


def to_wire(buf, off, base_hi, base_lo, rel):
    """Write base + rel (mod 2**32) big-endian at buf[off:off+4]."""
    lo = base_lo + (rel & 0xFFFF)
    hi = (base_hi + (rel >> 16) + (lo >> 16)) & 0xFFFF
    buf[off] = hi >> 8
    buf[off + 1] = hi & 0xFF
    buf[off + 2] = (lo >> 8) & 0xFF
    buf[off + 3] = lo & 0xFF


def add_halves(hi, lo, rel):
    """(hi, lo) of the wire value (hi, lo) + rel; rel may be negative."""
    lo += rel & 0xFFFF
    hi = (hi + (rel >> 16) + (lo >> 16)) & 0xFFFF
    return hi, lo & 0xFFFF


def wire_after(hi, lo, ref_hi, ref_lo):
    """True if wire value (hi, lo) is after (ref_hi, ref_lo) in modulo-2**32 order.

    Used where two connections meet (a SYN against a TIME-WAIT record), so the offsets of
    one TCB do not apply.
    """
    dlo = lo - ref_lo
    dhi = hi - ref_hi
    if dlo < 0:
        dlo += 0x10000
        dhi -= 1
    dhi &= 0xFFFF
    return dhi < 0x8000 and (dhi or dlo) != 0


def halves(value):
    """(hi, lo) of a 32-bit integer (set-up only: the integer may be a heap object)."""
    return (value >> 16) & 0xFFFF, value & 0xFFFF


def to_int(hi, lo):
    """The 32-bit integer of (hi, lo): for display and tests, never on the data path."""
    return (hi << 16) | lo
