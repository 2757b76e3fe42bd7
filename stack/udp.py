# UDP (RFC 768): datagram codec, demultiplexing to services and sockets, bounded queues.
# SPDX-License-Identifier: MIT
#
# Two kinds of receiver share the port space:
# - services inside the stack (DHCP client, DNS resolver, mDNS responder) register a
#   handler with bind_service(); it sees the datagram in the receive buffer, in place;
# - UDP sockets (udpsock.py) take a slot of a fixed pool, each with its own queue: one
#   bytearray, allocated with the stack, holding datagrams as records
#
#       length hi, length lo, source address (4 bytes), source port hi, lo, payload
#
#   in a ring (ringbuf.py's functions). A datagram that does not fit is dropped and
#   counted (udpRcvbufErrors), as a full socket buffer drops on Linux.
#
# A datagram to a port nobody has gets ICMP port unreachable (RFC 1122 4.1.3.1), only when
# it was sent to our address (never for broadcast or multicast, RFC 1122 3.2.2), and at
# most 10 a second (RFC 1812 4.3.2.8), so the stack cannot be made a reflector (icmp.py).

from micropython import const

from . import ipv4, port, ringbuf

UNICAST = const(0)
BROADCAST = const(1)
MULTICAST = const(2)

HEADER_LEN = const(8)
_REC = const(8)  # queue record header: length, source address, source port


