# ICMP (RFC 792, RFC 1122 3.2.2): echo replies, unreachables for TCP, port unreachable for UDP.
# SPDX-License-Identifier: MIT
#
# A module of its own, loaded by iface.py with the first ICMP message and by udp.py with the
# first port unreachable it sends: a TCP server that is never pinged does not keep this code
# on the heap (from .mpy files every module loaded keeps all its bytecode).

from micropython import const

from . import ipv4, port, seq
from .tcp import (CLOSED, IN_USE, LPORT, RIP_HI, RIP_LO, RPORT, SND_HI, SND_LO, SND_MAX,
                  SND_UNA, SOFT_ERR, STATE, SYN_SENT)

ECHO_REPLY = const(0)
DEST_UNREACH = const(3)
ECHO_REQUEST = const(8)
CODE_PROTO_UNREACH = const(2)
CODE_PORT_UNREACH = const(3)
_UNREACH_PER_S = const(10)  # port unreachables sent at most (RFC 1812 4.3.2.8)


def process(net, ip, hlen, total, now):
    """The ICMP message in net.rxbuf[ip:ip + total]: echo requests get replies (ping
    works); unreachables reach their TCB."""
    buf = net.rxbuf
    stats = net.stats
    stats.icmpInMsgs += 1
    c = ip + hlen
    n = total - hlen
    if n < 8 or port.fold_checksum(port.checksum(buf, c, c + n, 0)) != 0xFFFF:
        stats.icmpInErrors += 1
        return
    kind = buf[c]
    if kind == ECHO_REQUEST:
        stats.icmpInEchos += 1
        # The reply is the request with type 0, sent back: copy it into txbuf.
        t = net.ip_off + ipv4.HEADER_LEN
        net.txmv[t:t + n] = net.rxmv[c:c + n]
        out = net.txbuf
        out[t] = ECHO_REPLY
        out[t + 2] = out[t + 3] = 0
        k = 0xFFFF ^ port.fold_checksum(port.checksum(out, t, t + n, 0))
        out[t + 2] = k >> 8
        out[t + 3] = k & 0xFF
        rhi = (buf[ip + 12] << 8) | buf[ip + 13]
        rlo = (buf[ip + 14] << 8) | buf[ip + 15]
        ipv4.write_header(out, net.ip_off, net.ip, rhi, rlo, ipv4.PROTO_ICMP, n,
                          net.next_ident())
        stats.icmpOutEchoReps += 1
        # Low priority: the source may be forged; its ARP must not crowd out ours.
        net.dispatch_ipv4(rhi, rlo, ipv4.HEADER_LEN + n, now, True)
    elif kind == DEST_UNREACH:
        stats.icmpInDestUnreachs += 1
        # The offending datagram follows (RFC 792): its IP header and at least the
        # first 8 bytes of its TCP header (ports and sequence number). Only a segment
        # we sent can be quoted: IPv4, a sane header length inside the message, TCP,
        # from our address, to a connection we have. The TCB then checks the quoted
        # sequence number (RFC 5927), so a forger must know more than the 4-tuple.
        e = c + 8
        ehlen = (buf[e] & 0x0F) * 4 if n >= 8 + 28 else 0
        if (ehlen < ipv4.HEADER_LEN or n < 8 + ehlen + 8 or buf[e] >> 4 != 4
                or buf[e + 9] != ipv4.PROTO_TCP
                or ((buf[e + 12] << 8) | buf[e + 13]) != net.ip_hi
                or ((buf[e + 14] << 8) | buf[e + 15]) != net.ip_lo):
            stats.icmpInBadQuotes += 1
            return
        t = e + ehlen
        lport = (buf[t] << 8) | buf[t + 1]
        rport = (buf[t + 2] << 8) | buf[t + 3]
        rhi = (buf[e + 16] << 8) | buf[e + 17]
        rlo = (buf[e + 18] << 8) | buf[e + 19]
        for tcb in net.tcbs:
            v = tcb.v
            if (v[IN_USE] and v[LPORT] == lport and v[RPORT] == rport
                    and v[RIP_HI] == rhi and v[RIP_LO] == rlo and v[STATE] != CLOSED):
                tcb_unreachable(tcb, buf[c + 1], buf, t)
                return
        stats.icmpInBadQuotes += 1  # no such connection


def tcb_unreachable(tcb, code, buf, qt):
    """ICMP destination unreachable quoting tcb's segment at buf[qt:] (RFC 1122 4.2.3.9).

    The quoted sequence number must be one we have in flight (RFC 5927 4.1: SND.UNA to
    SND.NXT; ISS while connecting), or anyone could end connections with forged ICMP.
    Protocol and port unreachable fail a connect() in SYN-SENT with ECONNREFUSED. The
    rest are soft errors, as on Linux: remembered and told only if the connection
    later times out. "Fragmentation needed" is not an error at all (no PMTU discovery
    here: see README).
    """
    v = tcb.v
    q = seq.from_wire(buf, qt + 4, v[SND_HI], v[SND_LO])
    state = v[STATE]
    if q < v[SND_UNA] or q > v[SND_MAX] or (state == SYN_SENT and q != 0):
        tcb.stack.stats.icmpInBadQuotes += 1
        return
    refused = code == 2 or code == 3
    if state == SYN_SENT and refused:
        tcb.stack.stats.tcpAttemptFails += 1
        tcb._drop(port.ECONNREFUSED)
    elif code != 4:
        v[SOFT_ERR] = port.ECONNREFUSED if refused else port.EHOSTUNREACH


def dispatch_error(net, kind, code, ip, quote, dst_hi, dst_lo, now):
    """ICMP error (RFC 792) to dst quoting net.rxbuf[ip:ip + quote], the offending packet."""
    out = net.txbuf
    t = net.ip_off + ipv4.HEADER_LEN
    n = 8 + quote
    out[t] = kind
    out[t + 1] = code
    out[t + 2] = out[t + 3] = 0
    out[t + 4] = out[t + 5] = out[t + 6] = out[t + 7] = 0
    net.txmv[t + 8:t + n] = net.rxmv[ip:ip + quote]
    k = 0xFFFF ^ port.fold_checksum(port.checksum(out, t, t + n, 0))
    out[t + 2] = k >> 8
    out[t + 3] = k & 0xFF
    ipv4.write_header(out, net.ip_off, net.ip, dst_hi, dst_lo, ipv4.PROTO_ICMP, n,
                      net.next_ident())
    net.stats.icmpOutDestUnreachs += 1
    net.dispatch_ipv4(dst_hi, dst_lo, ipv4.HEADER_LEN + n, now, True)


def port_unreachable(net, ip, hlen, total, now):
    """ICMP port unreachable for the UDP datagram at net.rxbuf[ip:ip + total] (udp.py),
    quoting its IP header and 8 bytes; at most _UNREACH_PER_S a second."""
    u = net.udp
    if port.ticks_diff(now, u.unreach_at) >= 1000:
        u.unreach_at = now
        u.unreach_count = 0
    if u.unreach_count >= _UNREACH_PER_S:
        net.stats.icmpOutRateLimited += 1
        return
    u.unreach_count += 1
    quote = hlen + 8 if hlen + 8 < total else total
    buf = net.rxbuf
    shi = (buf[ip + 12] << 8) | buf[ip + 13]
    slo = (buf[ip + 14] << 8) | buf[ip + 15]
    dispatch_error(net, DEST_UNREACH, CODE_PORT_UNREACH, ip, quote, shi, slo, now)
