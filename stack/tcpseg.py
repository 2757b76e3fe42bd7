# TCP segment codec: read a header in place, write one in place. No state here.
# SPDX-License-Identifier: MIT
#
# Input is parsed into one preallocated Segment by indexing (struct.unpack_from would
# allocate a tuple per segment on MicroPython). Sequence and acknowledgment numbers are not
# decoded here: only a TCB knows the base they are relative to (see seq.py), so it reads
# them from buf at t + 4 and t + 8.

from micropython import const

from . import ipv4, port

FIN = const(0x01)
SYN = const(0x02)
RST = const(0x04)
PSH = const(0x08)
ACK = const(0x10)
URG = const(0x20)

HEADER_LEN = const(20)
OPT_MSS = const(2)
SEQ_OFF = const(4)
ACK_OFF = const(8)


def flag_names(flags):
    """'SYN,ACK' style, for logs and traces (RFC 793 figures write CTL=SYN,ACK)."""
    out = []
    for bit, name in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
                      (URG, "URG")):
        if flags & bit:
            out.append(name)
    return ",".join(out)


class Segment:
    """The segment being processed. One per stack, overwritten by every parse()."""

    def __init__(self):
        self.buf = None
        self.t = 0  # offset of the TCP header in buf
        self.rip_hi = 0  # source address, halves
        self.rip_lo = 0
        self.sport = 0
        self.dport = 0
        self.flags = 0
        self.wnd = 0
        self.data = 0  # offset of the payload in buf
        self.dlen = 0
        self.mss = 0  # MSS option, 0 if absent

    def parse(self, buf, ip, ip_hlen, ip_total, checked=False):
        """Fill in from the IPv4 packet at buf[ip:]; return False if malformed or corrupt.

        checked: the lengths and the checksum were verified already (port.tcp4_in)."""
        t = ip + ip_hlen
        tlen = ip_total - ip_hlen
        if not checked:
            if tlen < HEADER_LEN:
                return False
            hlen = (buf[t + 12] >> 4) * 4
            if hlen < HEADER_LEN or hlen > tlen:
                return False
            if ip_hlen == 20:
                # The pseudo-header's addresses sit right before the TCP header: one pass.
                acc = port.checksum(buf, ip + 12, t + tlen, ipv4.PROTO_TCP + tlen)
            else:
                acc = port.checksum(buf, t, t + tlen,
                                    ipv4.pseudo_sum(buf, ip, ipv4.PROTO_TCP, tlen))
            if port.fold_checksum(acc) != 0xFFFF:
                return False
        else:
            hlen = (buf[t + 12] >> 4) * 4
        self.buf = buf
        self.t = t
        self.rip_hi = (buf[ip + 12] << 8) | buf[ip + 13]
        self.rip_lo = (buf[ip + 14] << 8) | buf[ip + 15]
        self.sport = (buf[t] << 8) | buf[t + 1]
        self.dport = (buf[t + 2] << 8) | buf[t + 3]
        self.flags = buf[t + 13] & 0x3F
        self.wnd = (buf[t + 14] << 8) | buf[t + 15]
        self.data = t + hlen
        self.dlen = tlen - hlen
        self.mss = 0
        if hlen > HEADER_LEN and self.flags & SYN:
            self._parse_options(buf, t + HEADER_LEN, t + hlen)
        return True

    def _parse_options(self, buf, i, end):
        while i < end:
            kind = buf[i]
            if kind == 0:  # end of option list
                return
            if kind == 1:  # no-operation
                i += 1
                continue
            if i + 1 >= end:
                return
            size = buf[i + 1]
            if size < 2 or i + size > end:
                return  # malformed: ignore the rest
            if kind == OPT_MSS and size == 4:
                self.mss = (buf[i + 2] << 8) | buf[i + 3]
            i += size

    def seg_len(self):
        """SEG.LEN: payload plus one for each of SYN and FIN."""
        n = self.dlen
        if self.flags & SYN:
            n += 1
        if self.flags & FIN:
            n += 1
        return n


def write_header(buf, t, sport, dport, flags, wnd, mss):
    """Ports, flags, window and (if mss) the MSS option; seq/ack are written by the caller.

    Returns the header length. The checksum field is zeroed for finish().
    """
    hlen = HEADER_LEN + 4 if mss else HEADER_LEN
    buf[t] = sport >> 8
    buf[t + 1] = sport & 0xFF
    buf[t + 2] = dport >> 8
    buf[t + 3] = dport & 0xFF
    buf[t + 12] = (hlen // 4) << 4
    buf[t + 13] = flags
    buf[t + 14] = wnd >> 8
    buf[t + 15] = wnd & 0xFF
    buf[t + 16] = 0
    buf[t + 17] = 0
    buf[t + 18] = 0
    buf[t + 19] = 0
    if mss:
        buf[t + 20] = OPT_MSS
        buf[t + 21] = 4
        buf[t + 22] = mss >> 8
        buf[t + 23] = mss & 0xFF
    return hlen


def finish(buf, ip, t, tlen):
    """Fill in the TCP checksum of the segment buf[t:t+tlen] inside the packet at ip."""
    if t == ip + 20:
        # The pseudo-header's addresses sit right before the TCP header: one pass.
        acc = port.checksum(buf, ip + 12, t + tlen, ipv4.PROTO_TCP + tlen)
    else:
        acc = port.checksum(buf, t, t + tlen, ipv4.pseudo_sum(buf, ip, ipv4.PROTO_TCP, tlen))
    c = 0xFFFF ^ port.fold_checksum(acc)
    buf[t + 16] = c >> 8
    buf[t + 17] = c & 0xFF
