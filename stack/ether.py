# Ethernet II framing: 14-byte header, no FCS (the MAC adds and strips it).
# SPDX-License-Identifier: MIT

from micropython import const

HEADER_LEN = const(14)
TYPE_IPV4 = const(0x0800)
TYPE_ARP = const(0x0806)
BROADCAST = b"\xff\xff\xff\xff\xff\xff"


def write_header(buf, dst, src, etype):
    """dst and src are 6-byte MACs (bytes, bytearray or memoryview)."""
    buf[0:6] = dst
    buf[6:12] = src
    buf[12] = etype >> 8
    buf[13] = etype & 0xFF


def ethertype(buf):
    return (buf[12] << 8) | buf[13]


def for_us(buf, mac):
    """Unicast to our MAC, or broadcast. Multicast is not ours (no IGMP here)."""
    if buf[0] & 1:
        return (buf[0] & buf[1] & buf[2] & buf[3] & buf[4] & buf[5]) == 0xFF
    return (buf[0] == mac[0] and buf[1] == mac[1] and buf[2] == mac[2]
            and buf[3] == mac[3] and buf[4] == mac[4] and buf[5] == mac[5])


def multicast_mac(hi, lo):
    """01:00:5e and the low 23 bits of the group hi.lo (RFC 1112 6.4). Allocates: cold path."""
    return bytes((0x01, 0x00, 0x5E, hi & 0x7F, lo >> 8, lo & 0xFF))


def mac_text(mac):
    return ":".join("%02x" % b for b in mac)
