# Bytes allocated per DNS lookup, DHCP renewal, idle poll and mDNS answer (issue 11).
# MIT licence. Runs on MicroPython (the figures that matter: 32-bit WebAssembly) and CPython.
#
#   node host_tests/wasm_run.mjs host_tests/mem_lan.py
#   MICROPYPATH=.frozen:.:host_tests micropython host_tests/mem_lan.py
#
# Two stacks on the in-memory Ethernet link (stack/link/pipe.py). A is the board: ip=None,
# hostname "board7", brought up with active(True) (DHCP, then mDNS), as firmware does. B
# plays the LAN: a DHCP server on port 67 (replies built with test_dhcp.payload), a DNS
# server on port 53 (test_dns.TinyServer) and an mDNS querier. The GC is disabled while
# measuring, so gc.mem_alloc() deltas are every byte the heap handed out; what B does
# (its poll(), its servers, building its packets) is metered apart and subtracted, so the
# figures are A's: its stack, its link reads and writes, and the application's calls.
# Prints one "key value" line per figure.

import gc
import sys

from test_dhcp import Msg, is_dhcp, payload, udp_frame  # noqa: I001  (host_tests on sys.path)
from test_dns import TinyServer
from test_mdns import query

from stack import Stack, dhcp, dns, port
from stack.link.pipe import pipe

A_MAC = b"\x02\x00\x00\x00\x00\x02"  # test_dhcp's OUR_MAC: its payload()'s chaddr
B_MAC = b"\x02\x00\x00\x00\x00\x01"
B_IP = b"\x0a\x00\x00\x01"
LEASED = b"\x0a\x00\x00\x32"  # 10.0.0.50
LEASE_S = 600  # T1 at 300 s
ADDR = b"\x0a\x00\x00\x02"  # what every name resolves to

_B = [0]  # bytes allocated on B's side (subtracted)


class DhcpServer:
    """OFFER for a DISCOVER, ACK for a REQUEST; broadcast until the client has an address."""

    def __init__(self, net):
        self.net = net
        self.acks = 0
        net.udp.bind_service(dhcp.SERVER_PORT, self.on_request)

    def on_request(self, shi, slo, sport, buf, off, n, kind, now):
        i = off + 240
        mtype = 0
        while i + 1 < off + n and buf[i] != 255:
            if buf[i] == 0:
                i += 1
                continue
            if buf[i] == 53:
                mtype = buf[i + 2]
            i += 2 + buf[i + 1]
        if mtype == dhcp.DISCOVER:
            reply = dhcp.OFFER
        elif mtype == dhcp.REQUEST:
            reply = dhcp.ACK
            self.acks += 1
        else:
            return
        ciaddr = bytes(buf[off + 12:off + 16])
        p = payload(bytes(buf[off + 4:off + 8]), reply, yiaddr=LEASED, sid=B_IP,
                    lease=LEASE_S, router=B_IP, dns=(B_IP,))
        udp = self.net.udp
        udp.payload[:len(p)] = p
        if ciaddr == LEASED:  # RENEWING: unicast to the client
            udp.send(dhcp.SERVER_PORT, 0x0A00, 0x0032, dhcp.CLIENT_PORT, len(p))
        else:
            udp.send(dhcp.SERVER_PORT, 0xFFFF, 0xFFFF, dhcp.CLIENT_PORT, len(p))


class Lan:
    def __init__(self, names):
        a, b = pipe(mtu=1500, depth=32, macs=(A_MAC, B_MAC))
        self.clock = [port.ticks_add(0, -3000)]
        clock = self.clock

        def now():
            return clock[0]

        self.a = Stack(a, ip=None, hostname="board7", clock=now)
        self.b = Stack(b, ip="10.0.0.1", clock=now)
        self.links = (a, b)
        self.dhcp_server = DhcpServer(self.b)
        self.dns_server = TinyServer(self.b, dict((nm, ADDR) for nm in names))
        self.b.join_multicast(0xE000, 0x00FB)
        self.mdns_answers = [0]
        answers = self.mdns_answers

        def on_answer(shi, slo, sport, buf, off, n, kind, now):
            answers[0] += 1

        self.b.udp.bind_service(5353, on_answer)
        self.query = bytearray(query())
        self.raw = True  # B's end is read frame by frame until the first lease (below)
        self.frame = bytearray(1600)

    def serve_raw(self):
        """Until A has an address: answer its DHCP broadcasts on B's link end, by hand.

        A Stack drops datagrams from 0.0.0.0 (a martian source), so B cannot serve a
        DISCOVER; renewals come from the leased address and go through B's stack."""
        a, b = self.links
        buf = self.frame
        while True:
            n = b.recv_into(buf)
            if not n:
                return
            f = bytes(buf[:n])
            if not is_dhcp(f):
                continue  # ARP probes go unanswered: the address is free
            m = Msg(f)
            mtype = dhcp.OFFER if m.type == dhcp.DISCOVER else dhcp.ACK
            b.send(udp_frame(payload(m.xid, mtype, yiaddr=LEASED, sid=B_IP, lease=LEASE_S,
                                     router=B_IP, dns=(B_IP,))))

    def poll_b(self):
        m = gc.mem_alloc()
        if self.raw:
            self.serve_raw()
            d = None
        else:
            d = self.b.poll()
        _B[0] += gc.mem_alloc() - m
        return d

    def step(self, jump=True):
        """Poll both; 1 ms on while frames are in flight (or jump is False), else to the
        next deadline."""
        da = self.a.poll()
        db = self.poll_b()
        a, b = self.links
        if not jump or a.pending() or b.pending():
            jump = 1
        else:
            jump = da
            if jump is None or (db is not None and db < jump):
                jump = db
            if jump is None:
                jump = 1000
            if jump < 1:
                jump = 1
        self.clock[0] = port.ticks_add(self.clock[0], jump)

    def ask_mdns(self):
        """B multicasts a QM query for board7.local (TTL 255, from port 5353)."""
        m = gc.mem_alloc()
        udp = self.b.udp
        q = self.query
        udp.payload[:len(q)] = q
        udp.send(5353, 0xE000, 0x00FB, 5353, len(q), 255)
        _B[0] += gc.mem_alloc() - m


