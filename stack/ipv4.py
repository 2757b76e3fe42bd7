# IPv4: header checks on input, header building on output. No fragments, no options out.
# SPDX-License-Identifier: MIT
#
# Addresses are held as two 16-bit halves (hi, lo) so comparing them never allocates on a
# 32-bit board; aton()/ntoa() convert at the API edge.

from micropython import const

from . import port

PROTO_ICMP = const(1)
PROTO_TCP = const(6)
PROTO_UDP = const(17)
HEADER_LEN = const(20)
_TTL = const(64)
_FLAG_DF = const(0x40)


def aton(text):
    """'10.0.0.2' -> b'\\n\\x00\\x00\\x02'; ValueError with the text if it is not one."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % (text,))
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p or not p.isdigit() or int(p) > 255:
            raise ValueError("not an IPv4 address: %r" % (text,))
        out[i] = int(p)
    return bytes(out)


def ntoa(hi, lo):
    return "%d.%d.%d.%d" % (hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF)


def halves_of(addr4):
    return (addr4[0] << 8) | addr4[1], (addr4[2] << 8) | addr4[3]


def is_broadcast(hi, lo, ip_hi, ip_lo, mask_hi, mask_lo):
    """255.255.255.255, or the directed broadcast of our prefix (none on /31 and /32, whose
    every address is a host: RFC 3021)."""
    if hi == 0xFFFF and lo == 0xFFFF:
        return True
    # A /31 or /32 mask has bit 1 set: no directed broadcast.
    return (not (mask_lo & 2) and (hi | mask_hi) == 0xFFFF and (lo | mask_lo) == 0xFFFF
            and not ((hi ^ ip_hi) & mask_hi) and not ((lo ^ ip_lo) & mask_lo))


def martian(hi, lo, ip_hi, ip_lo, mask_hi, mask_lo):
    """True if hi.lo can be no neighbour's source address (RFC 1812 5.3.7, RFC 1122 3.2.1.3):
    0/8 ("this network"), 127/8 (loopback), 224/4 (multicast), 240/4 (reserved, and with it
    255.255.255.255), the directed broadcast of our prefix, or our own address (ip_hi.ip_lo).

    Compares 16-bit halves: no allocation on any board.
    """
    a = hi >> 8
    if a == 0 or a == 127 or a >= 224:
        return True
    if hi == ip_hi and lo == ip_lo:
        return True
    return is_broadcast(hi, lo, ip_hi, ip_lo, mask_hi, mask_lo)


def check(buf, ip, n, stats):
    """Validate the IPv4 header at buf[ip:ip+n]; return the header length or 0 to drop.

    Counts what it drops: bad version, length or checksum (ipInHdrErrors), fragments
    (ipReasmReqds: we do not reassemble, so they are dropped).
    """
    if n < HEADER_LEN or buf[ip] >> 4 != 4:
        stats.ipInHdrErrors += 1
        return 0
    hlen = (buf[ip] & 0x0F) * 4
    total = (buf[ip + 2] << 8) | buf[ip + 3]
    if hlen < HEADER_LEN or total < hlen or total > n:
        stats.ipInHdrErrors += 1
        return 0
    if port.fold_checksum(port.checksum(buf, ip, ip + hlen, 0)) != 0xFFFF:
        stats.ipInHdrErrors += 1
        return 0
    # More-fragments flag or a fragment offset: a fragment.
    if (buf[ip + 6] & 0x3F) or buf[ip + 7]:
        stats.ipReasmReqds += 1
        return 0
    return hlen


def total_len(buf, ip):
    return (buf[ip + 2] << 8) | buf[ip + 3]


def write_header(buf, ip, src, dst_hi, dst_lo, proto, payload_len, ident, ttl=_TTL):
    """Write a 20-byte header with DF set; src is our 4-byte address."""
    total = HEADER_LEN + payload_len
    buf[ip] = 0x45
    buf[ip + 1] = 0
    buf[ip + 2] = total >> 8
    buf[ip + 3] = total & 0xFF
    buf[ip + 4] = (ident >> 8) & 0xFF
    buf[ip + 5] = ident & 0xFF
    buf[ip + 6] = _FLAG_DF
    buf[ip + 7] = 0
    buf[ip + 8] = ttl
    buf[ip + 9] = proto
    buf[ip + 10] = 0
    buf[ip + 11] = 0
    buf[ip + 12] = src[0]
    buf[ip + 13] = src[1]
    buf[ip + 14] = src[2]
    buf[ip + 15] = src[3]
    buf[ip + 16] = dst_hi >> 8
    buf[ip + 17] = dst_hi & 0xFF
    buf[ip + 18] = dst_lo >> 8
    buf[ip + 19] = dst_lo & 0xFF
    c = 0xFFFF ^ port.fold_checksum(port.checksum(buf, ip, ip + HEADER_LEN, 0))
    buf[ip + 10] = c >> 8
    buf[ip + 11] = c & 0xFF


def pseudo_sum(buf, ip, proto, length):
    """Unfolded sum of the pseudo-header of the IPv4 packet at buf[ip:]."""
    return port.checksum(buf, ip + 12, ip + 20, proto + length)
