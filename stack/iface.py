# The interface: owns the pools, reads frames, passes packets between layers, runs timers.
# SPDX-License-Identifier: MIT
#
# Following smoltcp's iface: incoming work is process_<proto>(), outgoing dispatch_<proto>(),
# and poll() says how long until something is next due, so a board can sleep until then.

from array import array

from micropython import const

from . import arp, config, ether, ipv4, port, seq, tcpseg
from .stats import Stats
from .tcp import (CLOSED, IN_USE, KEY_STRIDE, LPORT, RIP_HI, RIP_LO, RPORT, STATE,
                  STATE_NAMES, TCB)
from .tcpseg import ACK, FIN, RST, SYN
from .timewait import TimeWaitTable

_FRAMES_PER_POLL = config.FRAMES_PER_POLL
# The common TCP segment in native code (process_frame); None where MicroPython has no
# native emitter, and on CPython.
_tcp4_in = port.tcp4_in
KNOB_IDENT = const(7)  # Stack.knobs: the last IPv4 ID sent (next_ident)
_predict = port.tcp_predict  # with _tcp4_in: header prediction in native code
_copy = port.copy_viper  # likewise (ringbuf.py)

_TW_REOPEN_ISS_STEP = const(65537)  # Linux: new ISN = old snd_nxt + 65537
_NO_ADDR = b"\x00\x00\x00\x00"

# What a datagram was sent to (udp.py's UNICAST, BROADCAST, MULTICAST).
_UNICAST = const(0)
_BROADCAST = const(1)
_MULTICAST = const(2)

# socket() arguments, with the values of MicroPython's socket module.
AF_INET = const(2)
SOCK_STREAM = const(1)
SOCK_DGRAM = const(2)


class Config:
    """Timing knobs of one stack (keywords of Stack(); defaults in config.py)."""

    def __init__(self, msl_ms, rto_initial_ms, rto_min_ms, rto_max_ms, ack_delay_ms,
                 fin_timeout_ms, syn_retries, retries, keepalive_ms, keepalive_intvl_ms,
                 keepalive_probes, orphan_timeout_ms, close_wait_recycle_ms):
        self.msl_ms = msl_ms
        self.rto_initial_ms = rto_initial_ms
        self.rto_min_ms = rto_min_ms
        self.rto_max_ms = rto_max_ms
        self.ack_delay_ms = ack_delay_ms
        self.fin_timeout_ms = fin_timeout_ms
        self.syn_retries = syn_retries
        self.retries = retries
        self.keepalive_ms = keepalive_ms
        self.keepalive_intvl_ms = keepalive_intvl_ms
        self.keepalive_probes = keepalive_probes
        self.orphan_timeout_ms = orphan_timeout_ms
        self.close_wait_recycle_ms = close_wait_recycle_ms  # None: never


def _positive(name, value):
    if not isinstance(value, int) or value <= 0:
        raise ValueError("%s must be a positive int, got %r" % (name, value))
    return value