def _begin():
    gc.collect()
    gc.disable()
    _B[0] = 0
    return gc.mem_alloc()


def _end(m0):
    used = gc.mem_alloc() - m0 - _B[0]
    gc.enable()
    return used


def main(n=None):
    if n is None:
        n = 20
    names = ["host%d.example.com" % i for i in range(n + 1)]
    lan = Lan(names)
    a = lan.a
    st = a.stats
    a.active(True)  # DHCP (the address is not set: ip=None) and mDNS
    for _ in range(2000):
        if a.isconnected() and a.dhcp.state == dhcp.BOUND:
            break
        lan.step()
    assert a.ifconfig()[0] == "10.0.0.50" and a.ifconfig()[3] == "10.0.0.1", a.ifconfig()
    lan.raw = False
    for _ in range(100):  # mDNS announcements out
        if st.mdnsOutAnnouncements >= 2:
            break
        lan.step()
    assert st.mdnsOutAnnouncements >= 2, st.mdnsOutAnnouncements

    # (c) DHCP renewals: BOUND -> T1 -> REQUEST -> ACK -> BOUND, idle polls between included
    renewals = 4
    lan.step()
    r0 = st.dhcpRenewals
    m0 = _begin()
    for k in range(renewals):
        for _ in range(1000):
            if st.dhcpRenewals > r0 + k and a.dhcp.state == dhcp.BOUND:
                break
            lan.step()
    used = _end(m0)
    assert st.dhcpRenewals == r0 + renewals and a.dhcp.state == dhcp.BOUND, st.dhcpRenewals
    print("alloc_bytes_per_dhcp_renewal %d" % (used // renewals))

    # (a) DNS lookups that go to the network, distinct names (no cache hits)
    r = dns.resolver(a)
    r.start(names[n])  # the first lookup makes the resolver's port and bookkeeping
    for _ in range(100):
        if r.state != 1:
            break
        lan.step(False)
    assert r.result() == ADDR
    sent0 = st.dnsOutQueries
    hits0 = st.dnsCacheHits
    m0 = _begin()
    for i in range(n):
        r.start(names[i])
        for _ in range(100):
            if r.state != 1:
                break
            lan.step(False)
        r.result()
    used = _end(m0)
    assert st.dnsOutQueries - sent0 == n and st.dnsCacheHits == hits0, st.dnsOutQueries
    assert r.result() == ADDR
    print("alloc_bytes_per_dns_lookup_network %d" % (used // n))

    # (b) lookups answered from the cache
    last = names[n - 1]
    m0 = _begin()
    for _ in range(n):
        r.start(last)
        r.result()
    used = _end(m0)
    assert st.dnsCacheHits - hits0 == n and st.dnsOutQueries - sent0 == n, st.dnsCacheHits
    print("alloc_bytes_per_dns_lookup_cached %d" % (used // n))

    # (d) idle poll(): DHCP bound, mDNS running, nothing arriving (1 ms between polls)
    polls = 200
    clock = lan.clock
    m0 = _begin()
    for _ in range(polls):
        a.poll()
        clock[0] = port.ticks_add(clock[0], 1)
    used = _end(m0)
    print("alloc_bytes_per_idle_poll_dhcp_mdns %d" % (used // polls))

    # (e) mDNS queries answered (1.1 s apart: multicast answers are rate-limited to 1/s)
    lan.step(False)
    out0 = st.mdnsOutResponses
    seen0 = lan.mdns_answers[0]
    m0 = _begin()
    for _ in range(n):
        clock[0] = port.ticks_add(clock[0], 1100)
        lan.ask_mdns()
        for _ in range(5):
            lan.step(False)
    used = _end(m0)
    assert st.mdnsOutResponses - out0 == n and lan.mdns_answers[0] - seen0 == n, (
        st.mdnsOutResponses - out0, lan.mdns_answers[0] - seen0)
    print("alloc_bytes_per_mdns_answer %d" % (used // n))


if __name__ == "__main__" or (sys.implementation.name == "micropython" and "mem_lan" in sys.argv[0]):
    main()