class UDP:
    """net.udp, made on first use (iface.py); queues: the sockets' queues, made by Stack()."""

    def __init__(self, stack, queues):
        sockets = len(queues)
        self.stack = stack
        self.services = {}  # local port -> handler (a few: DHCP, DNS, mDNS)
        self.socks = [None] * sockets  # the UDPSocket holding each slot, or None
        self.queues = queues
        self.heads = [0] * sockets
        self.counts = [0] * sockets
        # Where a service (or a socket's send) puts the payload: right after the headers in
        # the stack's transmit frame. Overwritten by every send of any protocol.
        p = stack.ip_off + ipv4.HEADER_LEN + HEADER_LEN
        self.payload = stack.txmv[p:]
        self.unreach_at = stack.clock()  # icmp.port_unreachable()'s rate limit
        self.unreach_count = 0

    # ---- receivers ----------------------------------------------------------------------

    def bind_service(self, lport, handler):
        """Datagrams to lport go to handler(src_hi, src_lo, sport, buf, off, n, kind, now)."""
        if self.in_use(lport):
            raise OSError(port.EADDRINUSE)
        self.services[lport] = handler

    def unbind_service(self, lport):
        self.services.pop(lport, None)

    def in_use(self, lport):
        if lport in self.services:
            return True
        for s in self.socks:
            if s is not None and s._lport == lport:
                return True
        return False

    def ephemeral_port(self):
        """A free local port, picked at random (RFC 6056: a port seen predicts nothing)."""
        span = 65535 - 49152 + 1
        r = port.urandom(2)
        start = ((r[0] << 8) | r[1]) % span
        for i in range(span):
            p = 49152 + (start + i) % span
            if not self.in_use(p):
                return p
        raise OSError(port.EADDRINUSE)

    def take_slot(self, sock):
        for i in range(len(self.socks)):
            if self.socks[i] is None:
                self.socks[i] = sock
                self.heads[i] = self.counts[i] = 0
                return i
        self.stack.stats.udpSocketsExhausted += 1
        raise OSError(port.ENOBUFS)

    def free_slot(self, i):
        self.socks[i] = None
        self.heads[i] = self.counts[i] = 0

    # ---- input --------------------------------------------------------------------------

    def process(self, ip, hlen, total, kind, now):
        """The UDP datagram in the IPv4 packet at rxbuf[ip:ip + total]."""
        st = self.stack
        stats = st.stats
        buf = st.rxbuf
        u = ip + hlen
        n = total - hlen
        ulen = (buf[u + 4] << 8) | buf[u + 5] if n >= HEADER_LEN else 0
        if ulen < HEADER_LEN or ulen > n:
            stats.udpInErrors += 1
            return
        if buf[u + 6] or buf[u + 7]:  # 0: the sender did not compute one (RFC 768)
            acc = port.checksum(buf, u, u + ulen, ipv4.pseudo_sum(buf, ip, ipv4.PROTO_UDP,
                                                                  ulen))
            if port.fold_checksum(acc) != 0xFFFF:
                stats.udpInErrors += 1
                return
        shi = (buf[ip + 12] << 8) | buf[ip + 13]
        slo = (buf[ip + 14] << 8) | buf[ip + 15]
        sport = (buf[u] << 8) | buf[u + 1]
        dport = (buf[u + 2] << 8) | buf[u + 3]
        handler = self.services.get(dport)
        if handler is not None:
            stats.udpInDatagrams += 1
            handler(shi, slo, sport, buf, u + HEADER_LEN, ulen - HEADER_LEN, kind, now)
            return
        for i in range(len(self.socks)):
            s = self.socks[i]
            if s is not None and s._lport == dport and s._accepts(shi, slo, sport, kind):
                stats.udpInDatagrams += 1
                self._enqueue(i, shi, slo, sport, buf, u + HEADER_LEN, ulen - HEADER_LEN)
                return
        stats.udpNoPorts += 1
        if kind == UNICAST:
            from . import icmp  # loaded only now (heap from .mpy)

            icmp.port_unreachable(st, ip, hlen, total, now)

    def _enqueue(self, i, shi, slo, sport, buf, off, n):
        q = self.queues[i]
        head, count = self.heads[i], self.counts[i]
        if _REC + n > len(q) - count:
            self.stack.stats.udpRcvbufErrors += 1
            return
        rec = self.stack.udp_rec
        rec[0], rec[1] = n >> 8, n & 0xFF
        rec[2], rec[3], rec[4], rec[5] = shi >> 8, shi & 0xFF, slo >> 8, slo & 0xFF
        rec[6], rec[7] = sport >> 8, sport & 0xFF
        ringbuf.write_at(q, head, count, 0, rec)
        ringbuf.write_at(q, head, count + _REC, 0, self.stack.rxmv[off:off + n])
        self.counts[i] = count + _REC + n

    def queued(self, i):
        """Length of the oldest datagram queued for slot i, or -1 if none."""
        if not self.counts[i]:
            return -1
        rec = self.stack.udp_rec
        ringbuf.copy_out(self.queues[i], self.heads[i], 0, rec, _REC)
        return (rec[0] << 8) | rec[1]

    def dequeue(self, i, dest):
        """Move the oldest datagram of slot i into dest (cut to its size); returns
        (bytes copied, src_hi, src_lo, sport). Call only when queued(i) >= 0."""
        q = self.queues[i]
        rec = self.stack.udp_rec
        head = self.heads[i]
        ringbuf.copy_out(q, head, 0, rec, _REC)
        n = (rec[0] << 8) | rec[1]
        got = n if n < len(dest) else len(dest)
        if got:
            ringbuf.copy_out(q, head, _REC, dest, got)
        self.heads[i] = ringbuf.advance(head, _REC + n, len(q))
        self.counts[i] -= _REC + n
        return got, (rec[2] << 8) | rec[3], (rec[4] << 8) | rec[5], (rec[6] << 8) | rec[7]

    # ---- output -------------------------------------------------------------------------

    def send(self, sport, dst_hi, dst_lo, dport, n, ttl=64):
        """Send payload[:n] from our address (0.0.0.0 while we have none) to dst:dport.

        ttl: the IP TTL; mDNS sends 255 (RFC 6762 11), so receivers can tell it is on-link.
        """
        st = self.stack
        buf = st.txbuf
        ip = st.ip_off
        u = ip + ipv4.HEADER_LEN
        ulen = HEADER_LEN + n
        buf[u] = sport >> 8
        buf[u + 1] = sport & 0xFF
        buf[u + 2] = dport >> 8
        buf[u + 3] = dport & 0xFF
        buf[u + 4] = ulen >> 8
        buf[u + 5] = ulen & 0xFF
        buf[u + 6] = buf[u + 7] = 0
        ipv4.write_header(buf, ip, st.ip, dst_hi, dst_lo, ipv4.PROTO_UDP, ulen, st.next_ident(),
                          ttl)
        c = 0xFFFF ^ port.fold_checksum(port.checksum(
            buf, u, u + ulen, ipv4.pseudo_sum(buf, ip, ipv4.PROTO_UDP, ulen)))
        if not c:
            c = 0xFFFF  # 0 means "no checksum" in UDP (RFC 768)
        buf[u + 6] = c >> 8
        buf[u + 7] = c & 0xFF
        st.stats.udpOutDatagrams += 1
        st.dispatch_ipv4(dst_hi, dst_lo, ipv4.HEADER_LEN + ulen, st.clock())