class Stack:
    """A TCP/IPv4 stack over one link. Everything it will ever use is allocated here."""

    def __init__(self, link, ip=None, prefix=24, gateway=None, tcbs=config.TCBS,
                 rx_buf=config.RX_BUF, tx_buf=config.TX_BUF, tw_slots=config.TW_SLOTS,
                 msl_ms=config.MSL_MS, clock=None, rto_initial_ms=config.RTO_INITIAL_MS,
                 rto_min_ms=config.RTO_MIN_MS, rto_max_ms=config.RTO_MAX_MS,
                 ack_delay_ms=config.ACK_DELAY_MS, fin_timeout_ms=config.FIN_TIMEOUT_MS,
                 syn_retries=config.SYN_RETRIES, retries=config.RETRIES, keepalive_ms=None,
                 keepalive_intvl_ms=config.KEEPALIVE_INTVL_MS,
                 keepalive_probes=config.KEEPALIVE_PROBES,
                 orphan_timeout_ms=config.ORPHAN_TIMEOUT_MS,
                 close_wait_recycle_ms=config.CLOSE_WAIT_RECYCLE_MS, hostname=None,
                 udp_sockets=config.UDP_SOCKETS, udp_queue=config.UDP_QUEUE, log=None):
        for name, value in (("tcbs", tcbs), ("rx_buf", rx_buf), ("tx_buf", tx_buf),
                            ("tw_slots", tw_slots), ("msl_ms", msl_ms),
                            ("rto_initial_ms", rto_initial_ms), ("rto_min_ms", rto_min_ms),
                            ("rto_max_ms", rto_max_ms), ("fin_timeout_ms", fin_timeout_ms),
                            ("syn_retries", syn_retries), ("retries", retries),
                            ("orphan_timeout_ms", orphan_timeout_ms),
                            ("udp_queue", udp_queue)):
            _positive(name, value)
        if keepalive_ms is not None:
            _positive("keepalive_ms", keepalive_ms)
        if close_wait_recycle_ms is not None:
            _positive("close_wait_recycle_ms", close_wait_recycle_ms)
        if not 0 <= prefix <= 32:
            raise ValueError("prefix must be 0..32, got %r" % (prefix,))
        mtu = link.mtu
        if mtu < 68 or mtu > 9000:
            raise ValueError("link mtu must be 68..9000, got %r" % (mtu,))
        if not isinstance(udp_sockets, int) or udp_sockets < 0:
            raise ValueError("udp_sockets must be an int >= 0, got %r" % (udp_sockets,))
        self.link = link
        # ip=None: no address until DHCP (or ipconfig) gives one: 0.0.0.0 until then.
        self.ip = ipv4.aton(ip) if ip else _NO_ADDR
        self.ip_hi, self.ip_lo = ipv4.halves_of(self.ip)
        self.prefix = prefix
        self.gateway = ipv4.aton(gateway) if gateway else None
        self.dns_servers = []  # 4-byte addresses, from DHCP or ipconfig(dns4=)
        self.address_listeners = []  # callables told when the address changes
        self.services = []  # objects with poll(now) -> ms or None (DHCP, DNS, mDNS)
        self.groups = []  # IPv4 multicast groups joined, as (hi, lo)
        self.mcast_macs = []  # ... and their Ethernet MACs
        self.watch_hi = self.watch_lo = 0  # arp_watch(): an address probed (RFC 5227)
        self.arp_conflict = False
        # The NIC's state (nic.py): active() (None: never said; up if it has an address),
        # whether active(True) ran, and the DHCP client once one is made.
        self.nic_up = None
        self.nic_started = False
        self.dhcp = None
        self.addr_gen = 0  # bumped by every address change (poll() re-asks its services)
        self.clock = clock if clock is not None else port.ticks_ms
        self.cfg = Config(msl_ms, rto_initial_ms, rto_min_ms, rto_max_ms, ack_delay_ms,
                          fin_timeout_ms, syn_retries, retries, keepalive_ms,
                          keepalive_intvl_ms, keepalive_probes, orphan_timeout_ms,
                          close_wait_recycle_ms)
        self.stats = Stats()
        self.log = log  # a callable taking one line, or None
        # A callable(direction, buf, ip_offset, ip_len) seeing every TCP segment: "in" after
        # it was processed, "out" as it leaves; None for off. See trace.attach().
        self.tracer = None
        self.in_segment = False
        # A callable(out, buf, n) seeing every frame, buf[:n], in (out=0) and out (out=1);
        # None for off. See debug.capture().
        self.capture = None
        # Called by poll() after input, before output: an application reacting here to
        # what just arrived rides on the same segments (e.g. FIN,ACK: a three-way close).
        self.after_input = None
        # poll() does a full pass (services, connections, TIME-WAIT, ARP) only when a frame
        # came, when `dirty` (the application or a service changed something: tcp.py,
        # sock.py, dhcp.py, dns.py and this file set it) or at `due_at`, the earliest
        # deadline the last full pass found (ticks; None for none).
        self.dirty = True
        self.due_at = None
        # The one TCB that segments came for or the application wrote to since the last
        # pass (None: none; True: more than one): poll() then runs its output alone.
        self.hot = None
        # IP-only links (TUN) carry packets at offset 0; Ethernet links after a header.
        self.mac = link.mac
        if hostname is None:
            hostname = "mpy-" + "".join("%02x" % b for b in self.mac[3:]) if self.mac else "mpy"
        self.hostname = hostname
        self.ip_off = ether.HEADER_LEN if self.mac else 0
        self.mss = mtu - 40
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
        self.mask_hi, self.mask_lo = mask >> 16, mask & 0xFFFF
        if self.gateway:
            self.gw_hi, self.gw_lo = ipv4.halves_of(self.gateway)
        self.rxbuf = bytearray(self.ip_off + mtu)
        self.rxmv = memoryview(self.rxbuf)
        self.txbuf = bytearray(self.ip_off + mtu)
        self.txmv = memoryview(self.txbuf)
        self.arp = None
        if self.mac:
            if len(self.mac) != 6:
                raise ValueError("link mac must be 6 bytes, got %r" % (self.mac,))
            self.arp = arp.ARPCache(config.ARP_ENTRIES, config.ARP_QUEUE, self.ip_off + mtu,
                                    config.ARP_TIMEOUT_MS, config.ARP_RETRY_MS,
                                    config.ARP_RETRIES, self.stats)
            if self.gateway:
                self.arp.keep_hi, self.arp.keep_lo = self.gw_hi, self.gw_lo  # never evicted
            self.arpbuf = bytearray(ether.HEADER_LEN + arp.PACKET_LEN)
            # Every IPv4 frame we send has our MAC and type IPv4: written once, here.
            ether.write_header(self.txbuf, ether.BROADCAST, self.mac, ether.TYPE_IPV4)
        # Per-connection tables (before the TCBs, which write their entries), one object
        # each for all TCBs rather than one per TCB: what native code demultiplexes with
        # and each connection's next hop (tcp.py TCB._key, _emit), the ARP cache's gen
        # when that next hop was learnt (-1: none), the prepared headers (32 bytes each,
        # tcp.py _emit). Made from range() and cleared, not from a zeroed temporary.
        n = KEY_STRIDE * tcbs
        self.tcb_keys = array("H", range(n))
        for i in range(n):
            self.tcb_keys[i] = 0
        self.tcb_nh_gen = array("i", range(tcbs))
        self.tcb_hdrs = bytearray(32 * tcbs)
        self.sg = array("i", bytes(4 * 6))  # what process_frame's native call fills in
        # What native code (port.tcp_out, tcp_predict) reads of the stack, in this order
        # (_tcp_viper.py names them): our MSS, the ACK delay, the RTO's floor, ceiling
        # and first value, the keepalive time (read once here, as everything reads cfg
        # once: it is not changed), where IPv4 starts in a frame, and the last IPv4 ID sent
        # (KNOB_IDENT: every sender counts it on, next_ident()).
        cfg = self.cfg
        self.knobs = array("i", (self.mss, cfg.ack_delay_ms, cfg.rto_min_ms, cfg.rto_max_ms,
                                 cfg.rto_initial_ms, cfg.keepalive_ms or 0, self.ip_off, 0))
        # Our MAC, address and mask's low half in one buffer, for that call (_set_me()).
        self.me = bytearray(12)
        self._set_me()
        self.tcbs = [TCB(self, i, rx_buf, tx_buf)
                     for i in range(tcbs)]
        self.udp_rec = bytearray(8)  # a UDP queue record's header (udp.py)
        # The UDP sockets' queues; the UDP layer itself (net.udp) is made on first use.
        self.udp_queues = [memoryview(bytearray(udp_queue)) for _ in range(udp_sockets)]
        self.tw = TimeWaitTable(tw_slots)
        self.listeners = []  # listening sockets (few; a socket each, no TCB)
        self.seg = tcpseg.Segment()
        self.challenge_window_at = self.clock()
        self.challenge_count = 0
        self.challenge_budget = config.CHALLENGE_ACKS_PER_S
        self.secret = port.urandom(16)  # RFC 6528 F() key
        # RFC 6056 next_ephemeral: a counter (not a port) advanced at random; see
        # ephemeral_port(). Starts anywhere.
        self.next_port = (self.secret[0] << 8 | self.secret[1]) % (
            config.EPHEMERAL_HIGH - config.EPHEMERAL_LOW + 1)
        if self.mac and self.has_address():
            # Gratuitous ARP: announce our address (and find a duplicate, if one answers).
            self.send_arp(arp.OP_REQUEST, ether.BROADCAST, b"\x00" * 6, self.ip)

    def __getattr__(self, name):
        # Only for a name that is not an attribute yet. net.udp, the UDP layer (udp.py), is
        # made when first asked for: by a UDP socket, a service (DHCP, DNS, mDNS) or the
        # first datagram that arrives. A board serving only TCP never loads its code (from
        # .mpy files, every module loaded keeps its bytecode on the heap).
        if name == "udp":
            from .udp import UDP

            self.udp = u = UDP(self, self.udp_queues)
            return u
        raise AttributeError(name)

    # ---- public API --------------------------------------------------------------------

    def socket(self, af=AF_INET, kind=SOCK_STREAM, proto=0):
        """A TCP socket (its TCB comes from the pool at connect() or accept()), or with
        SOCK_DGRAM a UDP socket (a slot of the UDP pool once bound)."""
        if af != AF_INET:
            raise OSError(port.EAFNOSUPPORT)
        if kind == SOCK_DGRAM:
            from .udpsock import UDPSocket

            return UDPSocket(self)
        if kind != SOCK_STREAM:
            raise OSError(port.EOPNOTSUPP)
        from .sock import Socket

        return Socket(self)

    # ---- the network interface (DESIGN.md section 8): thin, the work is elsewhere -------

    def active(self, *up):
        from . import nic

        return nic.active(self, *up)

    def isconnected(self):
        from . import nic

        return nic.isconnected(self)

    def status(self, *param):
        from . import nic

        return nic.status(self, *param)

    def ipconfig(self, *key, **kw):
        from . import nic

        return nic.ipconfig(self, *key, **kw)

    def ifconfig(self, *conf):
        from . import nic

        return nic.ifconfig(self, *conf)

    def config(self, *key, **kw):
        from . import nic

        return nic.config(self, *key, **kw)

    def getaddrinfo(self, host, port_, af=0, kind=0, proto=0, flags=0):
        from . import dns

        return dns.getaddrinfo(self, host, port_, af, kind, proto, flags)

    def has_address(self):
        return bool(self.ip_hi or self.ip_lo)

    def set_address(self, addr4, prefix, gw4=None):
        """Take addr4/prefix (4-byte bytes) and gateway gw4 (or None) as ours."""
        same = bytes(addr4) == self.ip and prefix == self.prefix  # a DHCP renewal
        self.ip = bytes(addr4)
        self.ip_hi, self.ip_lo = ipv4.halves_of(self.ip)
        self.prefix = prefix
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
        self.mask_hi, self.mask_lo = mask >> 16, mask & 0xFFFF
        self._set_me()
        self.gateway = bytes(gw4) if gw4 else None
        if self.gateway:
            self.gw_hi, self.gw_lo = ipv4.halves_of(self.gateway)
        if self.arp is not None:
            self.arp.keep_hi, self.arp.keep_lo = (self.gw_hi, self.gw_lo) if gw4 else (-1, -1)
            self.arp.moved()  # the route may have changed: connections look their next hop up
        if same:
            return  # the same address again: the cache, neighbours and services stand
        if self.arp is not None:
            # Frames waiting for ARP carry the old source address: forget them all.
            self.arp.clear()
            self.send_arp(arp.OP_REQUEST, ether.BROADCAST, b"\x00" * 6, self.ip)
        self.addr_gen += 1
        self.dirty = True
        for i in range(len(self.tcbs)):
            self.tcb_hdrs[i << 5] = 0  # the prepared headers name the old address (tcp.py)
        for fn in self.address_listeners:
            fn()

    def _set_me(self):
        me = self.me
        if self.mac:
            me[0:6] = self.mac
        me[6:10] = self.ip
        me[10] = self.mask_lo >> 8
        me[11] = self.mask_lo & 0xFF

    def clear_address(self):
        """Give the address up (a lease ran out): connections on it end with ECONNABORTED."""
        now = self.clock()
        for tcb in self.tcbs:
            if tcb.v[IN_USE] and tcb.v[STATE] != CLOSED:
                tcb.abort_silently(port.ECONNABORTED)
        self.ip = _NO_ADDR
        self.ip_hi = self.ip_lo = 0
        self._set_me()
        self.gateway = None
        if self.arp is not None:
            self.arp.clear()  # nothing may leave with the old address, nor ARP from 0.0.0.0
            self.arp.keep_hi = self.arp.keep_lo = -1
        self.tw.clear()
        self.addr_gen += 1
        self.dirty = True
        for i in range(len(self.tcbs)):
            self.tcb_hdrs[i << 5] = 0  # the prepared headers name the old address (tcp.py)
        for fn in self.address_listeners:
            fn()

    def add_service(self, svc):
        """svc.poll(now) -> ms until it wants poll() again, or None: run by poll() when that
        time comes, or after a frame or `dirty`. A service whose deadline moves earlier
        outside poll() (an API call) sets net.dirty."""
        self.dirty = True
        if svc not in self.services:
            self.services.append(svc)

    def remove_service(self, svc):
        if svc in self.services:
            self.services.remove(svc)

    def join_multicast(self, hi, lo):
        if (hi, lo) not in self.groups:
            self.groups.append((hi, lo))
            if self.mac:
                self.mcast_macs.append(ether.multicast_mac(hi, lo))

    def leave_multicast(self, hi, lo):
        if (hi, lo) in self.groups:
            i = self.groups.index((hi, lo))
            self.groups.pop(i)
            if self.mac:
                self.mcast_macs.pop(i)

    def arp_watch(self, hi, lo):
        """Watch for an ARP claim of hi.lo (RFC 5227 conflict detection; dhcp.py's
        watch_arp() sees each ARP packet meanwhile); 0, 0: stop."""
        self.watch_hi, self.watch_lo = hi, lo
        self.arp_conflict = False

    def poll(self):
        """Handle every waiting frame and every due timer; ms until the next one (or None)."""
        now = self.clock()
        n = self.link.recv_into(self.rxbuf)
        if not n and not self.dirty and self.hot is None:
            # Nothing came and nothing changed since the last full pass (services, TCBs,
            # TIME-WAIT and ARP: `dirty`, set by tcp.py, sock.py, the services and this
            # file): until the earliest deadline that pass found, there is nothing to do
            # (nor for after_input, which reacts to input). An idle poll then costs the same
            # with or without connections open.
            due = self.due_at
            if due is None:
                return None
            left = port.ticks_diff(due, now)
            if left > 0:
                return left
        return self._poll(now, n)

    def _poll(self, now, n):
        link = self.link
        rxbuf = self.rxbuf
        busy = False
        room = _FRAMES_PER_POLL
        while n:
            if self.capture is not None:
                self.capture(0, rxbuf, n)
            self.process_frame(n, now)
            room -= 1
            if not room:
                busy = True  # frames may still wait: come back at once
                break
            n = link.recv_into(rxbuf)
        if self.after_input is not None:
            self.after_input()
            self.dirty = True  # it may have done anything
        hot = self.hot
        self.hot = None
        due = self.due_at
        if not self.dirty and hot is not True and (due is None or port.ticks_diff(due, now) > 0):
            # Only one connection's segments came (or its application wrote): nothing due,
            # nothing else changed. It alone may have something to send, or a new deadline.
            best = None if due is None else port.ticks_diff(due, now)
            if hot is not None and hot.v[IN_USE]:
                hot.output(now)
                left = hot.next_due_ms(now)
                if left is not None and (best is None or left < best):
                    best = left
                    self.due_at = port.ticks_add(now, left)
            return 0 if busy else best
        best = None
        for _ in range(3 if self.services else 0):
            # A service may change the address (DHCP binds): the others are asked again,
            # so a deadline that change set (mDNS announcing) is in what poll() returns.
            gen = self.addr_gen
            best = None
            i = 0
            while i < len(self.services):  # by index: a service may add or remove one
                left = self.services[i].poll(now)
                if left is not None and (best is None or left < best):
                    best = left if left > 0 else 0
                i += 1
            if gen == self.addr_gen:
                break
        left = self._scan(now)
        if left is not None and (best is None or left < best):
            best = left
        # Everything is accounted for up to `best`: later polls may skip all of the above
        # until then, unless something sets `dirty` first.
        self.dirty = False
        self.due_at = None if best is None else port.ticks_add(now, best)
        return 0 if busy else best

    def _scan(self, now):
        """Run the connections' due timers and output, expire TIME-WAIT, send ARP requests;
        ms until the earliest of their deadlines, or None."""
        best = None
        for tcb in self.tcbs:
            if tcb.v[IN_USE]:
                tcb.on_timer(now)
                if tcb.v[IN_USE]:
                    tcb.output(now)
                    left = tcb.next_due_ms(now)
                    if left is not None and (best is None or left < best):
                        best = left
        left = self.tw.expire(now)
        if left is not None and (best is None or left < best):
            best = left
        if self.arp is not None:
            while True:
                i = self.arp.next_request(now)
                if i < 0:
                    break
                self.send_arp_request(self.arp.ip_hi[i], self.arp.ip_lo[i],
                                      self.arp.probe_mac(i))
            left = self.arp.next_due_ms(now)
            if left is not None and (best is None or left < best):
                best = left if left > 0 else 0
        return best

    def wait(self, ms):
        """Sleep up to ms, waking early when the link has a frame (if it has a fileno)."""
        fileno = getattr(self.link, "fileno", None)
        if fileno is not None:
            try:
                import select

                p = select.poll()
                p.register(fileno(), select.POLLIN)
                p.poll(ms)
                return
            except (ImportError, OSError):  # pragma: no cover
                pass
        port.sleep_ms(ms)

    def connections(self):
        """(local_ip, lport, remote_ip, rport, state) of every TCB and TIME-WAIT record."""
        local = ipv4.ntoa(self.ip_hi, self.ip_lo)
        out = []
        for lst in self.listeners:
            out.append(("0.0.0.0", lst._lport, "0.0.0.0", 0, "LISTEN"))
        for tcb in self.tcbs:
            v = tcb.v
            if v[IN_USE] and v[STATE] != CLOSED:
                out.append((local, v[LPORT], ipv4.ntoa(v[RIP_HI], v[RIP_LO]), v[RPORT],
                            STATE_NAMES[v[STATE]]))
        for slot, rhi, rlo, lport, rport in self.tw.records():
            out.append((local, lport, ipv4.ntoa(rhi, rlo), rport, "TIME-WAIT"))
        return out

    def free_tcb_count(self):
        n = 0
        for tcb in self.tcbs:
            if not tcb.v[IN_USE]:
                n += 1
        return n

    # ---- pools -------------------------------------------------------------------------

    def take_tcb(self):
        for tcb in self.tcbs:
            if not tcb.v[IN_USE]:
                tcb.reset()
                tcb.v[IN_USE] = True
                return tcb
        self.stats.tcpTcbExhausted += 1
        return None

    def free_tcb(self, tcb):
        tcb.reset()
        tcb.v[IN_USE] = False

    def isn(self, rip_hi, rip_lo, lport, rport, now):
        """RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock. (hi, lo)."""
        h = _hash(self.secret, rip_hi, rip_lo, lport, rport, self.ip_hi, self.ip_lo)
        v = (h + now * 250) & 0xFFFFFFFF  # set-up only: a heap int here is fine
        return seq.halves(v)

    def ephemeral_port(self, rip_hi, rip_lo, rport):
        """A free local port for a connection to rip:rport, 0 if none (RFC 6056).

        Algorithm 3 ("simple hash-based"): port = LOW + (offset + next_ephemeral) % span, with
        offset = F(local address, remote address, remote port, secret). A port seen on a
        connection to one destination says nothing about the ports used towards others.
        next_ephemeral then moves on by a random 2..65 rather than by 1 (as Linux adds
        random increments to its Algorithm 4 table), so two connections to the same
        destination do not get consecutive, predictable ports either, and the port space
        is still used in order, far from ports just closed. Ports in use, and 4-tuples in
        TIME-WAIT, are skipped. Runs at connect() only: one hash, a few small ints.
        """
        span = config.EPHEMERAL_HIGH - config.EPHEMERAL_LOW + 1
        # 16 bits of a 32-bit hash: shifting keeps it a small int on 32-bit boards.
        offset = _hash(self.secret, self.ip_hi, self.ip_lo, rip_hi, rip_lo, rport) >> 16
        c = self.next_port
        for _ in range(span):
            p = config.EPHEMERAL_LOW + (offset + c) % span
            c += 1
            if self.port_in_use(p) or self.tw.find(rip_hi, rip_lo, p, rport) >= 0:
                continue
            self.next_port = (c + 1 + (port.urandom(1)[0] & 0x3F)) % span
            return p
        return 0

    def port_in_use(self, lport):
        for lst in self.listeners:
            if lst._lport == lport:
                return True
        for tcb in self.tcbs:
            if tcb.v[IN_USE] and tcb.v[LPORT] == lport:
                return True
        return False

    def challenge_ack_allowed(self, now):
        """RFC 5961 section 7: a limited number of challenge ACKs a second.

        The budget of each second is drawn at random from [L/2, 3L/2), L =
        CHALLENGE_ACKS_PER_S, as Linux draws it (RFC 5961 section 10): with an exact
        budget an off-path attacker counting the ACKs it provokes, 9 against 10, learns
        that a connection it guessed exists.
        """
        if port.ticks_diff(now, self.challenge_window_at) >= 1000:
            self.challenge_window_at = now
            self.challenge_count = 0
            limit = config.CHALLENGE_ACKS_PER_S
            self.challenge_budget = (limit >> 1) + port.urandom(1)[0] % limit
        if self.challenge_count >= self.challenge_budget:
            self.stats.tcpChallengeAcksSuppressed += 1
            return False
        self.challenge_count += 1
        self.stats.tcpChallengeAcks += 1
        return True

    # ---- input -------------------------------------------------------------------------

    def process_frame(self, n, now):
        """One frame (or IPv4 packet on a link without MAC) from rxbuf[:n].

        Where MicroPython has viper, native code (port.tcp4_in) checks a plain TCP segment,
        finds its ESTABLISHED connection and parses it; header prediction (tcp.py
        TCB.predicted) then takes the next data in order or a pure ACK in one call, and
        anything else goes to process_tcp, checked already. What native code does not take
        goes the long way, through every check in Python. Not while a tracer watches."""
        if _tcp4_in is not None and not self.tracer:
            ip = self.ip_off
            sg = self.sg
            i = _tcp4_in(self.rxbuf, ip, n, self.me, self.tcb_keys, sg)
            if i > -2:
                stats = self.stats
                stats.ipInReceives += 1
                if i >= 0:
                    tcb = self.tcbs[i]
                    if _predict is not None:
                        # 2, or 1 for a pure ACK after which output() has nothing to do
                        # and no deadline came nearer: poll() need not look at the TCB.
                        r = _predict(tcb.v, sg, self.rxbuf, tcb.rxb, now, self.knobs)
                    else:
                        r = 2 if tcb.predicted(sg[0], sg[1], sg[2], sg[3], sg[4], sg[5],
                                               now) else 0
                    if r:
                        stats.tcpInSegs += 1
                        if r > 1:
                            hot = self.hot
                            if hot is None:
                                self.hot = tcb
                            elif hot is not tcb:
                                self.hot = True
                        return
                buf = self.rxbuf  # process_tcp finds the TCB again (and marks it hot)
                self.process_tcp(ip, 20, (buf[ip + 2] << 8) | buf[ip + 3], now, True)
                return
        if self.mac:
            self.process_ethernet(n, now)
        else:
            self.process_ipv4(n, now)

    def process_ethernet(self, n, now):
        buf = self.rxbuf
        if n < ether.HEADER_LEN or not (ether.for_us(buf, self.mac) or (
                self.mcast_macs and buf[0] & 1 and self._joined_mac(buf))):
            self.stats.ethInDrops += 1
            return
        etype = (buf[12] << 8) | buf[13]
        if etype == ether.TYPE_IPV4:
            self.process_ipv4(n, now)
        elif etype == ether.TYPE_ARP:
            self.dirty = True
            self.process_arp(n, now)
        else:
            self.stats.ethInDrops += 1

    def _joined_mac(self, buf):
        for m in self.mcast_macs:
            if (buf[3] == m[3] and buf[4] == m[4] and buf[5] == m[5] and buf[0] == m[0]
                    and buf[1] == m[1] and buf[2] == m[2]):
                return True
        return False

    def process_arp(self, n, now):
        """RFC 826: answer requests for our address; learn only what arp.py's policy lets
        through (a spoofing neighbour must not redirect or evict our next hops)."""
        buf = self.rxbuf
        stats = self.stats
        a = ether.HEADER_LEN
        if (n < a + arp.PACKET_LEN or buf[a] != 0 or buf[a + 1] != 1 or buf[a + 2] != 0x08
                or buf[a + 3] != 0 or buf[a + 4] != 6 or buf[a + 5] != 4 or buf[a + 6]):
            stats.ethInDrops += 1
            return
        op = buf[a + 7]
        if op == arp.OP_REQUEST:
            stats.arpInRequests += 1
        elif op == arp.OP_REPLY:
            stats.arpInReplies += 1
        else:
            return
        if self.watch_hi or self.watch_lo:
            from . import dhcp  # loaded already: only its probe (RFC 5227) sets a watch

            dhcp.watch_arp(self, buf, a)
        # The sender's MAC must be one host's: not broadcast or multicast (the group bit),
        # not all zeros, not ours. Nothing is learnt or answered otherwise.
        m = a + 8
        mac = self.mac
        if (buf[m] & 1 or not (buf[m] | buf[m + 1] | buf[m + 2] | buf[m + 3] | buf[m + 4]
                               | buf[m + 5])
                or (buf[m] == mac[0] and buf[m + 1] == mac[1] and buf[m + 2] == mac[2]
                    and buf[m + 3] == mac[3] and buf[m + 4] == mac[4]
                    and buf[m + 5] == mac[5])):
            stats.arpRefused += 1
            stats.arpRefusedMac += 1
            return
        shi = (buf[a + 14] << 8) | buf[a + 15]
        slo = (buf[a + 16] << 8) | buf[a + 17]
        # For us: our address (while we have one: nobody may learn 0.0.0.0 is at our MAC).
        to_us = bool(self.ip_hi or self.ip_lo) and (
            (buf[a + 24] << 8) | buf[a + 25]) == self.ip_hi and (
            (buf[a + 26] << 8) | buf[a + 27]) == self.ip_lo
        ask = op == arp.OP_REQUEST and to_us
        if shi or slo:
            if ipv4.martian(shi, slo, self.ip_hi, self.ip_lo, self.mask_hi, self.mask_lo):
                # 127/8, multicast, broadcast, our own address (a duplicate, or a spoof):
                # neither learnt nor answered.
                stats.arpRefused += 1
                stats.arpRefusedAddr += 1
                return
            if ((shi ^ self.ip_hi) & self.mask_hi) or ((slo ^ self.ip_lo) & self.mask_lo):
                # Off-link: we never ARP for it, so there is nothing to learn (answered).
                if to_us:
                    stats.arpRefused += 1
                    stats.arpRefusedAddr += 1
            else:
                i = self.arp.hear(shi, slo, buf, m, now,
                                  arp.ASKED if ask else arp.ANSWERED if to_us else arp.HEARD)
                if i >= 0:
                    q = self.arp.take_queued(i)
                    if q >= 0:
                        frame = self.arp.qbuf[q]
                        frame[0:6] = self.arp.macs[i]
                        if self.capture is not None:
                            self.capture(1, frame, self.arp.qlen[q])
                        self.link.send(memoryview(frame)[:self.arp.qlen[q]])
                        self.arp.release(q)
        # else: sender 0.0.0.0, an RFC 5227 probe: it claims nothing; answered if for us.
        if ask:
            stats.arpOutReplies += 1
            sha = self.rxmv[m:m + 6]
            self.send_arp(arp.OP_REPLY, sha, sha, self.rxmv[a + 14:a + 18])

    def send_arp_request(self, hi, lo, dst=None):
        """Who has hi.lo? Broadcast, or unicast to dst: the MAC we have for it (a probe)."""
        self.stats.arpOutRequests += 1
        tpa = bytes((hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF))
        self.send_arp(arp.OP_REQUEST, ether.BROADCAST if dst is None else dst, b"\x00" * 6,
                      tpa)

    def send_arp(self, op, eth_dst, tha, tpa):
        buf = self.arpbuf
        ether.write_header(buf, eth_dst, self.mac, ether.TYPE_ARP)
        arp.write_packet(buf, ether.HEADER_LEN, op, self.mac, self.ip, tha, tpa)
        if self.capture is not None:
            self.capture(1, buf, len(buf))
        self.link.send(buf)

    def process_ipv4(self, n, now):
        buf = self.rxbuf
        ip = self.ip_off
        stats = self.stats
        stats.ipInReceives += 1
        hlen = ipv4.check(buf, ip, n - ip, stats)
        if not hlen:
            return
        kind = _UNICAST
        dhi = buf[ip + 16] << 8 | buf[ip + 17]
        dlo = buf[ip + 18] << 8 | buf[ip + 19]
        if dhi != self.ip_hi or dlo != self.ip_lo or not (dhi or dlo):
            # Not to our address: broadcast (all ones, or our subnet's) or a group we
            # joined, for UDP only (a ping or SYN to a broadcast gets no answer, RFC 1122
            # 3.2.2.6 and 4.2.3.10). Nothing else is ours: we do not forward.
            if buf[ip + 9] != ipv4.PROTO_UDP:
                stats.ipInAddrErrors += 1
                return
            if (dhi == 0xFFFF and dlo == 0xFFFF) or (self.has_address() and ipv4.is_broadcast(
                    dhi, dlo, self.ip_hi, self.ip_lo, self.mask_hi, self.mask_lo)):
                kind = _BROADCAST
            elif dhi >> 12 == 0xE and (dhi, dlo) in self.groups:
                kind = _MULTICAST
            else:
                stats.ipInAddrErrors += 1
                return
        # Martian sources (0/8, 127/8, 224/4, 240/4, our subnet broadcast, our own address)
        # are nobody we may answer: a SYN or a ping "from" them would make us reply to a
        # broadcast, a group or ourselves. The first line is a cheap superset (most sources
        # fail it at once), ipv4.martian() decides. No allocation: 16-bit halves.
        shi = (buf[ip + 12] << 8) | buf[ip + 13]
        slo = (buf[ip + 14] << 8) | buf[ip + 15]
        if (shi < 0x0100 or shi >= 0xE000 or (shi >> 8) == 127 or (slo | self.mask_lo) == 0xFFFF
                or (slo == self.ip_lo and shi == self.ip_hi)):
            if ipv4.martian(shi, slo, self.ip_hi, self.ip_lo, self.mask_hi, self.mask_lo):
                stats.ipInMartians += 1
                return
        proto = buf[ip + 9]
        total = (buf[ip + 2] << 8) | buf[ip + 3]
        if proto == ipv4.PROTO_TCP:
            self.process_tcp(ip, hlen, total, now)
            return
        self.dirty = True  # a service's or an ICMP message's effects: poll()'s full pass
        if proto == ipv4.PROTO_UDP:
            self.udp.process(ip, hlen, total, kind, now)
        elif proto == ipv4.PROTO_ICMP:
            from . import icmp  # loaded with the first ICMP message (heap from .mpy)

            icmp.process(self, ip, hlen, total, now)
        else:
            stats.ipInUnknownProtos += 1

    def process_tcp(self, ip, hlen, total, now, checked=False):
        seg = self.seg
        stats = self.stats
        if not seg.parse(self.rxbuf, ip, hlen, total, checked):
            stats.tcpInErrs += 1
            stats.tcpInChecksumErrs += 1
            return
        stats.tcpInSegs += 1
        self.in_segment = True  # a tracer holds back replies until the segment is shown
        self.demux_tcp(seg, now)
        self.in_segment = False
        if self.tracer:
            # After processing: a trace shows the state the segment led to.
            self.tracer("in", self.rxbuf, ip, total)

    def demux_tcp(self, seg, now):
        """To the connection's TCB, its TIME-WAIT record, a listener, or an RST."""
        rhi, rlo, lport, rport = seg.rip_hi, seg.rip_lo, seg.dport, seg.sport
        for tcb in self.tcbs:
            v = tcb.v
            # The remote port first: it differs between most connections. A free or CLOSED
            # TCB keeps its old numbers, so IN_USE and STATE are tested too.
            if (v[RPORT] == rport and v[LPORT] == lport and v[RIP_LO] == rlo
                    and v[RIP_HI] == rhi and v[IN_USE] and v[STATE] != CLOSED):
                hot = self.hot
                if hot is None:
                    self.hot = tcb
                elif hot is not tcb:
                    self.hot = True
                tcb.process(seg, now)
                return
        self.dirty = True  # TIME-WAIT, a listener or an RST: poll()'s full pass
        slot = self.tw.find(rhi, rlo, lport, rport)
        if slot >= 0:
            self.process_time_wait(slot, seg, now)
            return
        listener = self.find_listener(lport)
        if listener is None:
            self.reply_rst(seg)  # RFC 9293 3.10.7.1: CLOSED answers everything but RST
            return
        self.process_listen(listener, seg, None, now)

    def find_listener(self, lport):
        for lst in self.listeners:
            if lst._lport == lport:
                return lst
        return None

    def process_listen(self, listener, seg, iss, now):
        """A segment for a listening socket (RFC 9293 3.10.7.2)."""
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            self.reply_rst(seg)
            return
        if not flags & SYN:
            self.stats.tcpDropped += 1
            return
        if not listener._has_room():
            from . import recycle  # loaded when first needed (heap from .mpy)

            if not recycle.embryonic(self, listener):
                # Every place taken by a connection waiting for accept(): drop the SYN
                # silently, like Linux; the client's retry may find room.
                self.stats.tcpListenDrops += 1
                return
        tcb = self.take_tcb()
        if tcb is None:
            from . import recycle

            if recycle.embryonic(self, None) or recycle.close_wait(self, now):
                tcb = self.take_tcb()
            if tcb is None:
                self.stats.tcpListenDrops += 1
                return
        if iss is None:
            iss = self.isn(seg.rip_hi, seg.rip_lo, seg.dport, seg.sport, now)
        listener._add_pending(tcb)
        tcb.open_passive(seg, listener, iss, now)

    def process_time_wait(self, slot, seg, now):
        """A segment for a connection in TIME-WAIT (RFC 9293, RFC 1122 4.2.2.13, RFC 1337)."""
        flags = seg.flags
        tw = self.tw
        if flags & RST:
            return  # RFC 1337: an RST must not end TIME-WAIT early
        buf, t = seg.buf, seg.t
        if flags & SYN and not flags & ACK:
            shi = (buf[t + 4] << 8) | buf[t + 5]
            slo = (buf[t + 6] << 8) | buf[t + 7]
            rhi, rlo = tw.rcv_nxt(slot)
            listener = self.find_listener(seg.dport)
            if listener is not None and seq.wire_after(shi, slo, rhi, rlo):
                # A new incarnation: its SYN is above everything of the old one. Accept
                # it, and start our ISN above the old send sequence (as Linux does).
                ohi, olo = tw.snd_nxt(slot)
                tw.remove(slot)
                self.stats.tcpTimeWaitReopened += 1
                self.process_listen(listener, seg, seq.add_halves(ohi, olo,
                                                                  _TW_REOPEN_ISS_STEP), now)
                return
        rhi, rlo = tw.rcv_nxt(slot)
        if flags & FIN:
            # The peer's FIN again (our last ACK was lost): ACK it, restart 2 x MSL.
            tw.restart(slot, port.ticks_add(now, 2 * self.cfg.msl_ms))
        else:
            wnd = tw.wnd(slot)
            off = seq.from_wire(buf, t + 4, rhi, rlo)
            if not (seg.dlen or flags & SYN) and 0 <= off < (wnd if wnd else 1):
                return  # an acceptable bare ACK: nothing to say
            # Unacceptable (an old duplicate, data, a SYN): <SEQ=SND.NXT><ACK=RCV.NXT><ACK>
            # (RFC 9293 3.10.7.4), at most one per record each 500 ms, as Linux
            # (tcp_oow_rate_limited): forged segments must not make us a reflector.
            if not tw.oow_ack_allowed(slot, now):
                return
        # Re-ACK with the old connection's numbers.
        shi, slo = tw.snd_nxt(slot)
        self.dispatch_bare(seg, ACK, shi, slo, rhi, rlo, tw.wnd(slot))

    def reply_rst(self, seg):
        """RST for a segment that belongs to no connection (RFC 9293 3.10.7.1)."""
        flags = seg.flags
        if flags & RST:
            return
        buf, t = seg.buf, seg.t
        if flags & ACK:
            # <SEQ=SEG.ACK><CTL=RST>
            self.dispatch_bare(seg, RST, (buf[t + 8] << 8) | buf[t + 9],
                               (buf[t + 10] << 8) | buf[t + 11], 0, 0, 0)
        else:
            # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
            ahi, alo = seq.add_halves((buf[t + 4] << 8) | buf[t + 5],
                                      (buf[t + 6] << 8) | buf[t + 7], seg.seg_len())
            self.dispatch_bare(seg, RST | ACK, 0, 0, ahi, alo, 0)
        self.stats.tcpOutRsts += 1

    # ---- output ------------------------------------------------------------------------

    def write_tcp_header(self, t, sport, dport, flags, wnd, with_mss):
        if flags & RST:
            self.stats.tcpOutRsts += 1
        return tcpseg.write_header(self.txbuf, t, sport, dport, flags, wnd,
                                   self.mss if with_mss else 0)

    def dispatch_bare(self, seg, flags, shi, slo, ahi, alo, wnd):
        """A header-only reply to seg, numbers given as wire halves (no TCB involved)."""
        buf = self.txbuf
        t = self.ip_off + ipv4.HEADER_LEN
        tcpseg.write_header(buf, t, seg.dport, seg.sport, flags, wnd, 0)
        buf[t + 4], buf[t + 5], buf[t + 6], buf[t + 7] = shi >> 8, shi & 0xFF, slo >> 8, slo & 0xFF
        buf[t + 8], buf[t + 9], buf[t + 10], buf[t + 11] = ahi >> 8, ahi & 0xFF, alo >> 8, alo & 0xFF
        self.dispatch_tcp(seg.rip_hi, seg.rip_lo, tcpseg.HEADER_LEN)

    def dispatch_tcp(self, rip_hi, rip_lo, tlen):
        """Wrap the TCP segment at txbuf[ip_off + 20:] in IPv4 and send it."""
        buf = self.txbuf
        ip = self.ip_off
        ident = self.next_ident()
        ipv4.write_header(buf, ip, self.ip, rip_hi, rip_lo, ipv4.PROTO_TCP, tlen, ident)
        tcpseg.finish(buf, ip, ip + ipv4.HEADER_LEN, tlen)
        self.stats.tcpOutSegs += 1
        total = ipv4.HEADER_LEN + tlen
        if self.tracer:
            self.tracer("out", buf, ip, total)
        self.dispatch_ipv4(rip_hi, rip_lo, total, self.clock())

    def dispatch_ipv4(self, dst_hi, dst_lo, total, now, low=False):
        """Send the IPv4 packet at txbuf[ip_off:ip_off + total]: straight out on an IP-only
        link; on Ethernet to the next hop's MAC, holding the frame while ARP resolves it.
        True if it left through a resolved ARP entry, arp.last (tcp.py _emit keeps it).

        low: the packet answers one we did not ask for (an echo reply): it may not take
        ARP resources our own traffic needs, nor mark its next hop as in use (arp.py).
        """
        self.stats.ipOutRequests += 1
        if not (self.ip_hi or self.ip_lo) and not (dst_hi == 0xFFFF and dst_lo == 0xFFFF):
            # No address: only DHCP's broadcasts may leave (from 0.0.0.0, RFC 2131 4.1).
            self.stats.ipOutNoRoutes += 1
            return
        if not self.mac:
            if self.capture is not None:
                self.capture(1, self.txbuf, total)
            self.link.send(self.txmv[:total])
            return
        nh_hi, nh_lo = dst_hi, dst_lo
        if ((dst_hi ^ self.ip_hi) & self.mask_hi) or ((dst_lo ^ self.ip_lo) & self.mask_lo):
            if dst_hi >= 0xE000 or dst_hi < 0x0100 or (dst_hi >> 8) == 127:
                pass  # not routed: multicast, broadcast or martian (sorted out below)
            elif not self.gateway:
                self.stats.ipOutNoRoutes += 1
                return
            else:
                nh_hi, nh_lo = self.gw_hi, self.gw_lo
        buf = self.txbuf
        n = ether.HEADER_LEN + total
        mac = self.arp.lookup(nh_hi, nh_lo, now, not low)
        if mac is None:
            if ipv4.martian(nh_hi, nh_lo, self.ip_hi, self.ip_lo, self.mask_hi, self.mask_lo):
                # Never an ARP entry for these. Broadcast and multicast have fixed MACs;
                # 0/8, 127/8, 240/4 and our own address are not sent anywhere.
                if ipv4.is_broadcast(nh_hi, nh_lo, self.ip_hi, self.ip_lo, self.mask_hi,
                                     self.mask_lo):
                    mac = ether.BROADCAST
                elif nh_hi >> 12 == 0xE:
                    mac = ether.multicast_mac(nh_hi, nh_lo)
                else:
                    self.stats.ipOutNoRoutes += 1
                    return
            else:
                self.dirty = True  # an ARP request to resend on time (poll's scan)
                i, ask = self.arp.start(nh_hi, nh_lo, now, low)
                if i < 0 or not self.arp.enqueue(i, buf, n, low):
                    self.stats.arpQueueDrops += 1
                if ask:
                    self.send_arp_request(nh_hi, nh_lo)
                return
        self.send_frame(mac, n)
        return True

    def next_ident(self):
        """The IPv4 ID for the next packet we send (one counter for every protocol)."""
        k = self.knobs
        ident = k[KNOB_IDENT] = (k[KNOB_IDENT] + 1) & 0xFFFF
        return ident

    def send_frame(self, mac, n):
        """Send the Ethernet frame txbuf[:n] to mac (our MAC and the type are in place)."""
        buf = self.txbuf
        if _copy is None or not _copy(buf, 0, mac, 0, 6):  # native: a third of the cost
            buf[0] = mac[0]
            buf[1] = mac[1]
            buf[2] = mac[2]
            buf[3] = mac[3]
            buf[4] = mac[4]
            buf[5] = mac[5]
        if self.capture is not None:
            self.capture(1, buf, n)
        self.link.send(self.txmv[:n])


def _hash(secret, *words):
    """32-bit keyed hash of 16-bit words: SHA-256 where the port has it, else FNV-1a."""
    data = bytearray(secret)
    for w in words:
        data.append(w >> 8)
        data.append(w & 0xFF)
    try:
        import hashlib

        d = hashlib.sha256(data).digest()
        return (d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]
    except (ImportError, AttributeError):  # pragma: no cover - ports without hashlib
        h = 0x811C9DC5
        for b in data:
            h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
        return h
