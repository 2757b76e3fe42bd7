# A batched TCP fuzzer: plausible, random and mutated segments, 1 to 8 per poll(), against
# several connections in every state, with the invariants checked after every poll().
# MIT licence.
#
#   python host_tests/fuzz.py --runs 1000 [--seed 1] [--ip | --ether | --lan] [--log]
#                             [--minimise]
#   micropython host_tests/fuzz.py --runs 100
#
# --lan runs the LAN-services scenarios instead (DHCP, DNS, mDNS: see LanScenario below).
#
# Runs the same on CPython, MicroPython unix and MicroPython WebAssembly: its own PRNG (an
# xorshift32 kept in 16-bit halves, so it makes no heap integers on 32-bit ports), no
# argparse, no hypothesis. A run is one *scenario*, fixed by its seed:
#
#   1. A Stack on an in-memory link (IP-only like TUN, or Ethernet with ARP), with small
#      pools and buffers, and the stack's random source replaced by a seeded one (so a
#      seed replays exactly). A listener on port 80, most of the time.
#   2. Up to 7 peer *slots*, each a remote port (and address) with a small model of a
#      peer TCP: it opens (to our listener, or answers the application's connect(), or a
#      simultaneous open), sends data, acknowledges what it got, advertises a normal,
#      small, zero or changing window, closes. Each slot's payload bytes carry its own tag
#      (high nibble) and the sequence number (low nibble); the application's bytes to it
#      carry another tag. So a byte on the wire or in recv() says whose it is and where.
#   3. Batches: 1 to 8 segments, then one poll(). A segment is the model's next one, or it
#      perturbed (seq/ack exact, +-1, +-window, old; flags), a replay of an earlier one
#      (the same SYN twice, the handshake's SYN and ACK together), one the stack sent
#      reflected back, an RST, a random segment, bytes of a header overwritten (payload
#      and checksums made right again so the damage reaches TCP), a martian source, ICMP,
#      ARP, garbage. Between batches the application pokes its sockets (send, recv,
#      close, shutdown, abort, accept, connect) and the clock moves on by a random amount.
#   4. The application closes or aborts everything, then the clock runs 2 hours from one
#      deadline to the next (as a board sleeping until poll() says), with the peers
#      silent, or answering every segment with an ACK (of zero window, or not).
#      Then every TCB and TIME-WAIT slot must be back and no timer left.
#
# After every poll() and every application call: Invariants.check() (sequence variables,
# rings, out-of-order ranges, pools, TIME-WAIT table, listeners, buffer sizes, which socket
# holds which TCB, timers) and every frame the stack sent is checked (headers, checksums,
# addresses, and each payload byte's tag and position: another connection's bytes, or bytes
# never written, are a leak). poll() and the socket calls must raise nothing but OSError.
#
# A failure names its seed and the command that replays it; --minimise cuts the recorded
# scenario down to a short script that still fails the same way.

import gc
import sys


if __name__ == "__main__":
    # Run as a script, its own folder is on sys.path (CPython and MicroPython): the repo
    # root goes there too, as run_tests.py puts it.
    from run_tests import _add_paths

    _add_paths()

import stack  # noqa: E402  first: on CPython it provides `micropython.const` to what follows
from stack import SHUT_RD, SHUT_RDWR, SHUT_WR, SO_ERROR, SOL_SOCKET, Stack, port, tcp  # noqa
from stack.link.pipe import pipe  # noqa: E402

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
M32 = 0xFFFFFFFF

OUR_IP = b"\x0a\x00\x00\x02"
OUR_MAC = b"\x02\x00\x00\x00\x00\x02"
PEER_IPS = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x03")
LISTEN_PORT = 80
# Sources no neighbour may use (DESIGN.md section 10), and what mutations put there.
MARTIANS = (b"\x00\x00\x00\x00", b"\x00\x01\x02\x03", b"\x7f\x00\x00\x01", b"\xff\xff\xff\xff",
            b"\x0a\x00\x00\xff", b"\xe0\x00\x00\x01", b"\xef\x01\x02\x03", OUR_IP)
STRANGER_PTAG = 0  # payload tag of segments from no slot
STRANGER_ATAG = 8  # the application's bytes to a connection from no slot
TWO_HOURS_MS = 2 * 3600 * 1000

# States the make-test seeds must reach between them (test_fuzz.py), as counted by label().
STATES = ("LISTEN", "SYN-SENT", "SYN-RECEIVED", "SYN-RECEIVED (backlog)", "ESTABLISHED",
          "FIN-WAIT-1", "FIN-WAIT-1 (orphan)", "FIN-WAIT-2", "FIN-WAIT-2 (orphan)",
          "CLOSE-WAIT", "CLOSING", "CLOSING (orphan)", "LAST-ACK", "LAST-ACK (orphan)",
          "TIME-WAIT", "zero window, data waiting", "several connections")


# ---- a PRNG that is the same on every interpreter --------------------------------------


class Rand:
    """xorshift32 (Marsaglia 2003) with the state in two 16-bit halves: no intermediate
    value reaches 2**30, so 32-bit MicroPython makes no heap integers for it."""

    def __init__(self, seed):
        self.h = ((seed >> 16) ^ 0x9E37) & 0xFFFF
        self.l = (seed ^ 0x79B9) & 0xFFFF
        if not (self.h or self.l):
            self.l = 1
        for _ in range(12):
            self.next16()

    def next16(self):
        h, lo = self.h, self.l
        # x ^= x << 13
        h ^= ((h << 13) | (lo >> 3)) & 0xFFFF
        lo ^= (lo << 13) & 0xFFFF
        # x ^= x >> 17
        lo ^= h >> 1
        # x ^= x << 5
        h ^= ((h << 5) | (lo >> 11)) & 0xFFFF
        lo ^= (lo << 5) & 0xFFFF
        self.h, self.l = h, lo
        return h

    def below(self, n):
        """0 <= r < n (n >= 1)."""
        if n <= 0x8000:
            return self.next16() % n
        return ((self.next16() << 16) | self.next16()) % n

    def span(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def chance(self, percent):
        return self.next16() % 100 < percent

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def u32(self):
        return (self.next16() << 16) | self.next16()

    def bytes(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.next16() & 0xFF
        return bytes(out)


class Failure(Exception):
    """An invariant broken, or an exception where none may be. kind is the part that stays
    the same when the numbers change (minimise() keeps scripts that fail the same way)."""

    def __init__(self, kind, detail=""):
        super().__init__(kind + (": " + detail if detail else ""))
        self.kind = kind
        self.detail = detail
        self.cause = None  # the exception poll() or a socket call raised, if any


def fail(kind, detail=""):
    raise Failure(kind, detail)


# ---- invariants ------------------------------------------------------------------------

_F = tcp.FIELDS
_NF = len(_F)
_STATE = _F.index("state")
_IN_USE = _F.index("in_use")
_ORPHAN = _F.index("orphan")
_RIP_HI = _F.index("rip_hi")
_RIP_LO = _F.index("rip_lo")
_LPORT = _F.index("lport")
_RPORT = _F.index("rport")
_SND_UNA = _F.index("snd_una")
_SND_NXT = _F.index("snd_nxt")
_SND_MAX = _F.index("snd_max")
_SND_WND = _F.index("snd_wnd")
_MAX_SND_WND = _F.index("max_snd_wnd")
_RTO_MS = _F.index("rto_ms")
_SND_MSS = _F.index("snd_mss")
_FIN_SEQ = _F.index("fin_seq")
_RCV_NXT = _F.index("rcv_nxt")
_RCV_LO = _F.index("rcv_lo")
_RCV_ADV = _F.index("rcv_adv")
_RX_FIN = _F.index("rx_fin")
_RX_UNACKED = _F.index("rx_unacked")
_ACK_NOW = _F.index("ack_now")
_REXMIT_AT = _F.index("rexmit_at")
_PERSIST_AT = _F.index("persist_at")
_ACK_AT = _F.index("ack_at")
_FIN2_AT = _F.index("fin2_at")
_CWND = _F.index("cwnd")
_SSTHRESH = _F.index("ssthresh")
_RX_HEAD = _F.index("rx_head")
_RX_COUNT = _F.index("rx_count")
_RX_SIZE = _F.index("rx_size")
_TX_HEAD = _F.index("tx_head")
_TX_COUNT = _F.index("tx_count")
_TX_SIZE = _F.index("tx_size")
_ASM = _F.index("asm")
_INDEX = _F.index("index")
# Every deadline field ("rexmit_at", "fin2_at", ...; rtt_at is a timestamp, not a deadline).
_DEADLINES = tuple(i for i in range(_NF) if _F[i].endswith("_at") and _F[i] != "rtt_at")

CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED = tcp.CLOSED, tcp.LISTEN, tcp.SYN_SENT, tcp.SYN_RECEIVED
ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2 = tcp.ESTABLISHED, tcp.FIN_WAIT_1, tcp.FIN_WAIT_2
CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT = tcp.CLOSE_WAIT, tcp.CLOSING, tcp.LAST_ACK, tcp.TIME_WAIT
NAMES = tcp.STATE_NAMES
_MAX_WND = 65535  # no window scaling: neither window nor cwnd has any use beyond this
_MIN_MSS = 48  # DESIGN.md section 10: the peer's MSS is clamped to at least this


def tcb_text(t):
    v = t.v
    return "tcb %d %s%s una=%d nxt=%d max=%d fin=%d tx=%d rcv_nxt=%d adv=%d rx=%d wnd=%d" % (
        t.index, NAMES[v[_STATE]], " orphan" if v[_ORPHAN] else "", v[_SND_UNA], v[_SND_NXT],
        v[_SND_MAX], v[_FIN_SEQ], v[_TX_COUNT], v[_RCV_NXT], v[_RCV_ADV], v[_RX_COUNT],
        v[_SND_WND])


class Invariants:
    """What must hold of a Stack between any two calls into it. Make one right after
    Stack(): it remembers the buffer sizes and what a fresh TCB looks like."""

    def __init__(self, net):
        self.net = net
        self.rxbuf_len = len(net.rxbuf)
        self.txbuf_len = len(net.txbuf)
        self.rx_size = len(net.tcbs[0].rxb)
        self.tx_size = len(net.tcbs[0].txb)
        arp = net.arp
        self.arp_lens = [len(b) for b in arp.qbuf] if arp is not None else []
        self.arpbuf_len = len(net.arpbuf) if arp is not None else 0
        t = net.tcbs[0]
        self.fresh = None if t.v[_IN_USE] else list(t.v[:_NF])

    def check(self, after_poll=False, returned=-1, sockets=None):
        """Raise Failure if anything is off. after_poll: poll() just ran, so every TCB has
        had its output() and timers (stricter); returned: what that poll() returned."""
        net = self.net
        now = net.clock()
        diff = port.ticks_diff
        # No buffer changed size: a slice assignment of the wrong length resizes a
        # bytearray silently on MicroPython (issue 10 item 1 shrank txbuf 1500 -> 1477).
        if len(net.rxbuf) != self.rxbuf_len or len(net.txbuf) != self.txbuf_len:
            fail("frame buffer changed size", "rxbuf %d txbuf %d, were %d %d" % (
                len(net.rxbuf), len(net.txbuf), self.rxbuf_len, self.txbuf_len))
        if len(net.rxmv) != self.rxbuf_len or len(net.txmv) != self.txbuf_len:
            fail("frame buffer view changed size")
        if net.arp is not None:
            q = net.arp.qbuf
            for i in range(len(q)):
                if len(q[i]) != self.arp_lens[i]:
                    fail("ARP queue buffer changed size", "%d: %d" % (i, len(q[i])))
                if not 0 <= net.arp.qlen[i] <= self.arp_lens[i]:
                    fail("ARP queue length out of range", "%d: %d" % (i, net.arp.qlen[i]))
            if len(net.arpbuf) != self.arpbuf_len:
                fail("ARP frame buffer changed size")
        tcbs = net.tcbs
        used = 0
        estab = 0
        due = None  # ms to the earliest deadline of any TCB or TIME-WAIT record
        for x, t in enumerate(tcbs):
            v = t.v
            if v[_INDEX] != x:
                fail("TCB index changed", "tcb %d says %d" % (x, v[_INDEX]))
            if len(t.rxb) != self.rx_size or len(t.txb) != self.tx_size:
                fail("TCB ring changed size", "tcb %d rxb %d txb %d" % (
                    t.index, len(t.rxb), len(t.txb)))
            if v[_RX_SIZE] != self.rx_size or v[_TX_SIZE] != self.tx_size:
                fail("TCB ring size field changed", tcb_text(t))
            if not v[_IN_USE]:
                if t.parent is not None or t.owner is not None:
                    fail("free TCB has leftover state", "tcb %d refers to %r, %r" % (
                        t.index, t.parent, t.owner))
                if self.fresh is not None and list(v[:_NF]) != self.fresh:
                    for i in range(_NF):
                        if v[i] != self.fresh[i] and i != _INDEX:  # (its place: its own)
                            fail("free TCB has leftover state", "tcb %d %s=%r, fresh %r" % (
                                t.index, _F[i], v[i], self.fresh[i]))
                if v[_STATE] != CLOSED or v[_RX_COUNT] or v[_TX_COUNT]:
                    fail("free TCB has leftover state", tcb_text(t))
                continue
            used += 1
            self._check_tcb(t, after_poll)
            s = v[_STATE]
            if s == ESTABLISHED or s == CLOSE_WAIT:
                estab += 1
            for i in _DEADLINES:
                at = v[i]
                if at >= 0:  # tcp.OFF: off
                    left = diff(at, now)
                    if due is None or left < due:
                        due = left
        free = net.free_tcb_count()
        if free + used != len(tcbs):
            fail("pool count", "free %d + used %d != %d" % (free, used, len(tcbs)))
        if net.stats.tcpCurrEstab != estab:
            fail("tcpCurrEstab", "%d, but %d TCBs are ESTABLISHED or CLOSE-WAIT" % (
                net.stats.tcpCurrEstab, estab))
        due = self._check_time_wait(now, due)
        self._check_listeners()
        if sockets is not None:
            self._check_sockets(sockets)
        if after_poll and returned != -1:
            # The board sleeps for what poll() returns: a deadline before that is missed.
            if returned is not None and returned < 0:
                fail("poll() returned a negative time", "%r" % returned)
            if due is not None:
                if due < 0:
                    fail("deadline passed but poll() did not act on it", "%d ms ago" % -due)
                if returned is None:
                    fail("poll() returned None with a timer pending", "due in %d ms" % due)
                if returned > due:
                    fail("poll() returned a time past a deadline", "returned %d, due in %d" % (
                        returned, due))

    def _check_tcb(self, t, after_poll):
        v = t.v
        s = v[_STATE]
        if s == LISTEN or s == TIME_WAIT or not CLOSED <= s <= LAST_ACK:
            fail("TCB state", "%s in a TCB" % (NAMES[s] if 0 <= s < len(NAMES) else s))
        # Rings: head inside, count within size.
        if not (0 <= v[_RX_HEAD] < v[_RX_SIZE] and 0 <= v[_RX_COUNT] <= v[_RX_SIZE]
                and 0 <= v[_TX_HEAD] < v[_TX_SIZE] and 0 <= v[_TX_COUNT] <= v[_TX_SIZE]):
            fail("ring offsets", "%s rx_head=%d tx_head=%d" % (
                tcb_text(t), v[_RX_HEAD], v[_TX_HEAD]))
        # Out-of-order ranges: at most ASSEMBLER_RANGES, sorted, disjoint, not touching,
        # beyond rcv_nxt and inside the ring's free space.
        n = v[_ASM]
        if not 0 <= n <= (len(v) - _ASM - 1) // 2:
            fail("out-of-order ranges", "%d ranges" % n)
        last = 0
        for i in range(n):
            a, b = v[_ASM + 1 + 2 * i], v[_ASM + 2 + 2 * i]
            if not last < a < b:
                fail("out-of-order ranges", "%s %r" % (tcb_text(t), t.rx_ranges()))
            last = b
        if last > v[_RX_SIZE] - v[_RX_COUNT]:
            fail("out-of-order ranges", "end %d beyond free space %s" % (last, tcb_text(t)))
        if s == CLOSED:
            # Ended; the application still holds the socket (to read the rest, or EOF).
            if v[_ORPHAN] or t.parent is not None:
                fail("CLOSED TCB not released", tcb_text(t))
            for i in _DEADLINES:
                if v[i] >= 0:
                    fail("timer running in CLOSED", "%s %s" % (tcb_text(t), _F[i]))
            if v[_TX_COUNT]:
                fail("CLOSED TCB keeps data to send", tcb_text(t))
            return
        una, nxt, mx, fin = v[_SND_UNA], v[_SND_NXT], v[_SND_MAX], v[_FIN_SEQ]
        # SND.UNA <= SND.NXT <= SND.MAX (DESIGN.md section 10), in every state.
        if not una <= nxt <= mx:
            fail("SND.UNA <= SND.NXT <= SND.MAX", tcb_text(t))
        if s == SYN_SENT or s == SYN_RECEIVED:
            # Only the SYN. snd_nxt is 0 only between "resend the SYN" and output()
            # sending it, inside poll() (which ends with output() for every TCB) or
            # connect(): never where anyone can see it.
            if una != 0 or mx != 1 or nxt != 1:
                fail("SYN-state sequence numbers", tcb_text(t))
            if v[_REXMIT_AT] < 0:
                fail("SYN with no retransmission timer", tcb_text(t))
            if v[_TX_COUNT]:
                fail("data queued before ESTABLISHED", tcb_text(t))
        else:
            # The SYN is acknowledged in every synchronized state, except that a close()
            # in SYN-RECEIVED goes to FIN-WAIT-1 with it still in flight (RFC 9293 3.10.4),
            # and the peer's FIN can then take that to CLOSING.
            if una < 1 and s != FIN_WAIT_1 and s != CLOSING:
                fail("synchronized state with our SYN unacknowledged", tcb_text(t))
            # In flight: queued data, and the FIN once it is queued; never more.
            if mx > una + v[_TX_COUNT] + (1 if fin >= 0 else 0):
                fail("more in flight than queued", tcb_text(t))
            if fin >= 0:
                # The FIN follows the last byte queued, after the SYN, and stays there.
                if fin < 1 or mx > fin + 1 or not (
                        una + v[_TX_COUNT] == fin or (una == fin + 1 and not v[_TX_COUNT])):
                    fail("FIN position", tcb_text(t))
            if s == FIN_WAIT_1 or s == CLOSING or s == LAST_ACK:
                if fin < 0:
                    fail("closing state with no FIN queued", tcb_text(t))
            elif s == FIN_WAIT_2:
                if fin < 0 or una != fin + 1:
                    fail("FIN-WAIT-2 with our FIN unacknowledged", tcb_text(t))
            elif fin >= 0:
                fail("FIN queued in %s" % NAMES[s], tcb_text(t))
            peer_fin = s == CLOSE_WAIT or s == CLOSING or s == LAST_ACK
            if bool(v[_RX_FIN]) != peer_fin:
                fail("peer's FIN and state disagree", "%s rx_fin=%r" % (
                    tcb_text(t), v[_RX_FIN]))
            # Something to send or to be acknowledged: a timer must be running, or
            # nothing will ever move again (issue 10 item 3: small window, data queued).
            if ((mx > una or v[_TX_COUNT] or (fin >= 0 and una <= fin))
                    and v[_REXMIT_AT] < 0 and v[_PERSIST_AT] < 0):
                fail("data or FIN waiting with no timer", tcb_text(t))
            cw = v[_CWND]
            if not 0 < cw <= _MAX_WND or not 0 < v[_SSTHRESH] <= _MAX_WND:
                fail("cwnd out of bounds", "%s cwnd=%d ssthresh=%d" % (
                    tcb_text(t), cw, v[_SSTHRESH]))
        if s != SYN_SENT:
            m = v[_SND_MSS]
            if not _MIN_MSS <= m <= self.net.mss:
                fail("send MSS out of bounds", "%s mss=%d" % (tcb_text(t), m))
            # The window we advertised never promises more than the ring can take.
            if v[_RCV_NXT] < 1 or v[_RCV_ADV] - v[_RCV_NXT] > v[_RX_SIZE] - v[_RX_COUNT]:
                fail("advertised window beyond free ring space", tcb_text(t))
            if v[_RX_UNACKED] and v[_ACK_AT] < 0 and not v[_ACK_NOW]:
                fail("received data with no ACK scheduled", tcb_text(t))
        elif v[_RCV_NXT] or v[_RX_COUNT] or n:
            fail("data received in SYN-SENT", tcb_text(t))
        if not 0 <= v[_SND_WND] <= v[_MAX_SND_WND] <= _MAX_WND:
            fail("send window out of range", "%s max_snd_wnd=%d" % (
                tcb_text(t), v[_MAX_SND_WND]))
        cfg = self.net.cfg
        if not 0 < v[_RTO_MS] <= cfg.rto_max_ms:
            fail("RTO out of range", "%s rto=%d" % (tcb_text(t), v[_RTO_MS]))
        if v[_ORPHAN]:
            # Nobody will read or write: it only finishes its close, within a deadline.
            if s != FIN_WAIT_1 and s != FIN_WAIT_2 and s != CLOSING and s != LAST_ACK:
                fail("orphan in %s" % NAMES[s], tcb_text(t))
            if t.parent is not None:
                fail("orphan in a backlog", tcb_text(t))
            if s == FIN_WAIT_2 and v[_FIN2_AT] < 0:
                fail("orphan in FIN-WAIT-2 with no timeout", tcb_text(t))
        if after_poll:
            # poll() ran output() for every TCB: an ACK asked for has left.
            if v[_ACK_NOW]:
                fail("ACK requested but not sent by poll()", tcb_text(t))
            live = False
            for i in _DEADLINES:
                if v[i] >= 0:
                    live = True
            if v[_ORPHAN] and not live:
                fail("orphan with no timer", tcb_text(t))

    def _check_time_wait(self, now, due):
        net = self.net
        tw = net.tw
        recs = tw.records()
        if not 0 <= tw.used <= tw.slots or tw.used != len(recs):
            fail("TIME-WAIT count", "used %d, slots %d, records %d" % (
                tw.used, tw.slots, len(recs)))
        limit = 2 * net.cfg.msl_ms
        seen = []
        for slot, rhi, rlo, lport, rport in recs:
            key = (rhi, rlo, lport, rport)
            if key in seen:
                fail("two TIME-WAIT records for one 4-tuple", "%r" % (key,))
            seen.append(key)
            left = port.ticks_diff(tw.expiry[slot], now)
            if left > limit:
                fail("TIME-WAIT record outlives 2 MSL", "%d ms left" % left)
            if due is None or left < due:
                due = left
            for t in net.tcbs:
                v = t.v
                if (v[_IN_USE] and v[_STATE] != CLOSED and v[_LPORT] == lport
                        and v[_RPORT] == rport and v[_RIP_HI] == rhi and v[_RIP_LO] == rlo):
                    fail("TCB and TIME-WAIT record for one 4-tuple", tcb_text(t))
        return due

    def _check_listeners(self):
        net = self.net
        ports = []
        for lst in net.listeners:
            if not lst._listening:
                fail("closed socket in the listener list")
            if lst._lport in ports:
                fail("two listeners on one port", "%d" % lst._lport)
            ports.append(lst._lport)
            if len(lst._backlog) > lst._backlog_max:
                fail("backlog over its limit", "%d > %d" % (
                    len(lst._backlog), lst._backlog_max))
            for t in lst._backlog:
                v = t.v
                if not v[_IN_USE] or t.parent is not lst or v[_STATE] == CLOSED:
                    fail("backlog holds a TCB that is not its own", tcb_text(t))
        for t in net.tcbs:
            v = t.v
            p = t.parent
            if v[_IN_USE] and p is not None:
                found = False
                for x in p._backlog:
                    if x is t:
                        found = True
                if not found or not p._listening:
                    fail("TCB with a parent that does not list it", tcb_text(t))

    def _check_sockets(self, sockets):
        # Each TCB the application holds is in use and held once; each in-use TCB is held
        # by a socket, a listener's backlog, or nobody (an orphan). A socket holding a TCB
        # that went back to the pool would read the next connection's bytes.
        held = []
        for s in sockets:
            if s._listening:
                continue
            t = s._tcb
            if t is None:
                continue
            if s._closed:
                fail("closed socket holds a TCB", tcb_text(t))
            if not t.v[_IN_USE]:
                fail("socket holds a free TCB", "tcb %d" % t.index)
            for x in held:
                if x is t:
                    fail("two sockets hold one TCB", tcb_text(t))
            held.append(t)
        for t in self.net.tcbs:
            v = t.v
            if v[_IN_USE] and not v[_ORPHAN] and t.parent is None:
                found = False
                for x in held:
                    if x is t:
                        found = True
                if not found:
                    fail("TCB in use that no one holds", tcb_text(t))


def checked_poll(net, inv, sockets=None):
    """net.poll(), then the invariants (after-poll strictness); returns what poll() did.

    A 0 means "call again at once"; with no frame waiting nothing can be due again, so a
    second 0 is a board spinning at 100 % (issue 10 item 7). net.link must be a pipe end.
    """
    r = net.poll()
    if r == 0 and not net.link.pending():
        r = net.poll()
        if r == 0:
            fail("poll() keeps returning 0 with nothing to do")
    inv.check(True, r, sockets)
    return r


def label_states(net, counts):
    """Count each state seen (with orphan/backlog variants) in counts: {label: n}."""
    n = 0
    for t in net.tcbs:
        v = t.v
        if not v[_IN_USE] or v[_STATE] == CLOSED:
            continue
        n += 1
        name = NAMES[v[_STATE]]
        if v[_ORPHAN]:
            name += " (orphan)"
        elif t.parent is not None:
            name += " (backlog)"
        _count(counts, name)
        if v[_ORPHAN] or t.parent is not None:
            _count(counts, NAMES[v[_STATE]])
        if v[_SND_WND] == 0 and v[_TX_COUNT] > v[_SND_NXT] - v[_SND_UNA]:
            _count(counts, "zero window, data waiting")
    if n > 1:
        _count(counts, "several connections")
    if net.listeners:
        _count(counts, "LISTEN")
    if net.tw.used:
        _count(counts, "TIME-WAIT")


def _count(d, key, n=1):
    d[key] = d.get(key, 0) + n


# ---- packets ---------------------------------------------------------------------------

_PAT_LEN = 1600 + 256


def _patterns():
    out = []
    for g in range(16):
        b = bytearray(_PAT_LEN)
        for k in range(_PAT_LEN):
            q = k & 255
            b[k] = (g << 4) | ((q + (q >> 4)) & 15)
        out.append(bytes(b))
    return out


# Made at import, before any Stack: made during a run, these 16 blocks kept for good would
# sit between the freed rings and leave a board-sized heap (190 KiB) too fragmented for the
# next scenario's 4 KiB rings.
_PATTERNS = _patterns()


def pattern(tag):
    """The payload of one sender by position k (its sequence number's low byte onwards):
    (tag << 4) | ((q + (q >> 4)) & 15) with q = k & 255, so the high nibble says whose a
    byte is and the low one where it belongs (a shift of 16 bytes shows as well as one of
    1; the pattern repeats every 256)."""
    return _PATTERNS[tag]


def _put32(p, i, x):
    p[i] = (x >> 24) & 0xFF
    p[i + 1] = (x >> 16) & 0xFF
    p[i + 2] = (x >> 8) & 0xFF
    p[i + 3] = x & 0xFF


def _get32(p, i):
    return (p[i] << 24) | (p[i + 1] << 16) | (p[i + 2] << 8) | p[i + 3]


def _csum_ok(p, start, end, acc):
    return port.fold_checksum(port.checksum(p, start, end, acc)) == 0xFFFF


def tcp_packet(src, dst, sport, dport, seq, ack, flags, wnd, dlen, mss=-1):
    """An IPv4/TCP packet (bytearray); payload and checksums are filled in by finish()."""
    hl = 24 if mss >= 0 else 20
    total = 20 + hl + dlen
    p = bytearray(total)
    p[0] = 0x45
    p[2] = total >> 8
    p[3] = total & 0xFF
    p[6] = 0x40
    p[8] = 64
    p[9] = 6
    p[12:16] = src
    p[16:20] = dst
    p[20] = sport >> 8
    p[21] = sport & 0xFF
    p[22] = dport >> 8
    p[23] = dport & 0xFF
    _put32(p, 24, seq & M32)
    _put32(p, 28, ack & M32)
    p[32] = (hl >> 2) << 4
    p[33] = flags
    p[34] = (wnd >> 8) & 0xFF
    p[35] = wnd & 0xFF
    if mss >= 0:
        p[40] = 2
        p[41] = 4
        p[42] = (mss >> 8) & 0xFF
        p[43] = mss & 0xFF
    return p


def _ip_packet(src, dst, proto, n):
    """An IPv4 header (checksum left to finish()) and n zero bytes after it."""
    p = bytearray(20 + n)
    p[0] = 0x45
    p[2] = (20 + n) >> 8
    p[3] = (20 + n) & 0xFF
    p[8] = 64
    p[9] = proto
    p[12:16] = src
    p[16:20] = dst
    return p


def icmp_packet(src, kind, code, body):
    p = _ip_packet(src, OUR_IP, 1, 8 + len(body))
    p[20] = kind
    p[21] = code
    p[28:] = body
    return p


def udp_packet(src, dst, sport, dport, payload, csum=True):
    """A UDP datagram; its checksum is filled in (or left 0, "none") here."""
    n = 8 + len(payload)
    p = _ip_packet(src, dst, 17, n)
    p[20] = sport >> 8
    p[21] = sport & 0xFF
    p[22] = dport >> 8
    p[23] = dport & 0xFF
    p[24] = n >> 8
    p[25] = n & 0xFF
    p[28:] = payload
    if csum:
        c = 0xFFFF ^ port.fold_checksum(port.checksum(p, 12, 20 + n, 17 + n))
        c = c or 0xFFFF
        p[26] = c >> 8
        p[27] = c & 0xFF
    return p


def is_martian(a):
    return a[0] == 0 or a[0] == 127 or a[0] >= 224 or a == OUR_IP or (
        a[0] == 10 and a[1] == 0 and a[2] == 0 and a[3] == 255)


def describe(p, iss=None, irs=None):
    """One line for an IPv4 packet; seq/ack relative to irs/iss when given."""
    if len(p) < 20:
        return "runt %d bytes" % len(p)
    src = "%d.%d.%d.%d" % (p[12], p[13], p[14], p[15])
    dst = "%d.%d.%d.%d" % (p[16], p[17], p[18], p[19])
    ihl = (p[0] & 15) * 4
    if p[9] != 6 or len(p) < ihl + 20:
        return "IP %s > %s proto %d len %d" % (src, dst, p[9], len(p))
    t = ihl
    flags = p[t + 13]
    names = []
    for bit, name in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
                      (URG, "URG")):
        if flags & bit:
            names.append(name)
    seq, ack = _get32(p, t + 4), _get32(p, t + 8)
    hl = (p[t + 12] >> 4) * 4
    total = (p[2] << 8) | p[3]
    return "%s:%d > %s:%d [%s] seq=%s ack=%s wnd=%d len=%d%s" % (
        src, (p[t] << 8) | p[t + 1], dst, (p[t + 2] << 8) | p[t + 3], ",".join(names),
        _rel(seq, irs, "irs"), _rel(ack, iss, "iss"), (p[t + 14] << 8) | p[t + 15],
        total - t - hl, "" if hl == 20 else " hl=%d" % hl)


def _rel(x, base, name):
    if base is not None:
        d = (x - base) & M32
        if d < 0x100000:
            return "%s+%d" % (name, d)
        if d > M32 - 0x100000:
            return "%s-%d" % (name, M32 + 1 - d)
    return "0x%08x" % x


# ---- the peers -------------------------------------------------------------------------

PASSIVE, ACTIVE = 0, 1
W_NORMAL, W_SMALL, W_ZERO, W_FLAP = 0, 1, 2, 3


class Slot:
    """One remote port (and address) and a small model of the TCP behind it. Numbers:
    p_* are the peer's sequence space relative to p_iss, r_* ours relative to s_iss."""

    def __init__(self, i, rnd):
        self.i = i
        self.ip = PEER_IPS[1] if rnd.chance(20) else PEER_IPS[0]
        self.ip_text = "%d.%d.%d.%d" % (self.ip[0], self.ip[1], self.ip[2], self.ip[3])
        self.port = 40000 + 8 * i + rnd.below(8)
        self.ptag = 1 + i  # its payload bytes
        self.atag = 9 + i  # the application's bytes to it
        self.mode = PASSIVE if rnd.chance(55) else ACTIVE
        self.simul = self.mode == ACTIVE and rnd.chance(30)
        self.wpolicy = rnd.pick((W_NORMAL, W_NORMAL, W_NORMAL, W_SMALL, W_ZERO, W_ZERO,
                                 W_FLAP))
        self.wbig = rnd.pick((65535, 65535, 8192, 3000, 1200))
        self.wsmall = rnd.span(1, 400)
        self.zero_from_start = rnd.chance(40)
        self.mss = rnd.pick((536, 536, 1460, 1460, -1, 0, 1, 47, 48, 100))
        self.close_after = rnd.pick((-1, -1, 0, 200, 1000, 3000))
        self.close_on_fin = rnd.chance(75)  # closes too once the stack's FIN arrives
        # Loses this percentage of the stack's data segments (then acknowledges only up to
        # the hole: duplicate ACKs, fast retransmit). Its own generator, used only when
        # the stack sends, so a replay loses the same segments.
        self.loss = rnd.pick((0, 0, 0, 10, 30))
        self.loss_rnd = Rand(rnd.u32())
        self.vanished = False  # stops sending good segments (random ones still come)
        self.lport = LISTEN_PORT if self.mode == PASSIVE else 0
        self.hist = []  # packets sent to the stack (for replays)
        self.shist = []  # packets the stack sent to this slot (to reflect)
        self.new_peer(rnd.u32())
        self.new_stack_side(None)

    def new_peer(self, iss):
        self.p_iss = iss & M32
        self.p_nxt = 0  # next sequence number to send (0: the SYN)
        self.p_una = 0  # highest the stack acknowledged
        self.p_fin_at = -1  # our FIN's sequence number once we close
        self.synced = False  # we sent the ACK of their SYN (or our SYN,ACK)
        self.p_syn_sent = False
        self.over = False  # reset, or both FINs exchanged: a new connection may start

    def new_stack_side(self, iss):
        self.s_iss = iss
        self.r_nxt = 1 if iss is not None else 0  # next byte expected from the stack
        self.r_prev = self.r_nxt
        self.s_ack = 0  # its latest ACK and window, in our space
        self.s_wnd = 1000
        self.s_fin = False

    def wnd(self, rnd):
        p = self.wpolicy
        if p == W_NORMAL:
            return self.wbig
        if p == W_SMALL:
            # Large at first, then small: below the MSS and below half the maximum.
            return self.wbig if self.p_nxt <= 1 else self.wsmall
        if p == W_ZERO:
            return 0 if self.zero_from_start or self.r_nxt > 1 else self.wbig
        return rnd.pick((0, 0, 1, 100, 536, 4096, 65535))


def replay_events(scn, events):
    """Play recorded events back on a scenario (TCP or LAN): the model follows the stack's
    output as before. A batch took every waiting frame (ARP replies) and recorded it as an
    "f": the replay has them already."""
    for ev in events:
        op = ev[0]
        if op == "f":
            scn.pending = []
            scn.deliver(ev[1])
        elif op == "p":
            scn.poll()
        elif op == "t":
            scn.advance(ev[1])
        elif op == "a":
            scn.app(ev[1], ev[2], ev[3])
        elif op == "d":
            scn.drain()


class _Recorded:
    """A scenario's events in lists of at most 64: recording never asks for one block of
    more than a few hundred bytes (one list of several hundred events does, and a board's
    190 KiB heap, left in small pieces by a run, may not have it)."""

    def __init__(self):
        self._chunks = [[]]

    def append(self, event):
        c = self._chunks[-1]
        if len(c) == 64:
            c = []
            self._chunks.append(c)
        c.append(event)

    def __len__(self):
        return sum(len(c) for c in self._chunks)

    def __iter__(self):
        for c in self._chunks:
            for event in c:
                yield event


class _Unrecorded:
    """events for a scenario nobody will replay (a campaign): frames are not kept, which
    on a board-sized heap (190 KiB) is the difference between fitting and not."""

    def append(self, event):
        pass


class Scenario:
    """One fuzz run. mode "run" generates and records events; "replay" plays them back."""

    def __init__(self, seed, ether=None, log=None, record=True):
        self.seed = seed
        self.rnd = rnd = Rand(seed)
        self.stack_rnd = Rand(seed ^ 0x5A5A)  # the stack's port.urandom
        self.drain_rnd = Rand(seed ^ 0x3C3C)
        self.log = log
        e = rnd.chance(25)  # drawn either way: --ip/--ether must not change the rest
        self.ether = e if ether is None else ether
        mtu = 1500 if rnd.chance(20) else 576
        kw = {
            "tcbs": rnd.span(3, 6),
            "rx_buf": rnd.pick((512, 1024, 2048, 4096)),
            "tx_buf": rnd.pick((512, 1024, 2048)),
            "tw_slots": rnd.span(1, 3),
            "msl_ms": rnd.pick((500, 2000, 30000)),
            "retries": rnd.pick((2, 3, 5, 15)),
            "syn_retries": rnd.span(1, 6),
            "fin_timeout_ms": rnd.pick((1000, 5000, 60000)),
            "rto_max_ms": rnd.pick((4000, 60000)),
        }
        if rnd.chance(15):
            kw["keepalive_ms"] = rnd.pick((2000, 30000))
        self.kw = kw
        self.n_slots = rnd.span(1, kw["tcbs"] + 1 if kw["tcbs"] < 7 else 7)
        self.slots = [Slot(i, rnd) for i in range(self.n_slots)]
        self.want_listener = rnd.chance(85)
        self.backlog = rnd.span(1, 3)
        self.n_batches = rnd.span(20, 90)
        self.drain_mode = rnd.pick(("silent", "silent", "zero", "ack"))
        self.vanish_at = rnd.span(0, self.n_batches)
        self.now = port.ticks_add(0, -rnd.span(0, 20000))  # crosses the tick wrap soon
        self._urandom = port.urandom
        port.urandom = self.stack_rnd.bytes
        try:
            macs = (b"\x02\x00\x00\x00\x00\x01", OUR_MAC) if self.ether else None
            # 64 frames each way: more than a poll() sends (a ring of a few segments per TCB).
            self.link_test, self.link_stack = pipe(mtu=mtu, depth=64, macs=macs)
            self.net = Stack(self.link_stack, ip="10.0.0.2", prefix=24, clock=self.clock, **kw)
        except BaseException:
            port.urandom = self._urandom
            raise
        self.inv = Invariants(self.net)
        self.mtu = mtu
        self.buf = bytearray(mtu + 14)
        self.socks = []  # AppSock, in creation order (replays name them by index)
        self.listener = None
        self.by_key = {}  # (peer ip, peer port, our port) -> the AppSock on it
        self.iss = {}  # the same key -> the stack's ISS (from its SYN)
        self.peer_isn = {}  # the same key -> the first SYN's sequence number sent to it
        self.pending = []  # frames to deliver before the next poll (ARP replies, answers)
        self.events = _Recorded() if record else _Unrecorded()
        self.draining = False
        self.segments = 0
        self.polls = 0
        self.states = {}

    def close(self):
        port.urandom = self._urandom

    def clock(self):
        return self.now

    def say(self, text):
        if self.log is not None:
            self.log(text)

    # ---- the primitive events (recorded; a replay calls the same) --------------------

    def deliver(self, frame):
        self.events.append(("f", frame))
        if self.log is not None:
            self.say("  > " + self._describe_in(frame))
        self.segments += 1
        self.link_test.send(frame)

    def poll(self):
        if not self.draining:
            self.events.append(("p",))  # drain() is one event: it polls by itself
        self.polls += 1
        net = self.net
        try:
            r = checked_poll(net, self.inv, self._sockets())
        except Failure:
            raise
        except Exception as e:
            f = Failure("poll() raised " + type(e).__name__, repr(e))
            f.cause = e
            raise f
        self.say("poll -> %r" % (r,))
        label_states(net, self.states)
        self.observe()
        return r

    def advance(self, ms):
        self.events.append(("t", ms))
        self.say("advance %d ms" % ms)
        self.now = port.ticks_add(self.now, ms)

    def app(self, op, k=0, arg=0):
        """The application's call op on socket k (an index into self.socks)."""
        self.events.append(("a", op, k, arg))
        self.say("app %s %d %r" % (op, k, arg))
        try:
            self._app(op, k, arg)
        except OSError:
            pass
        except Failure:
            raise
        except Exception as e:
            f = Failure("%s() raised %s" % (op, type(e).__name__), repr(e))
            f.cause = e
            raise f
        self.inv.check(False, -1, self._sockets())
        self.observe()

    def _sockets(self):
        out = [a.sock for a in self.socks]
        if self.listener is not None:
            out.append(self.listener)
        return out

    # ---- the application ---------------------------------------------------------------

    def _app(self, op, k, arg):
        net = self.net
        if op == "listen":
            s = net.socket()
            s.setblocking(False)
            self.listener = s
            s.bind(("0.0.0.0", LISTEN_PORT))
            s.listen(arg)
            return
        if op == "unlisten":
            if self.listener is not None:
                s = self.listener
                self.listener = None
                s.close()
            return
        if op == "accept":
            if self.listener is None:
                return
            conn, addr = self.listener.accept()
            conn.setblocking(False)
            a = AppSock(conn, self._slot_of(addr))
            self.socks.append(a)
            a.learn_key(self)
            return
        if op == "connect":
            sl = self.slots[arg]
            s = net.socket()
            s.setblocking(False)
            a = AppSock(s, sl)
            self.socks.append(a)
            try:
                s.connect((sl.ip_text, sl.port))
            finally:
                a.learn_key(self)
            return
        if k >= len(self.socks):
            return
        a = self.socks[k]
        s = a.sock
        if op == "send":
            off = a.written & 255
            n = s.send(pattern(a.atag)[off:off + arg])
            a.written += n
            a.learn_key(self)
        elif op == "recv":
            data = s.recv(arg)
            a.check_read(self, data)
        elif op == "close":
            s.close()
        elif op == "abort":
            s.abort()
        elif op == "linger":
            s.lingering_close(arg)
        elif op == "shutdown":
            s.shutdown(arg)
        elif op == "nodelay":
            s.setsockopt(6, 1, arg)
        elif op == "poke":
            s.getsockopt(SOL_SOCKET, SO_ERROR)
            s.poll_flags()
            _ = s.state

    def _slot_of(self, addr):
        for sl in self.slots:
            if sl.ip_text == addr[0] and sl.port == addr[1]:
                return sl
        return None

    # ---- what the stack sends ----------------------------------------------------------

    def observe(self):
        if self.link_test.drops or self.link_stack.drops:
            fail("fuzz harness: the in-memory link dropped frames (make the pipe deeper)")
        buf = self.buf
        while True:
            n = self.link_test.recv_into(buf)
            if not n:
                return
            f = bytes(buf[:n])
            if self.ether:
                if n < 14:
                    fail("runt frame sent", "%d bytes" % n)
                et = (f[12] << 8) | f[13]
                if et == 0x0806:
                    self._arp_out(f)
                    continue
                if et != 0x0800:
                    fail("unknown ethertype sent", "0x%04x" % et)
                p = f[14:]
            else:
                p = f
            self._check_out(p)

    def _arp_out(self, f):
        if len(f) < 42 or f[20] != 0 or f[21] not in (1, 2):
            fail("malformed ARP sent", repr(f[:42]))
        if f[21] == 1 and (not self.draining or self.drain_mode != "silent"):
            tpa = f[38:42]
            for ip in PEER_IPS:
                if tpa == ip:
                    mac = b"\x02\x00" + ip
                    self.pending.append(arp_frame(2, mac, ip, OUR_MAC, OUR_IP, OUR_MAC))

    def _check_out(self, p):
        n = len(p)
        if n < 20 or p[0] != 0x45:
            fail("bad IPv4 header sent", repr(p[:20]))
        total = (p[2] << 8) | p[3]
        if total != n:
            fail("IPv4 total length is not the frame's", "%d != %d" % (total, n))
        if not _csum_ok(p, 0, 20, 0):
            fail("bad IPv4 checksum sent")
        if p[12:16] != OUR_IP:
            fail("sent from an address not ours", describe(p))
        dst = p[16:20]
        if is_martian(dst):
            fail("sent to a martian address", describe(p))
        if p[9] == 1:
            if not _csum_ok(p, 20, n, 0):
                fail("bad ICMP checksum sent")
            return
        if p[9] == 17:
            if n < 28 or ((p[24] << 8) | p[25]) != n - 20:
                fail("bad UDP length sent", describe(p))
            if (p[26] or p[27]) and not _csum_ok(p, 12, n, 17 + n - 20):
                fail("bad UDP checksum sent", describe(p))
            return
        if p[9] != 6:
            fail("unknown protocol sent", "%d" % p[9])
        tlen = n - 20
        hl = (p[32] >> 4) * 4 if tlen >= 20 else 0
        if hl < 20 or hl > tlen:
            fail("bad TCP header length sent", describe(p))
        if not _csum_ok(p, 12, n, 6 + tlen):
            fail("bad TCP checksum sent", describe(p))
        sport = (p[20] << 8) | p[21]
        dport = (p[22] << 8) | p[23]
        flags = p[33]
        seq = _get32(p, 24)
        ack = _get32(p, 28)
        wnd = (p[34] << 8) | p[35]
        key = (bytes(dst), dport, sport)
        if not flags & RST and sport == 0:
            # No connection or TIME-WAIT record has local port 0 (it marks a free
            # TIME-WAIT slot: issue 10 item 10); only an RST answers a segment to it.
            fail("segment from port 0 that is not an RST", describe(p))
        if flags & SYN:
            self.iss[key] = seq
        dlen = tlen - hl
        sl = None
        for x in self.slots:
            if x.ip == dst and x.port == dport:
                sl = x
        if self.log is not None:
            self.say("  < " + describe(p, self.peer_isn.get(key), self.iss.get(key)))
        if dlen:
            self._check_payload(p, key, sl, seq, 20 + hl, dlen)
        if sl is not None and (sport == sl.lport or (flags & SYN and not flags & ACK)):
            if len(sl.shist) >= 6:
                sl.shist.pop(0)
            sl.shist.append(p)
            self._learn(sl, sport, seq, ack, flags, wnd, dlen)

    def _check_payload(self, p, key, sl, seq, at, dlen):
        iss = self.iss.get(key)
        if iss is None:
            fail("data on a connection whose SYN was never sent", describe(p))
        atag = sl.atag if sl is not None else STRANGER_ATAG
        off = (seq - iss - 1) & M32
        k = off & 255
        # Views, not copies: on a board-sized heap every 1.4 KB block counts.
        want = memoryview(pattern(atag))[k:k + dlen]
        got = memoryview(p)[at:at + dlen]
        if got != want:
            for j in range(dlen):
                if got[j] != want[j]:
                    if got[j] >> 4 != atag:
                        fail("another connection's bytes sent (leak)", "%s: byte %d is 0x%02x,"
                             " tag %d; this connection's tag is %d" % (
                                 describe(p), j, got[j], got[j] >> 4, atag))
                    fail("bytes sent out of place", "%s: byte %d is 0x%02x, want 0x%02x" % (
                        describe(p), j, got[j], want[j]))
        a = self.by_key.get(key)
        written = a.written if a is not None else 0
        if off + dlen > written:
            fail("sent bytes the application never wrote", "%s: stream offset %d + %d, "
                 "written %d" % (describe(p), off, dlen, written))

    def _learn(self, sl, sport, seq, ack, flags, wnd, dlen):
        """Follow what the stack sent, as the peer would."""
        if flags & RST:
            sl.over = True
            return
        if flags & SYN:
            if flags & ACK:
                if seq != sl.s_iss:
                    sl.new_stack_side(seq)
                irs = (ack - 1) & M32
                if irs != sl.p_iss:
                    # The stack took another SYN for this port (a random one): follow it.
                    sl.p_iss = irs
                    sl.p_nxt = sl.p_una = 1
                    sl.p_fin_at = -1
                    sl.synced = False
                    sl.over = False
                sl.p_una = 1
                sl.lport = sport
            else:
                if seq != sl.s_iss or sport != sl.lport:
                    # A new active open: the peer starts afresh too.
                    sl.lport = sport
                    sl.new_stack_side(seq)
                    # (Its ISS from the stack's, so a replay follows the same way.)
                    sl.new_peer(seq * 7 + 0x1234567)
                else:
                    sl.synced = False  # our SYN,ACK was lost: send it again
            return
        if sl.s_iss is None or sport != sl.lport:
            return
        if flags & ACK:
            a = (ack - sl.p_iss) & M32
            if 0 < a - sl.p_una < 0x40000000:
                sl.p_una = a
            sl.s_ack = a
            sl.s_wnd = wnd
        rel = (seq - sl.s_iss) & M32
        end = rel + dlen
        if (dlen or flags & FIN) and sl.loss and sl.loss_rnd.chance(sl.loss):
            return  # lost on the way
        if rel <= sl.r_nxt < end:
            sl.r_prev = sl.r_nxt
            sl.r_nxt = end
        if flags & FIN and end == sl.r_nxt and not sl.s_fin:
            sl.r_prev = sl.r_nxt
            sl.r_nxt += 1
            sl.s_fin = True
            if sl.close_on_fin and sl.p_fin_at < 0:
                # EOF: the peer closes too (its FIN may still carry an older ACK, so
                # the two FINs cross: CLOSING).
                sent = sl.p_nxt - 1 if sl.p_nxt > 1 else 0
                if sl.close_after < 0 or sl.close_after > sent:
                    sl.close_after = sent
        if sl.s_fin and sl.p_fin_at >= 0 and sl.p_una > sl.p_fin_at:
            sl.over = True
        if self.draining and self.drain_mode != "silent" and (dlen or flags & FIN or (
                (seq - sl.s_iss - sl.r_nxt + 1) & M32) == 0):
            # The answering peer: an ACK for everything (and probes), zero window or not.
            w = 0 if self.drain_mode == "zero" else sl.wbig
            pk = tcp_packet(sl.ip, OUR_IP, sl.port, sl.lport, sl.p_iss + sl.p_nxt,
                            sl.s_iss + sl.r_nxt, ACK, w, 0)
            self.pending.append(self._frame(sl.ip, self.finish(pk)))

    def _describe_in(self, frame):
        if self.ether:
            if len(frame) >= 14 and frame[12] == 8 and frame[13] == 6:
                return "ARP %r" % (frame[14:],)
            frame = frame[14:]
        if len(frame) >= 40 and frame[9] == 6:
            key = (bytes(frame[12:16]), (frame[20] << 8) | frame[21],
                   (frame[22] << 8) | frame[23])
            if frame[33] & SYN and not frame[33] & ACK and key not in self.peer_isn:
                self.peer_isn[key] = _get32(frame, 24)
            return describe(frame, self.iss.get(key), self.peer_isn.get(key))
        return describe(frame)

    # ---- building what the peers send -------------------------------------------------

    def finish(self, p):
        """Payload from the sender's pattern at its sequence number, then checksums, so
        whatever was done to the header, the bytes still say whose they are."""
        n = len(p)
        if n < 20:
            return p
        ihl = (p[0] & 15) * 4
        total = (p[2] << 8) | p[3]
        if ihl < 20 or ihl > n:
            return p
        if p[9] == 6 and ihl + 20 <= total <= n:
            t = ihl
            hl = (p[t + 12] >> 4) * 4
            if hl >= 20 and t + hl <= total:
                dl = total - t - hl
                if dl:
                    tag = self._ptag(p[12:16], (p[t] << 8) | p[t + 1])
                    k = p[t + 7]  # the sequence number's low byte
                    p[t + hl:total] = pattern(tag)[k:k + dl]
            p[t + 16] = p[t + 17] = 0
            c = 0xFFFF ^ port.fold_checksum(port.checksum(p, 12, 20, 6 + total - t)
                                            + port.checksum(p, t, total, 0))
            p[t + 16] = c >> 8
            p[t + 17] = c & 0xFF
        elif p[9] == 1 and ihl + 4 <= total <= n:
            p[ihl + 2] = p[ihl + 3] = 0
            c = 0xFFFF ^ port.fold_checksum(port.checksum(p, ihl, total, 0))
            p[ihl + 2] = c >> 8
            p[ihl + 3] = c & 0xFF
        p[10] = p[11] = 0
        c = 0xFFFF ^ port.fold_checksum(port.checksum(p, 0, ihl, 0))
        p[10] = c >> 8
        p[11] = c & 0xFF
        return p

    def _ptag(self, src, sport):
        for sl in self.slots:
            if sl.port == sport and sl.ip == src:
                return sl.ptag
        return STRANGER_PTAG

    def _frame(self, ip, p):
        if not self.ether:
            return bytes(p)
        return OUR_MAC + b"\x02\x00" + bytes(ip) + b"\x08\x00" + bytes(p)

    def _seg(self, sl, seq_rel, ack_abs, flags, wnd, dlen, mss=-1):
        return tcp_packet(sl.ip, OUR_IP, sl.port, sl.lport, sl.p_iss + seq_rel, ack_abs, flags,
                          wnd, dlen, mss)

    def _ack_abs(self, sl, stale=False):
        if sl.s_iss is None:
            return 0
        return sl.s_iss + (sl.r_prev if stale else sl.r_nxt)

    def _syn(self, sl):
        sl.p_nxt = 1 if sl.p_nxt < 1 else sl.p_nxt
        sl.p_syn_sent = True
        return self._seg(sl, 0, 0, SYN, sl.wnd(self.rnd), 0, sl.mss)

    def _synack(self, sl):
        sl.p_nxt = 1 if sl.p_nxt < 1 else sl.p_nxt
        sl.synced = True
        return self._seg(sl, 0, self._ack_abs(sl), SYN | ACK, sl.wnd(self.rnd), 0, sl.mss)

    def _data_fields(self, sl):
        """(seq_rel, ack_abs, flags, wnd, dlen) of the peer's next segment, and its end."""
        r = self.rnd
        seq = sl.p_nxt if sl.p_nxt >= 1 else 1
        if r.chance(15) and sl.p_una >= 1:
            seq = sl.p_una  # resend from what is unacknowledged
        dlen = 0
        sent = seq - 1
        if (sl.close_after < 0 or sent < sl.close_after) and r.chance(55):
            dlen = r.span(1, self.mtu - 40)
            if r.chance(60):
                dlen = r.span(1, 200)
            if sl.close_after >= 0 and sent + dlen > sl.close_after:
                dlen = sl.close_after - sent
            if r.chance(85):
                room = sl.s_ack + sl.s_wnd - seq  # what the stack's window allows
                if dlen > room:
                    dlen = room if room > 0 else 0
        flags = ACK
        if dlen:
            flags |= PSH
        end = seq + dlen
        if sl.close_after >= 0 and end - 1 >= sl.close_after:
            if sl.p_fin_at < 0:
                sl.p_fin_at = end
            if end == sl.p_fin_at:
                flags |= FIN
                end += 1
        # An older ACK now and then (the peer has not seen our latest yet); on its FIN
        # more often, so that FINs cross (CLOSING).
        stale = r.chance(35 if flags & FIN else 15)
        return seq, self._ack_abs(sl, stale), flags, sl.wnd(r), dlen, end

    def good(self, sl):
        """The model's next segment(s) for slot sl (commits them to the model)."""
        r = self.rnd
        if sl.mode == PASSIVE:
            if sl.s_iss is None or (sl.over and r.chance(15)):
                if sl.s_iss is not None:
                    # A new connection from the same port: above the old ISN, mostly.
                    step = r.span(1, 200000) if r.chance(80) else -r.span(1, 5000)
                    sl.new_peer(sl.p_iss + sl.p_nxt + step)
                    sl.new_stack_side(None)
                return [self._syn(sl)]
            if not sl.synced:
                out = []
                if r.chance(35):
                    out.append(self._syn(sl))  # the same SYN again, in the same batch
                seq, ack, flags, wnd, dlen, end = self._data_fields(sl)
                out.append(self._seg(sl, seq, ack, flags, wnd, dlen))
                sl.p_nxt = end if end > sl.p_nxt else sl.p_nxt
                sl.synced = True
                return out
        else:
            if sl.s_iss is None:
                return []  # waits for the application's connect()
            if not sl.synced:
                out = []
                if sl.simul and not sl.p_syn_sent:
                    out.append(self._syn(sl))  # their SYN crosses ours: SYN-RECEIVED
                    if r.chance(50):
                        out.append(self._synack(sl))  # and the SYN,ACK in the same batch
                    else:
                        sl.synced = True  # the ACK of our SYN comes with the next data
                else:
                    out.append(self._synack(sl))
                return out
        seq, ack, flags, wnd, dlen, end = self._data_fields(sl)
        if end > sl.p_nxt:
            sl.p_nxt = end
        return [self._seg(sl, seq, ack, flags, wnd, dlen)]

    def burst(self, sl):
        """2 to 4 of the peer's next data segments, in a shuffled order (out-of-order
        data, holes filled late)."""
        r = self.rnd
        seq = sl.p_nxt if sl.p_nxt >= 1 else 1
        ack = self._ack_abs(sl)
        wnd = sl.wnd(r)
        out = []
        for _ in range(r.span(2, 4)):
            n = r.span(1, 300)
            out.append(self._seg(sl, seq, ack, ACK | PSH, wnd, n))
            seq += n
        sl.p_nxt = seq
        for i in range(len(out) - 1, 0, -1):
            j = r.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out

    def near(self, sl):
        """A plausible segment that is not quite right: numbers off by 1, a window, old."""
        r = self.rnd
        seq, ack, flags, wnd, dlen, end = self._data_fields(sl)
        w = sl.s_wnd if sl.s_wnd > 0 else 1000
        k = r.below(10)
        d = r.pick((1, -1, 2, -2, w, -w, w + 1, -w - 1, 65535, -65536, -r.span(1, 70000),
                    r.span(1, 70000)))
        if k < 4:
            seq += d
        elif k < 7:
            ack += d
        elif k < 8:
            wnd = r.pick((0, 1, 65535))
        else:
            flags = (flags & ~r.pick((ACK, PSH, FIN))) | r.pick((SYN, FIN, RST, URG, 0))
            if flags & SYN and r.chance(50):
                seq = 0
        return self._seg(sl, seq, ack, flags, wnd, dlen if not flags & RST else 0)

    def rst(self, sl):
        r = self.rnd
        seq = sl.p_nxt if sl.p_nxt >= 1 else 1
        if r.chance(40):
            seq += r.pick((1, -1, 100, sl.s_wnd, -sl.s_wnd, 0x40000000))
        flags = RST | (ACK if r.chance(50) else 0)
        return self._seg(sl, seq, self._ack_abs(sl), flags, 0, 0)

    def random_seg(self):
        r = self.rnd
        if self.slots and r.chance(70):
            sl = r.pick(self.slots)
            src, sport, dport = sl.ip, sl.port, sl.lport or LISTEN_PORT
            seq = sl.p_iss + r.span(-70000, 70000)
            ack = self._ack_abs(sl) + r.span(-70000, 70000)
        else:
            src = r.pick(PEER_IPS)
            sport = r.pick((0, 1, 80, r.span(1, 65535), r.span(1, 65535)))
            dport = r.pick((0, LISTEN_PORT, LISTEN_PORT, r.span(1, 65535)))
            seq = r.u32()
            ack = r.u32()
        if r.chance(30):
            seq = r.u32()
        if r.chance(30):
            ack = r.u32()
        flags = r.below(64)
        mss = r.pick((-1, -1, 0, 1, 536, 65535))
        dlen = r.pick((0, 0, 1, r.span(1, 300)))
        return tcp_packet(src, OUR_IP, sport, dport, seq, ack, flags, r.below(65536), dlen, mss)

    def mutate(self, p):
        """Overwrite 1 to 4 bytes of the IP or TCP header (finish() fixes checksums)."""
        r = self.rnd
        for _ in range(r.span(1, 4)):
            if r.chance(75):
                hl = (p[32] >> 4) * 4 if len(p) > 32 else 20
                i = 20 + r.below(hl if hl >= 20 else 20)
                if i == 36 or i == 37:
                    continue  # the checksum: finish() would just fix it
            else:
                i = r.pick((1, 4, 6, 7, 8, 9, 9, 12, 13, 14, 15, 16, 19, 2, 3, 0))
            if i < len(p):
                p[i] = r.below(256)
        return p

    def martian(self):
        r = self.rnd
        src = r.pick(MARTIANS)
        if r.chance(30):
            body = r.bytes(r.span(0, 24))
            return icmp_packet(src, 8, 0, b"\x00\x01\x00\x01" + body)
        sl = r.pick(self.slots) if self.slots else None
        sport = sl.port if sl is not None else 40000
        return tcp_packet(src, OUR_IP, sport, LISTEN_PORT, r.u32(), 0, SYN, 65535, 0, 536)

    def icmp(self, sl):
        r = self.rnd
        if r.chance(30):
            return icmp_packet(sl.ip, 8, 0, b"\x12\x34\x00\x01" + r.bytes(r.span(0, 32)))
        # Destination unreachable quoting one of our segments to sl: our address first.
        q = tcp_packet(OUR_IP, sl.ip, sl.lport, sl.port, 0, 0, SYN, 0, 0)
        self.finish(q)
        if sl.s_iss is not None:
            near = sl.r_nxt + r.pick((0, 0, -1, 1, -70000, 70000))
            _put32(q, 24, (sl.s_iss + near) & M32)
        return icmp_packet(sl.ip, 3, r.pick((0, 1, 2, 3, 3, 4)), b"\x00\x00\x00\x00" + q[:28])

    def udp_junk(self):
        """A datagram to a closed port, a service's port or a broadcast/group: sometimes
        with a bad checksum or length, so the UDP input checks run too."""
        r = self.rnd
        dst = r.pick((OUR_IP, OUR_IP, b"\xff\xff\xff\xff", b"\x0a\x00\x00\xff",
                      b"\xe0\x00\x00\xfb"))
        dport = r.pick((7, 53, 67, 68, 5353, r.span(1, 65535)))
        p = udp_packet(r.pick(PEER_IPS), dst, r.pick((53, 67, 5353, r.span(1, 65535))), dport,
                       r.bytes(r.span(0, 300)), not r.chance(20))
        if r.chance(15):
            p[24 + r.below(4)] = r.below(256)  # length or checksum damaged
        return p

    def arp_spoof(self):
        r = self.rnd
        spa = r.pick(PEER_IPS + MARTIANS[:4] + (b"\x0a\x00\x00\xfe", b"\x0a\x00\x00\x07"))
        sha = r.pick((b"\xff" * 6, b"\x01\x00\x5e\x00\x00\x01", r.bytes(6), b"\x02\x00" + spa))
        tpa = OUR_IP if r.chance(60) else r.pick(PEER_IPS)
        return arp_frame(r.pick((1, 2)), sha, spa, b"\x00" * 6, tpa,
                         OUR_MAC if r.chance(50) else b"\xff" * 6)

    def one(self):
        """One to three frames for the next batch."""
        r = self.rnd
        slots = self.slots
        k = r.below(100)
        sl = r.pick(slots) if slots else None
        if sl is None or k >= 96:
            if self.ether and r.chance(60):
                return [self.arp_spoof()]
            if r.chance(50):
                return [self._frame(PEER_IPS[0], self.finish(self.udp_junk()))]
            return [r.bytes(r.span(0, 60))]  # garbage
        out = None
        if k < 40:
            if not sl.vanished:
                out = self.good(sl)
        elif k < 50:
            if sl.s_iss is not None or sl.mode == PASSIVE:
                out = [self.near(sl)]
        elif k < 54:
            if sl.synced and not sl.vanished:
                out = self.burst(sl)
        elif k < 57:
            if sl.synced:
                # The same pure ACK 3 to 8 times: duplicate ACKs (fast retransmit, cwnd).
                ack = self._ack_abs(sl, r.chance(30))
                wnd = sl.wnd(r)
                out = [self._seg(sl, sl.p_nxt, ack, ACK, wnd, 0) for _ in range(r.span(3, 8))]
        elif k < 62:
            if sl.hist:
                return [r.pick(sl.hist)]  # a replay, exactly as sent before
        elif k < 67:
            if sl.shist:
                q = bytearray(r.pick(sl.shist))  # the stack's own segment, reflected
                q[12:16], q[16:20] = q[16:20], q[12:16]
                q[20:22], q[22:24] = q[22:24], q[20:22]
                out = [q]
        elif k < 72:
            out = [self.rst(sl)]
        elif k < 80:
            out = [self.random_seg()]
        elif k < 90:
            pk = self.near(sl) if r.chance(50) else self.random_seg()
            out = [self.mutate(pk)]
        elif k < 93:
            out = [self.martian()]
        else:
            out = [self.icmp(sl)]
        if not out:
            out = [self.random_seg()]
        frames = []
        for p in out:
            f = self._frame(sl.ip, self.finish(p))
            frames.append(f)
            if len(sl.hist) >= 10:
                sl.hist.pop(0)
            sl.hist.append(f)
        return frames

    # ---- a run -------------------------------------------------------------------------

    def run(self):
        r = self.rnd
        self.poll()
        if self.want_listener:
            self.app("listen", 0, self.backlog)
        for b in range(self.n_batches):
            if b == self.vanish_at and self.slots:
                r.pick(self.slots).vanished = True
            self.app_step()
            batch = self.pending
            self.pending = []
            want = r.span(1, 8)
            n = 0
            while n < want:
                fr = self.one()
                for f in fr:
                    if n < 8:
                        batch.append(f)
                        n += 1
            for f in batch:
                self.deliver(f)
            self.poll()
            k = r.below(100)
            if k < 20:
                ms = 0
            elif k < 50:
                ms = r.span(1, 20)
            elif k < 75:
                ms = r.span(20, 300)
            elif k < 95:
                ms = r.span(300, 3000)
            else:
                ms = r.span(3000, 70000)
            if ms:
                self.advance(ms)
                if r.chance(30):
                    self.poll()  # timers alone, no input
        self.let_go()
        self.drain()

    def app_step(self):
        r = self.rnd
        if self.listener is not None and r.chance(50):
            self.app("accept")
        for sl in self.slots:
            if sl.mode == ACTIVE and not sl.vanished and r.chance(12):
                busy = False
                for a in self.socks:
                    if a.slot is sl and not a.sock._closed:
                        busy = True
                if not busy:
                    self.app("connect", 0, sl.i)
        for k in range(len(self.socks)):
            a = self.socks[k]
            if a.sock._closed or not r.chance(40):
                continue
            x = r.below(100)
            if x < 35:
                self.app("send", k, r.span(1, 900))
            elif x < 72:
                self.app("recv", k, r.span(1, 1200))
            elif x < 78:
                self.app("shutdown", k, SHUT_WR)
            elif x < 80:
                self.app("shutdown", k, r.pick((SHUT_RD, SHUT_RDWR)))
            elif x < 87:
                self.app("close", k)
            elif x < 90:
                self.app("abort", k)
            elif x < 92:
                self.app("linger", k, r.pick((500, 3000, 200000)))
            elif x < 94:
                self.app("nodelay", k, r.below(2))
            else:
                self.app("poke", k)
        if self.listener is not None and r.chance(1):
            self.app("unlisten")
        elif self.listener is None and self.want_listener and r.chance(5):
            self.app("listen", 0, self.backlog)

    def let_go(self):
        """The application closes or aborts every socket and stops listening."""
        r = self.rnd
        for k in range(len(self.socks)):
            if not self.socks[k].sock._closed:
                self.app(r.pick(("close", "close", "abort", "linger")), k, 3000)
        self.app("unlisten")

    def drain(self):
        """2 hours from one deadline to the next; then everything must be back."""
        self.events.append(("d",))
        self.draining = True
        r = self.drain_rnd
        net = self.net
        elapsed = 0
        wakeups = 0
        ret = self.poll()
        while elapsed < TWO_HOURS_MS:
            step = 600000 if ret is None or ret > 600000 else ret
            if step < 1:
                step = 1
            if r.chance(20):
                step += r.below(50)  # a board wakes a little late
            self.now = port.ticks_add(self.now, step)
            elapsed += step
            batch = self.pending
            self.pending = []
            for f in batch:
                self.segments += 1
                self.link_test.send(f)
            ret = self.poll()
            wakeups += 1
            if wakeups > 20000:
                fail("more than 20000 timer wakeups in 2 hours")
        # (A replay cut down by minimise() may leave out a close(): what a socket still
        # holds is the application's, not a leak.)
        held = [a.sock._tcb for a in self.socks if not a.sock._closed]
        left = [tcb_text(t) for t in net.tcbs if t.v[_IN_USE] and not _among(t, held)]
        if left:
            fail("TCB still in use 2 hours after the application let go", "; ".join(left))
        if net.tw.used:
            fail("TIME-WAIT record left after 2 hours", "%d" % net.tw.used)
        if net.listeners and self.listener is None:
            fail("listener left after close()")
        if ret is not None and not held:
            fail("timer still pending after 2 hours", "poll() returned %r" % (ret,))

    def replay(self, events):
        replay_events(self, events)


def _among(x, items):
    for y in items:
        if y is x:
            return True
    return False


class AppSock:
    """A socket of the application and what it wrote and read."""

    def __init__(self, sock, slot):
        self.sock = sock
        self.slot = slot
        self.atag = slot.atag if slot is not None else STRANGER_ATAG
        self.ptag = slot.ptag if slot is not None else STRANGER_PTAG
        self.written = 0
        self.read = 0
        self.irs = None
        self.key = None

    def learn_key(self, sc):
        if self.key is not None:
            return
        s = self.sock
        try:
            rip = s.getpeername()
        except OSError:
            return
        lport = s.getsockname()[1]
        if not lport:
            return
        parts = rip[0].split(".")
        ip = bytes([int(x) for x in parts])
        self.key = (ip, rip[1], lport)
        sc.by_key[self.key] = self

    def check_read(self, sc, data):
        if not data:
            return
        if self.irs is None:
            t = self.sock._tcb
            self.irs = t.v[_RCV_LO] & 255  # IRS's low byte: where the pattern starts
        k = (self.irs + 1 + self.read) & 255
        want = memoryview(pattern(self.ptag))[k:k + len(data)]
        if data != want:
            for j in range(len(data)):
                if data[j] != want[j]:
                    if data[j] >> 4 != self.ptag:
                        fail("recv() returned another connection's bytes (leak)",
                             "byte %d of %d at stream offset %d is 0x%02x, tag %d; the peer's"
                             " tag is %d" % (j, len(data), self.read, data[j], data[j] >> 4,
                                             self.ptag))
                    fail("recv() returned bytes out of place", "byte %d at stream offset %d"
                         " is 0x%02x, want 0x%02x" % (j, self.read, data[j], want[j]))
        self.read += len(data)


def arp_frame(op, sha, spa, tha, tpa, dst):
    return (bytes(dst) + bytes(sha) + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00" + bytes((op,))
            + bytes(sha) + bytes(spa) + bytes(tha) + bytes(tpa))


# ---- LAN services: DHCP, DNS, mDNS (issue 11) --------------------------------------------
#
# A second kind of scenario (--lan; test_fuzz.py's LAN_SEEDS): an Ethernet Stack with no
# address and a host name, net.active(True) (DHCP and mDNS). The test end of the pipe is a
# LAN: a DHCP server that answers the stack's DISCOVER/REQUEST with OFFER/ACK/NAK carrying
# the xid and chaddr it learnt from them, a DNS server answering the queries the stack sends
# once bound (the query's ID, to its source port), mDNS peers asking for our name (QU,
# legacy unicast, known answers) or claiming it, a neighbour claiming or probing the offered
# address (DECLINE), random UDP. Every one of them valid or mutated (fields, lengths, counts,
# pointers, options; duplicates and replays), 1 to 8 frames per poll(); the clock moves by
# random amounts and jumps to the DHCP client's deadlines (T1, T2, the lease's end). The
# application starts lookups, uses UDP sockets, renews, stops and restarts DHCP.
#
# After every poll(): the TCP invariants, the services' own (DHCP state, the address is
# none or the one the client leased, UDP slots and service ports held only by their owners,
# no deadline missed or slept past) and every frame sent well formed (Ethernet, ARP, IPv4,
# UDP lengths and checksums; from 0.0.0.0 only DHCP DISCOVER/REQUEST/DECLINE and ARP
# probes, otherwise from an address we held). At the end: active(False), 2 hours of
# clock, then no service port, UDP slot, TCB, TIME-WAIT record or deadline left.

LAN_SERVER_MAC = b"\x02\x00\x00\x00\x00\x01"
LAN_PEER_MAC = b"\x02\x00\x00\x00\x00\x03"
LAN_OTHER_MAC = b"\x02\x00\x00\x00\x00\x07"
LAN_SERVER = b"\x0a\x00\x00\x01"
LAN_DNS2 = b"\x0a\x00\x00\x35"  # 10.0.0.53
LAN_PEER = b"\x0a\x00\x00\x03"
LAN_OFFERS = (b"\x0a\x00\x00\x32", b"\x0a\x00\x00\x32", b"\x0a\x00\x00\x32", b"\x0a\x00\x00\x33",
              b"\xc0\xa8\x07\x09", b"\x0a\x00\x00\x00", b"\x0a\x00\x00\xff", b"\x00\x00\x00\x00",
              b"\x7f\x00\x00\x01", b"\xe0\x00\x00\xfb", b"\xff\xff\xff\xff", b"\xf0\x00\x00\x01")
LAN_LEASES = (3600, 3600, 120, 60, 10, 2, 1, 0, 0xFFFFFFFF, 0x40000000, 0x7FFFFFFF, None)
LAN_MASKS = (b"\xff\xff\xff\x00", b"\xff\xff\xff\x00", b"\xff\xff\x00\x00", None,
             b"\xff\x00\xff\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\xfe", b"\x00\x00\x00\x00")
LAN_NAMES = ("www.example.com", "a.b", "printer.lan", "x" * 63 + ".com", "Example.COM.",
             "10.0.0.9", "localhost", "nope.invalid")
# Stack bugs reported but not fixed yet (see LanScenario.known()): with no address, the
# stack answers ARP "who has 0.0.0.0?" (sender 0.0.0.0), and a UDP socket's sendto() sends
# from 0.0.0.0.
# Frames waiting for ARP outlive clear_address()/set_address(): they leave later with the
# old source address, and the entry's ARP retries go from 0.0.0.0 or the new address. A
# deadline a service sets during poll()'s pass over the services (mDNS's announcement when
# DHCP binds, the client polled after the responder) is left out of what poll() returns.
LAN_KNOWN = ()  # failure kinds of stack bugs reported and not fixed yet: none now
DHCP_STATE_NAMES = ("STOPPED", "INIT", "SELECTING", "REQUESTING", "PROBING", "BOUND",
                    "RENEWING", "REBINDING")
# What the make-test LAN seeds must reach between them (test_fuzz.py): DHCP states (as
# polls), and counters of the paths that matter.
LAN_STATES = ("dhcp STOPPED", "dhcp INIT", "dhcp SELECTING", "dhcp REQUESTING", "dhcp PROBING",
              "dhcp BOUND", "dhcp RENEWING", "dhcp REBINDING", "address held",
              "dns lookup pending")
LAN_COUNTERS = ("dhcpLeases", "dhcpRenewals", "dhcpLeaseExpiries", "dhcpConflicts",
                "dhcpInNaks", "dhcpInErrors", "dhcpOutReleases", "dnsInReplies",
                "dnsInMalformed", "dnsInUnmatched", "dnsTimeouts", "dnsCacheHits",
                "mdnsInQueries", "mdnsOutResponses", "mdnsInErrors", "mdnsConflicts",
                "mdnsOutAnnouncements", "udpRcvbufErrors")
_MDNS_GROUP = b"\xe0\x00\x00\xfb"
_MDNS_MAC = b"\x01\x00\x5e\x00\x00\xfb"
_BCAST_MAC = b"\xff" * 6
_ZERO4 = b"\x00\x00\x00\x00"


def _u16b(v):
    return bytes((v >> 8 & 0xFF, v & 0xFF))


def _label_name(wire_name):
    """'Board7' from b'\\x06Board7\\x05local\\x00' (the first label)."""
    return wire_name[1:1 + wire_name[0]]


class LanScenario:
    """One LAN-services fuzz run (see above); replays like Scenario."""

    def __init__(self, seed, log=None, record=True):
        import test_dhcp
        import test_dns
        import test_mdns
        from stack import dhcp

        self.T_DHCP, self.T_DNS, self.T_MDNS, self.dhcp = test_dhcp, test_dns, test_mdns, dhcp
        self.seed = seed
        self.ether = "lan"
        self.rnd = rnd = Rand(seed ^ 0x1A11)
        self.stack_rnd = Rand(seed ^ 0x5A5A)
        self.log = log
        self.mtu = 1500 if rnd.chance(60) else 576
        self.hostname = rnd.pick(("board7", "Board7", "b", "x" * 32, "my-board"))
        self.kw = {"tcbs": 2, "udp_sockets": rnd.span(0, 3),
                   "udp_queue": rnd.pick((64, 300, 2048)), "tw_slots": 1}
        self.n_batches = rnd.span(20, 120)
        self.answer_arp = rnd.chance(85)
        self.now = port.ticks_add(0, -rnd.span(0, 20000))
        self._urandom = port.urandom
        port.urandom = self.stack_rnd.bytes
        try:
            self.link_test, self.link_stack = pipe(mtu=self.mtu, depth=64,
                                                   macs=(LAN_SERVER_MAC, OUR_MAC))
            self.net = Stack(self.link_stack, ip=None, hostname=self.hostname,
                             clock=self.clock, log=log, **self.kw)
        except BaseException:
            port.urandom = self._urandom
            raise
        net = self.net
        self.inv = Invariants(net)
        self.buf = bytearray(self.mtu + 14)
        self.held = [net.ip]  # addresses the stack held since the frames were last read
        self.ever_held = [net.ip]
        self.asked = []  # addresses the stack sent ARP requests for from an address
        net.address_listeners.append(self._address_changed)
        self.leased = []  # yiaddr of every frame to port 68 delivered (what may be bound)
        self.dhcp_msg = None  # (type, xid, chaddr, ciaddr, requested ip) the stack sent last
        self.dns_q = None  # (qid, sport, server, question bytes) of the last DNS query sent
        self.offered = LAN_OFFERS[0]
        self.hist = []  # frames delivered (for replays)
        self.socks = []  # the application's UDP sockets
        self.pending = []
        self.events = _Recorded() if record else _Unrecorded()
        self.draining = False
        self.segments = 0
        self.polls = 0
        self.states = {}

    def close(self):
        port.urandom = self._urandom

    def clock(self):
        return self.now

    def say(self, text):
        if self.log is not None:
            self.log(text)

    def _address_changed(self):
        self.held.append(self.net.ip)
        if self.net.ip not in self.ever_held:
            self.ever_held.append(self.net.ip)

    def _active(self):
        self.app("active", 1)

    # ---- primitive events -------------------------------------------------------------

    def deliver(self, frame):
        self.events.append(("f", frame))
        if self.log is not None:
            self.say("  > %d bytes %r" % (len(frame), frame[:60]))
        self.segments += 1
        self.link_test.send(frame)
        if len(self.hist) >= 24:
            self.hist.pop(0)
        self.hist.append(frame)
        ihl = (frame[14] & 15) * 4 if len(frame) > 14 else 0
        u = 14 + ihl
        if len(frame) >= u + 8 + 20 and frame[12:14] == b"\x08\x00" and frame[u + 2:u + 4] == (
                b"\x00\x44"):
            # (Any frame to port 68 may be the ACK the stack takes: its yiaddr may be bound.)
            y = bytes(frame[u + 24:u + 28])
            if y not in self.leased:
                self.leased.append(y)

    def advance(self, ms):
        self.events.append(("t", ms))
        self.say("advance %d ms" % ms)
        self.now = port.ticks_add(self.now, ms)

    def poll(self):
        if not self.draining:
            self.events.append(("p",))
        self.polls += 1
        net = self.net
        try:
            r = checked_poll(net, self.inv, [])
        except Failure:
            raise
        except Exception as e:
            f = Failure("poll() raised " + type(e).__name__, repr(e))
            f.cause = e
            raise f
        self.say("poll -> %r" % (r,))
        self.check_services(r)
        c = getattr(net, "dhcp", None)
        if c is not None:
            _count(self.states, "dhcp " + DHCP_STATE_NAMES[c.state])
        if net.has_address():
            _count(self.states, "address held")
        r_ = getattr(net, "dns_resolver", None)
        if r_ is not None and r_.state == 1:
            _count(self.states, "dns lookup pending")
        self.observe()
        return r

    def app(self, op, arg=0, arg2=0):
        self.events.append(("a", op, arg, arg2))
        self.say("app %s %r %r" % (op, arg, arg2))
        try:
            self._app(op, arg, arg2)
        except OSError:
            pass
        except Failure:
            raise
        except Exception as e:
            f = Failure("%s() raised %s" % (op, type(e).__name__), repr(e))
            f.cause = e
            raise f
        self.inv.check(False, -1, [])
        self.check_services(-1)
        self.observe()

    def _app(self, op, arg, arg2):
        net = self.net
        if op == "active":
            net.active(bool(arg))
        elif op == "renew":
            net.ipconfig(dhcp4=True)
        elif op == "dhcp_off":
            net.ipconfig(dhcp4=False)
        elif op == "lookup":
            from stack import dns

            r = dns.resolver(net)
            try:
                r.start(LAN_NAMES[arg])
            finally:
                self._result(r)
        elif op == "result":
            from stack import dns

            self._result(dns.resolver(net))
        elif op == "cancel":
            from stack import dns

            dns.resolver(net).cancel()
        elif op == "socket":
            from stack import AF_INET, SOCK_DGRAM

            s = net.socket(AF_INET, SOCK_DGRAM)
            s.setblocking(False)
            self.socks.append(s)
            if arg:
                s.bind(("0.0.0.0", arg))
        elif op == "sendto":
            if arg < len(self.socks):
                ip = (LAN_SERVER, LAN_PEER, b"\xff\xff\xff\xff", _MDNS_GROUP)[arg2 & 3]
                n = arg2 >> 2
                self.socks[arg].sendto(b"u" * n, ("%d.%d.%d.%d" % tuple(ip), 9999))
        elif op == "recv":
            if arg < len(self.socks):
                self.socks[arg].recvfrom(arg2)
        elif op == "sclose":
            if arg < len(self.socks):
                self.socks[arg].close()
        elif op == "status":
            net.isconnected()
            net.status()
            net.ifconfig()
            net.ipconfig("addr4")
            net.ipconfig("dhcp4")

    def _result(self, r):
        ip = r.result()
        if ip is not None and len(ip) != 4:
            fail("resolver result is not 4 bytes", repr(ip))

    # ---- the services' invariants -------------------------------------------------------

    def check_services(self, returned):
        net = self.net
        now = net.clock()
        diff = port.ticks_diff
        c = getattr(net, "dhcp", None)
        md = getattr(net, "mdns", None)
        r = getattr(net, "dns_resolver", None)
        due = None
        ports = []
        if c is not None:
            if not 0 <= c.state < len(DHCP_STATE_NAMES):
                fail("DHCP state out of range", "%r" % c.state)
            running = c.state != 0
            if running != (c in net.services):
                fail("DHCP client running but not polled (or the reverse)",
                     DHCP_STATE_NAMES[c.state])
            if running:
                ports.append(68)
                if c.at is None:
                    if c.state == 6 and c.lease_s == -1:
                        self.known("RENEWING for ever after renew() of an infinite lease", "")
                    elif not (c.state == 5 and c.lease_s == -1):
                        fail("DHCP client running with no deadline", DHCP_STATE_NAMES[c.state])
                else:
                    due = diff(c.at, now)
            elif c.at is not None:
                fail("stopped DHCP client has a deadline")
            bound = c.state in (5, 6, 7)
            if c.bound != bound:
                fail("DHCP bound flag disagrees with the state", "%s bound=%r" % (
                    DHCP_STATE_NAMES[c.state], c.bound))
            if net.has_address() != c.bound:
                fail("address held without a lease (or a lease without the address)",
                     "%s %r" % (DHCP_STATE_NAMES[c.state], net.ip))
            if c.bound:
                ip = bytes(c.yiaddr)
                if net.ip != ip:
                    fail("address is not the leased one", "%r != %r" % (net.ip, ip))
                if ip not in self.leased:
                    fail("address bound that no server offered", repr(ip))
                if ip[0] == 0 or ip[0] == 127 or ip[0] >= 224:
                    fail("martian address bound", repr(ip))
            if (net.watch_hi or net.watch_lo) and c.state != 4:
                fail("ARP watch left on outside PROBING", DHCP_STATE_NAMES[c.state])
        elif net.has_address():
            fail("address with no DHCP client")
        if md is not None:
            if md.running != (md in net.services):
                fail("mDNS responder running but not polled (or the reverse)")
            joined = (0xE000, 0x00FB) in net.groups
            if md.running != joined:
                fail("mDNS group joined state disagrees", "running %r groups %r" % (
                    md.running, net.groups))
            if md.running:
                ports.append(5353)
                if md.announce_at is not None:
                    d = diff(md.announce_at, now)
                    if due is None or d < due:
                        due = d
            elif md.announce_at is not None:
                fail("stopped mDNS responder has an announcement due")
        if len(net.groups) != len(net.mcast_macs):
            fail("multicast groups and MACs differ")
        if r is not None:
            pending = r.state == 1  # dns._PENDING (a const)
            if pending:
                if not r.sport:
                    fail("DNS lookup pending with no port bound")
                ports.append(r.sport)
                if r.attempt_at is None:
                    fail("DNS lookup pending with no deadline")
                if r not in net.services:
                    fail("DNS lookup pending but the resolver is not polled")
                d = diff(r.attempt_at, now)
                if due is None or d < due:
                    due = d
            elif r.sport or r.attempt_at is not None:
                fail("DNS resolver idle but holds a port or deadline", "port %d" % r.sport)
        got = sorted(net.udp.services)
        if got != sorted(ports):
            fail("service ports leaked or missing", "bound %r, expected %r" % (got, ports))
        open_ = [s for s in self.socks if not s._closed and s._slot >= 0]
        for i in range(len(net.udp.socks)):
            s = net.udp.socks[i]
            if s is None:
                if net.udp.counts[i] or net.udp.heads[i]:
                    fail("free UDP slot has a queue", "slot %d" % i)
                continue
            if not _among(s, open_) or s._slot != i:
                fail("UDP slot held by a closed or foreign socket", "slot %d" % i)
            if not 0 <= net.udp.counts[i] <= len(net.udp.queues[i]):
                fail("UDP queue count out of range")
        for s in open_:
            if net.udp.socks[s._slot] is not s:
                fail("socket holds a UDP slot that is not its own")
        if returned != -1 and md is not None and md.announce_at is not None and diff(
                md.announce_at, now) == 0 and due == 0 and (
                    returned is None or returned > 0):
            self.known("mDNS announcement set during poll() missed by its return",
                       "returned %r" % (returned,))
            return
        if returned != -1:
            if due is not None:
                if due < 0:
                    fail("service deadline passed but poll() did not act on it",
                         "%d ms ago" % -due)
                if returned is None:
                    fail("poll() returned None with a service deadline pending",
                         "due in %d ms" % due)
                if returned > due:
                    fail("poll() returned a time past a service deadline",
                         "returned %d, due in %d" % (returned, due))

    # ---- what the stack sends -----------------------------------------------------------

    def observe(self):
        if self.link_test.drops or self.link_stack.drops:
            fail("fuzz harness: the in-memory link dropped frames (make the pipe deeper)")
        buf = self.buf
        while True:
            n = self.link_test.recv_into(buf)
            if not n:
                break
            self._check_frame(bytes(buf[:n]))
        self.held = [self.net.ip]

    def _check_frame(self, f):
        n = len(f)
        if n < 14:
            fail("runt frame sent", "%d bytes" % n)
        if f[6:12] != OUR_MAC:
            fail("frame sent from another MAC", repr(f[6:12]))
        et = (f[12] << 8) | f[13]
        if et == 0x0806:
            if (n != 42 or f[14:22] != b"\x00\x01\x08\x00\x06\x04\x00" + bytes((f[21],))
                    or f[21] not in (1, 2) or f[22:28] != OUR_MAC):
                fail("malformed ARP sent", repr(f))
            spa = f[28:32]
            tpa = f[38:42]
            if spa == _ZERO4:
                c = getattr(self.net, "dhcp", None)
                if f[21] == 2:
                    fail("ARP reply from 0.0.0.0", repr(f))
                elif c is None or tpa != bytes(c.yiaddr) or self.net.has_address():
                    # Only DHCP's RFC 5227 probe of the offer, while we have no address;
                    # never an ARP retry of a frame queued before the address went.
                    fail("ARP from 0.0.0.0 that is not a probe of the offered address",
                         repr(f))
            elif spa not in self.held:
                fail("ARP from an address not ours", repr(f))
            elif f[21] == 1 and tpa not in self.asked:
                self.asked.append(tpa)
            if f[21] == 1 and spa != _ZERO4 and self.answer_arp:
                for ip, mac in ((LAN_SERVER, LAN_SERVER_MAC), (LAN_DNS2, LAN_SERVER_MAC),
                                (LAN_PEER, LAN_PEER_MAC)):
                    if tpa == ip:
                        self.pending.append(arp_frame(2, mac, ip, OUR_MAC, spa, OUR_MAC))
            return
        if et != 0x0800:
            fail("unknown ethertype sent", "0x%04x" % et)
        p = f[14:]
        n = len(p)
        if n < 20 or p[0] != 0x45:
            fail("bad IPv4 header sent", repr(p[:20]))
        if ((p[2] << 8) | p[3]) != n:
            fail("IPv4 total length is not the frame's", "%d != %d" % ((p[2] << 8) | p[3], n))
        if not _csum_ok(p, 0, 20, 0):
            fail("bad IPv4 checksum sent")
        src = p[12:16]
        dst = p[16:20]
        if dst == b"\xff\xff\xff\xff" and f[0:6] != _BCAST_MAC:
            fail("broadcast not to the broadcast MAC")
        if dst == _MDNS_GROUP and f[0:6] != _MDNS_MAC:
            fail("mDNS group not to its MAC")
        if dst[0] == 0 or dst[0] == 127 or (dst[0] >= 224 and dst != _MDNS_GROUP
                                            and dst != b"\xff\xff\xff\xff"):
            fail("sent to a martian address", repr(dst))
        proto = p[9]
        if proto == 17:
            if n < 28 or ((p[24] << 8) | p[25]) != n - 20:
                fail("bad UDP length sent", repr(p[:28]))
            if not (p[26] or p[27]):
                fail("UDP sent with no checksum")
            if not _csum_ok(p, 12, n, 17 + n - 20):
                fail("bad UDP checksum sent")
            sport = (p[20] << 8) | p[21]
            dport = (p[22] << 8) | p[23]
            body = p[28:]
            if sport == 68 and dport == 67:
                self._dhcp_out(src, dst, body)
                return
            if src == _ZERO4:
                self.known("UDP from 0.0.0.0 that is not DHCP", "%d > %d" % (sport, dport))
                return
            if dport == 53 and len(body) >= 12:
                self.dns_q = (((body[0] << 8) | body[1]), sport, bytes(dst), bytes(body[12:]))
            if sport == 5353 and (len(body) < 12 or not body[2] & 0x80):
                fail("mDNS sent that is not a response", repr(body[:12]))
        elif proto == 1:
            if not _csum_ok(p, 20, n, 0):
                fail("bad ICMP checksum sent")
        elif proto == 6:
            if not _csum_ok(p, 12, n, 6 + n - 20):
                fail("bad TCP checksum sent")
        else:
            fail("unknown protocol sent", "%d" % proto)
        self._from_held(src)

    def _from_held(self, src):
        if src in self.held:
            return
        if src in self.ever_held:
            self.known("frame queued for ARP sent from a dropped address", repr(src))
            return
        fail("sent from an address not ours", "%r (held %r)" % (src, self.held))

    def known(self, kind, detail):
        """A failure of a kind in LAN_KNOWN is counted, not raised (a reported stack bug
        not fixed yet: take it out of LAN_KNOWN once it is)."""
        if kind not in LAN_KNOWN:
            fail(kind, detail)
        _count(self.states, "known bug: " + kind)

    def _dhcp_out(self, src, dst, b):
        if len(b) < 300 or b[0] != 1 or b[1] != 1 or b[2] != 6 or b[236:240] != b"c\x82Sc":
            fail("malformed DHCP message sent", repr(b[:12]))
        i = 240
        opts = {}
        while True:
            if i >= len(b):
                fail("DHCP options without END sent")
            code = b[i]
            if code == 255:
                break
            if code == 0:
                i += 1
                continue
            if i + 2 > len(b) or i + 2 + b[i + 1] > len(b):
                fail("DHCP option runs past the message sent")
            opts[code] = b[i + 2:i + 2 + b[i + 1]]
            i += 2 + b[i + 1]
        t = opts.get(53)
        if t is None or len(t) != 1:
            fail("DHCP message sent with no type")
        t = t[0]
        if b[28:34] != OUR_MAC:
            fail("DHCP chaddr is not our MAC")
        if src == _ZERO4:
            if t not in (1, 3, 4):
                fail("DHCP from 0.0.0.0 that is not DISCOVER, REQUEST or DECLINE", "%d" % t)
        else:
            self._from_held(src)
        if t in (1, 3):
            self.dhcp_msg = (t, bytes(b[4:8]), bytes(b[12:16]), bytes(opts.get(50, b"")))

    # ---- building what the LAN sends ---------------------------------------------------

    def _ip_frame(self, dst_mac, src_mac, p):
        return bytes(dst_mac) + bytes(src_mac) + b"\x08\x00" + bytes(p)

    def _finish_ip(self, p):
        p[10] = p[11] = 0
        c = 0xFFFF ^ port.fold_checksum(port.checksum(p, 0, 20, 0))
        p[10] = c >> 8
        p[11] = c & 0xFF
        return p

    def _udp(self, src, dst, sport, dport, payload, dst_mac=None, src_mac=LAN_SERVER_MAC):
        payload = payload[:self.mtu - 28]
        p = self._finish_ip(udp_packet(src, dst, sport, dport, payload, not self.rnd.chance(10)))
        if dst_mac is None:
            dst_mac = _BCAST_MAC if dst[0] == 255 else (_MDNS_MAC if dst[0] >= 224 else OUR_MAC)
        return self._ip_frame(dst_mac, src_mac, p)

    def _mutate_bytes(self, b, lo=0):
        r = self.rnd
        b = bytearray(b)
        if len(b) > lo:
            for _ in range(r.span(1, 4)):
                b[lo + r.below(len(b) - lo)] = r.below(256)
        return b

    def dhcp_reply(self):
        r = self.rnd
        m = self.dhcp_msg
        if m is not None and r.chance(50):
            return self.dhcp_clean(m)
        xid = m[1] if m is not None and r.chance(90) else r.bytes(4)
        if m is None:
            want = r.pick((2, 5))
        elif m[0] == 1:
            want = 2 if r.chance(85) else r.pick((5, 6, 1, 3, 7, 8, 0))
        else:
            want = r.pick((5, 5, 5, 5, 6, 2, 4, 0))
        if r.chance(15):
            self.offered = r.pick(LAN_OFFERS)
        elif r.chance(10) and m is not None and len(m[3]) == 4:
            self.offered = m[3]  # what it asks for
        lease = r.pick(LAN_LEASES)
        t1 = t2 = None
        if r.chance(30):
            t1 = r.pick((0, 1, 30, 1800, 5000, 0xFFFFFFFF))
            t2 = r.pick((0, 2, 20, 3150, 4000, 0xFFFFFFFF))
        sid = LAN_SERVER if r.chance(85) else r.pick((None, LAN_DNS2, _ZERO4))
        dnss = r.pick(((LAN_SERVER,), (LAN_SERVER, LAN_DNS2), (), (b"\x7f\x00\x00\x01",),
                       (LAN_DNS2, LAN_SERVER, LAN_PEER, LAN_DNS2)))
        router = r.pick((LAN_SERVER, LAN_SERVER, None, b"\xff\xff\xff\xff", b"\x0a\x00\x00\xfe"))
        chaddr = OUR_MAC if r.chance(92) else LAN_OTHER_MAC
        extra = b""
        if r.chance(20):
            extra = r.pick((b"\x06\x03\x0a\x00\x00", b"\x01\x03\xff\xff\xff", b"\x0c\x00",
                            b"\x35\x02\x05\x05", b"\x33\x02\x00\x01", b"\x03\x00",
                            bytes((r.below(256), r.below(8))) + r.bytes(r.below(8))))
        p = self.T_DHCP.payload(
            xid, want if want else None, yiaddr=self.offered, sid=sid, lease=lease, t1=t1, t2=t2,
            mask=r.pick(LAN_MASKS), router=router, dns=dnss, chaddr=chaddr,
            op=2 if r.chance(95) else 1, extra=extra, end=r.chance(95))
        k = r.below(100)
        if k < 12:
            p = self._mutate_bytes(p, 240 if r.chance(70) else 0)
        elif k < 20:
            p = p[:r.span(0, len(p))]  # truncated
        elif k < 28 and len(p) > 242:
            # An option's length lies: find an option and overwrite its length byte.
            p = bytearray(p)
            i = 240
            stop = r.below(6)
            while i + 1 < len(p) and p[i] != 255 and stop:
                i += 1 if p[i] == 0 else 2 + p[i + 1]
                stop -= 1
            if i + 1 < len(p):
                p[i + 1] = r.pick((0, 1, 3, 5, 255, r.below(256)))
        elif k < 32:
            p = bytes(p) + r.bytes(r.span(1, 300))  # trailing junk or padding
        dst = r.pick((b"\xff\xff\xff\xff", b"\xff\xff\xff\xff", b"\xff\xff\xff\xff",
                      self.offered, b"\x0a\x00\x00\xff", self.net.ip))
        sport = 67 if r.chance(95) else r.pick((68, 53, 1067))
        src = LAN_SERVER if r.chance(90) else r.pick((LAN_DNS2, b"\x7f\x00\x00\x01", _ZERO4))
        return self._udp(src, dst, sport, 68, p)

    def dhcp_clean(self, m):
        """The server's answer, well formed: OFFER to a DISCOVER, ACK (or now and then a
        NAK) to a REQUEST, for the address offered; lease times from the usual to absurd."""
        r = self.rnd
        want = 2 if m[0] == 1 else (6 if r.chance(8) else 5)
        if r.chance(5):
            self.offered = r.pick(LAN_OFFERS[:5])
        lease = r.pick((3600, 3600, 600, 120, 60, 10, 1, 0xFFFFFFFF))
        dnss = (LAN_SERVER,) if r.chance(60) else (LAN_DNS2, LAN_SERVER)
        p = self.T_DHCP.payload(m[1], want, yiaddr=self.offered, sid=LAN_SERVER, lease=lease,
                                mask=b"\xff\xff\xff\x00", router=LAN_SERVER, dns=dnss)
        return self._udp(LAN_SERVER, b"\xff\xff\xff\xff", 67, 68, p)

    def dns_reply(self):
        r = self.rnd
        q = self.dns_q
        T = self.T_DNS
        if q is None:
            qid, sport, server, question = r.below(65536), r.span(49152, 65535), LAN_SERVER, (
                b"\x03www\x07example\x03com\x00\x00\x01\x00\x01")
        else:
            qid, sport, server, question = q
        qname = question[:-4] if len(question) >= 5 else b"\x00"
        ptr = b"\xc0\x0c"
        ip = r.pick((b"\x0a\x00\x00\x09", b"\xc0\x00\x02\x07", _ZERO4))
        ttl = r.pick((0, 1, 300, 0x7FFFFFFF, 0xFFFFFFFF))
        clean = r.chance(35)
        k = 0 if clean else r.below(12)
        if k < 4:
            recs = [T.rr(ptr, 1, ttl, ip)]
        elif k < 5:
            recs = [T.rr(ptr, 5, ttl, b"\x01c\x00"), T.rr(b"\x01c\x00", 1, ttl, ip)]
        elif k < 6:  # a CNAME loop: the name -> c -> the name
            recs = [T.rr(ptr, 5, ttl, b"\x01c\x00"), T.rr(b"\x01c\x00", 5, ttl, ptr)]
        elif k < 7:  # a chain longer than any limit
            recs = [T.rr(ptr, 5, ttl, b"\x01c\x00")]
            for j in range(12):
                recs.append(T.rr(bytes((1, 99 + j, 0)), 5, ttl, bytes((1, 100 + j, 0))))
        elif k < 8:  # pointers: to itself, forward, past the end, into the header
            recs = [T.rr(r.pick((b"\xc0\x0c", b"\xc0\x1d", b"\xff\xff", b"\xc0\x02",
                                 b"\x03abc\xc0\x1c", b"\x40")), 1, ttl, ip)]
        elif k < 9:
            recs = [T.rr(ptr, 1, ttl, ip + b"\x00"), T.rr(ptr, 1, ttl, b"")]
        elif k < 10:
            recs = [T.rr(ptr, r.pick((28, 16, 5, 1)), ttl, r.bytes(r.below(20)), r.pick((1, 3)))]
        else:
            recs = []
        flags = 0x81 if clean or r.chance(90) else r.pick((0x01, 0x83, 0x80 | 0x28, 0x85))
        rcode = 0 if clean or r.chance(80) else r.pick((1, 2, 3, 5, 15))
        an = len(recs) if clean or r.chance(85) else r.pick((0, 1, 2, 40, 0xFFFF))
        qd = 1 if clean or r.chance(93) else r.pick((0, 2, 0xFFFF))
        qid = qid if clean or r.chance(92) else r.below(65536)
        msg = (_u16b(qid) + bytes((flags, 0x80 | rcode)) + _u16b(qd) + _u16b(an) + _u16b(0) + _u16b(0) + qname + question[-4:]
               + b"".join(recs))
        m = 100 if clean else r.below(100)
        if m < 15:
            msg = self._mutate_bytes(msg)
        elif m < 22:
            msg = msg[:r.span(0, len(msg))]
        elif m < 25:
            msg = bytes(msg) + r.bytes(r.span(400, 600))  # over 512
        src = server if clean or r.chance(90) else r.pick((LAN_PEER, LAN_DNS2, LAN_SERVER))
        sp = 53 if clean or r.chance(95) else r.pick((5353, 54))
        dp = sport if clean or r.chance(92) else r.span(49152, 65535)
        dst = self.net.ip if self.net.has_address() and r.chance(95) else b"\xff\xff\xff\xff"
        return self._udp(src, dst, sp, dp, msg)

    def mdns_packet(self):
        r = self.rnd
        M = self.T_MDNS
        net = self.net
        h = self.hostname
        name = bytes((len(h),)) + h.encode() + b"\x05local\x00"
        if r.chance(30):
            name = name.upper() if r.chance(50) else name.lower()
        other = b"\x05other\x05local\x00"
        k = r.below(10)
        qclass = 1 | (0x8000 if r.chance(30) else 0)
        qtype = r.pick((1, 1, 255, 28))
        if k < 4:
            msg = M.query(name if r.chance(85) else other, qtype, qclass)
        elif k < 5:  # two questions, the second by pointer
            msg = M.message([(other, 1, 1), (b"\xc0\x0c", qtype, qclass)])
        elif k < 6:  # known answer (our own record) or not quite
            ttl = r.pick((120, 60, 59, 0, 0xFFFFFFFF))
            msg = M.message([(name, 1, qclass)], [M.record(name, 1, 0x8001, ttl, net.ip)])
        elif k < 8:  # a response claiming our name (conflict), or echoing ours
            rd = r.pick((b"\x0a\x00\x00\x63", net.ip, b"\x0a\x00\x00\x63\x00"))
            msg = M.message([], [M.record(name, 1, r.pick((0x8001, 1, 3)), 120, rd)],
                            flags=0x8400)
        elif k < 9:  # pointer games in the question
            msg = M.message([(r.pick((b"\xc0\x0c", b"\xc0\x0e", b"\x06board7\xc0\x0c",
                                      b"\xc0\xff", b"\x80")), 1, 1)])
        else:
            msg = M.message([(name, 1, 1)], counts=(r.pick((1, 2, 0xFFFF)), r.below(3),
                                                    r.below(3), r.pick((0, 0xFFFF))))
        if r.chance(25):
            msg = self._mutate_bytes(msg)
        if r.chance(8):
            msg = msg[:r.span(0, len(msg))]
        sport = 5353 if r.chance(75) else r.pick((53, 40000, 5354))
        src = LAN_PEER if r.chance(85) else r.pick((net.ip, b"\x0a\x00\x00\x63", LAN_SERVER))
        if r.chance(85):
            return self._udp(src, _MDNS_GROUP, sport, 5353, msg, src_mac=LAN_PEER_MAC)
        dst = r.pick((net.ip, b"\xe0\x00\x00\x01", b"\xff\xff\xff\xff"))
        return self._udp(src, dst, sport, 5353, msg, src_mac=LAN_PEER_MAC)

    def arp_claim(self):
        r = self.rnd
        c = getattr(self.net, "dhcp", None)
        target = bytes(c.yiaddr) if c is not None and r.chance(80) else self.offered
        k = r.below(4)
        mac = LAN_OTHER_MAC if r.chance(90) else OUR_MAC
        if k == 0:  # a probe for the same address
            return arp_frame(1, mac, _ZERO4, b"\x00" * 6, target, _BCAST_MAC)
        if k == 1:  # a claim (gratuitous)
            return arp_frame(1, mac, target, b"\x00" * 6, target, _BCAST_MAC)
        if k == 2:  # it answers
            return arp_frame(2, mac, target, OUR_MAC, target, OUR_MAC)
        return arp_frame(r.pick((1, 2, 3)), r.pick((mac, _BCAST_MAC, b"\x00" * 6)),
                         r.pick((LAN_PEER, target, _ZERO4)), r.bytes(6), r.pick((target, _ZERO4)),
                         r.pick((_BCAST_MAC, OUR_MAC)))

    def random_udp(self):
        r = self.rnd
        dst = r.pick((self.net.ip, b"\xff\xff\xff\xff", b"\x0a\x00\x00\xff", _MDNS_GROUP,
                      self.offered))
        dport = r.pick((53, 67, 68, 5353, 9999, r.span(1, 65535)))
        q = self.dns_q
        if q is not None and r.chance(20):
            dport = q[1]
        p = udp_packet(r.pick((LAN_PEER, LAN_SERVER, b"\x7f\x00\x00\x01")), dst,
                       r.pick((53, 67, 5353, r.span(1, 65535))), dport,
                       r.bytes(r.span(0, 400)), not r.chance(20))
        if r.chance(15):
            p[24 + r.below(4)] = r.below(256)
        p = self._finish_ip(p)
        if r.chance(5):
            p = self._mutate_bytes(p, 0)
        mac = _BCAST_MAC if dst[0] == 255 else (_MDNS_MAC if dst[0] == 224 else OUR_MAC)
        return self._ip_frame(mac, LAN_PEER_MAC, p)

    def one(self):
        r = self.rnd
        k = r.below(100)
        net = self.net
        c = getattr(net, "dhcp", None)
        if k < 35:
            if c is not None and c.state in (2, 3, 6, 7) or r.chance(20):
                return [self.dhcp_reply()]
            return []
        if k < 52:
            if self.dns_q is not None or r.chance(10):
                return [self.dns_reply()]
            return []
        if k < 69:
            return [self.mdns_packet()]
        if k < 74:
            if c is not None and c.state == 4 and r.chance(50):
                return []  # (fewer conflicts: more leases)
            return [self.arp_claim()]
        if k < 82:
            if self.hist:
                return [r.pick(self.hist)]
            return []
        if k < 94:
            return [self.random_udp()]
        if k < 97:
            return [r.bytes(r.span(0, 80))]
        return [self._ip_frame(OUR_MAC, LAN_PEER_MAC, self._mutate_bytes(
            self._finish_ip(udp_packet(LAN_PEER, net.ip, 1, 2, b"x")), 0))]

    def app_step(self):
        r = self.rnd
        net = self.net
        if r.chance(40 if net.dns_servers else 10):
            self.app("lookup", r.below(len(LAN_NAMES)))
        elif r.chance(10):
            self.app("result")
        if r.chance(2):
            self.app("cancel")
        if r.chance(2):
            self.app("renew")
        if r.chance(1):
            self.app("dhcp_off")
            if r.chance(70):
                self.app("renew")
        if r.chance(1):
            self.app("active", 0)
            self.app("active", 1)
        if r.chance(6) and len(self.socks) < 6:
            self.app("socket", r.pick((0, 0, 9999, 68, 5353, 53, r.span(1, 65535))))
        for k in range(len(self.socks)):
            if self.socks[k]._closed or not r.chance(20):
                continue
            x = r.below(10)
            if x < 4:
                self.app("sendto", k, (r.pick((0, 1, 100, 1472, 3000)) << 2) | r.below(4))
            elif x < 8:
                self.app("recv", k, r.span(1, 600))
            else:
                self.app("sclose", k)
        if r.chance(5):
            self.app("status")
        if net.dns_servers and r.chance(1):
            pass

    def step_ms(self):
        r = self.rnd
        c = getattr(self.net, "dhcp", None)
        k = r.below(100)
        if k < 10 and c is not None and c.at is not None:
            # To the DHCP client's next deadline (T1, T2, the lease's end, a retry), or
            # just before or after it.
            d = port.ticks_diff(c.at, self.now)
            d += r.pick((0, 0, 1, -1, 500, -500))
            return d if d > 0 else 0
        if k < 30:
            return 0
        if k < 50:
            return r.span(1, 50)
        if k < 75:
            return r.span(50, 1500)
        if k < 92:
            return r.span(1500, 20000)
        if k < 98:
            return r.span(20000, 400000)
        return r.span(400000, 4000000)

    def run(self):
        r = self.rnd
        self._active()
        self.poll()
        for b in range(self.n_batches):
            batch = self.pending
            self.pending = []
            for f in batch:
                self.deliver(f)
            for _ in range(r.span(1, 8)):
                for f in self.one():
                    self.deliver(f)
                    if r.chance(8):
                        self.deliver(f)  # a duplicate in the same batch
            self.poll()
            self.app_step()
            ms = self.step_ms()
            if ms:
                self.advance(ms)
                if r.chance(40):
                    self.poll()
        self.let_go()
        self.drain()

    def let_go(self):
        for k in range(len(self.socks)):
            if not self.socks[k]._closed:
                self.app("sclose", k)
        self.app("active", 0)

    def drain(self):
        """active(False), then 2 hours from one deadline to the next: nothing may be left."""
        self.events.append(("d",))
        self.draining = True
        r = Rand(self.seed ^ 0x3C3C)
        net = self.net
        elapsed = 0
        wakeups = 0
        ret = self.poll()
        while elapsed < TWO_HOURS_MS:
            step = 600000 if ret is None or ret > 600000 else ret
            if step < 1:
                step = 1
            if r.chance(20):
                step += r.below(50)
            self.now = port.ticks_add(self.now, step)
            elapsed += step
            batch = self.pending
            self.pending = []
            for f in batch:
                self.segments += 1
                self.link_test.send(f)
            ret = self.poll()
            wakeups += 1
            if wakeups > 20000:
                fail("more than 20000 timer wakeups in 2 hours")
        if net.udp.services:
            fail("service port left after active(False)", "%r" % sorted(net.udp.services))
        for s in net.udp.socks:
            if s is not None:
                fail("UDP slot left after the application closed everything")
        for t in net.tcbs:
            if t.v[_IN_USE]:
                fail("TCB left after 2 hours", tcb_text(t))
        if net.tw.used:
            fail("TIME-WAIT record left after 2 hours")
        c = getattr(net, "dhcp", None)
        if c is not None and (c.state != 0 or c in net.services):
            fail("DHCP client still running after active(False)")
        md = getattr(net, "mdns", None)
        if md is not None and (md.running or md in net.services):
            fail("mDNS responder still running after active(False)")
        if net.groups or net.mcast_macs:
            fail("multicast group left joined after active(False)")
        if net.has_address():
            fail("address kept after active(False)")
        for svc in net.services:
            if svc.poll(net.clock()) is not None:
                fail("a service still has a deadline after 2 hours", repr(svc))
        if ret is not None:
            fail("timer still pending after 2 hours", "poll() returned %r" % (ret,))

    def replay(self, events):
        replay_events(self, events)


def make_scenario(seed, ether=None, log=None, record=True):
    """A Scenario, or a LanScenario when ether is "lan". record=False: keep no events."""
    if ether == "lan":
        return LanScenario(seed, log, record)
    return Scenario(seed, ether, log, record)


# ---- campaigns -------------------------------------------------------------------------


class Summary:
    def __init__(self):
        self.runs = 0
        self.segments = 0
        self.polls = 0
        self.states = {}
        self.failures = []  # (seed, ether, Failure)
        self.stats = {}
        self.ms = 0


def run_campaign(seeds, ether=None, log=None, progress=None, summary=None):
    """Run one scenario per seed; collect counts and failures (never raises Failure).
    ether: True, False, None (the seed picks) or "lan" (LanScenario)."""
    s = summary if summary is not None else Summary()
    start = port.ticks_ms()
    for seed in seeds:
        sc = None  # the last scenario's stack and queued frames go before the next is made
        gc.collect()  # the unix port's default heap is 2 MiB
        sc = make_scenario(seed, ether, log, record=False)  # minimise() records its own
        try:
            sc.run()
        except Failure as f:
            s.failures.append((seed, sc.ether, f))
        finally:
            sc.close()
        s.runs += 1
        s.segments += sc.segments
        s.polls += sc.polls
        for k in sc.states:
            _count(s.states, k, sc.states[k])
        for name, value in sc.net.stats.items():
            if value:
                _count(s.stats, name, value)
        s.ms = port.ticks_diff(port.ticks_ms(), start)
        if progress is not None:
            progress(s)
    return s


def _mode(ether):
    return "lan" if ether == "lan" else ("ether" if ether else "ip")


def replay_command(seed, ether):
    return "python host_tests/fuzz.py --runs 1 --seed %d --%s --log" % (seed, _mode(ether))


def failure_text(seed, ether, f):
    return "seed %d (%s): %s\n  replay: %s" % (seed, _mode(ether), f,
                                              replay_command(seed, ether))


# ---- minimising a failure --------------------------------------------------------------


def _fails_same(seed, ether, events, kind):
    sc = make_scenario(seed, ether)
    try:
        sc.replay(events)
    except Failure as f:
        return f.kind == kind
    finally:
        sc.close()
    return False


def minimise(seed, ether, kind):
    """The recorded events of a failing seed, cut down (ddmin) to a few that still fail
    with the same kind of failure."""
    sc = make_scenario(seed, ether)
    try:
        sc.run()
    except Failure:
        pass
    finally:
        sc.close()
    events = list(sc.events)
    # The failing event is the last recorded: nothing after it matters.
    n = 2
    while len(events) >= 2:
        chunk = (len(events) + n - 1) // n
        cut = False
        i = 0
        while i < len(events):
            cand = events[:i] + events[i + chunk:]
            if cand and _fails_same(seed, ether, cand, kind):
                events = cand
                cut = True
                n = n - 1 if n > 2 else 2
                break
            i += chunk
        if not cut:
            if chunk == 1:
                break
            n = n * 2 if n * 2 < len(events) else len(events)
    return events


def print_script(seed, ether, events):
    """Replay events with the log on: the minimised script, with what the stack sent."""
    lines = []
    sc = make_scenario(seed, ether, lines.append)
    try:
        sc.replay(events)
        lines.append("(no failure)")
    except Failure as f:
        lines.append("FAIL " + str(f))
    finally:
        sc.close()
    kw = ", ".join("%s=%r" % kv for kv in sorted(sc.kw.items()))
    print("Stack(%s, mtu=%d%s)" % (kw, sc.mtu, {"lan": ", ethernet, ip=None, hostname=%r"
                                                 % getattr(sc, "hostname", None),
                                                 True: ", ethernet"}.get(ether, "")))
    # Runs of the same line, or of the same two lines (a timer and what it sends, in the
    # 2-hour drain), are printed once with a count.
    i = 0
    while i < len(lines):
        for size in (1, 2):
            block = lines[i:i + size]
            n = 1
            while lines[i + n * size:i + (n + 1) * size] == block:
                n += 1
            if n > 2:
                for line in block:
                    print(line)
                print("  (the %s above %d times)" % ("line" if size == 1 else "2 lines", n))
                i += n * size
                break
        else:
            print(lines[i])
            i += 1


# ---- command line ----------------------------------------------------------------------

_SHOW_STATS = ("tcpActiveOpens", "tcpPassiveOpens", "tcpAttemptFails", "tcpEstabResets",
               "tcpInSegs", "tcpOutSegs", "tcpRetransSegs", "tcpInErrs", "tcpOutRsts",
               "tcpDropped", "tcpChallengeAcks", "tcpChallengeAcksSuppressed",
               "tcpOutOfOrderSegs", "tcpOutOfOrderDrops", "tcpFastRetransmits",
               "tcpPersistProbes", "tcpPersistAborts", "tcpOrphanTimeouts", "tcpTimeouts",
               "tcpFinWait2Timeouts", "tcpLingerTimeouts", "tcpKeepaliveDrops",
               "tcpRstsUnreadData", "tcpRstsDataAfterClose", "tcpTimeWaitRecycled",
               "tcpTimeWaitReopened", "tcpSynFloodRecycled", "tcpListenDrops",
               "tcpTcbExhausted", "ipInMartians", "ipInHdrErrors", "icmpInBadQuotes",
               "icmpOutEchoReps", "arpRefused", "arpQueueDrops", "ethInDrops", "udpInDatagrams",
               "udpNoPorts", "udpInErrors", "icmpOutDestUnreachs", "icmpOutRateLimited")


def print_summary(s):
    print("")
    print("runs %d, segments %d, polls %d, %.1f s" % (s.runs, s.segments, s.polls,
                                                      s.ms / 1000))
    print("states reached (TCB-polls; LAN runs: DHCP states and services, polls):")
    for name in STATES:
        if name in s.states or not s.states.get("dhcp STOPPED") and not s.states.get(
                "dhcp SELECTING"):
            print("  %-28s %d" % (name, s.states.get(name, 0)))
    for name in sorted(s.states):
        if name not in STATES:
            print("  %-28s %d" % (name, s.states[name]))
    print("stats totals:")
    for name in _SHOW_STATS:
        if name in s.stats:
            print("  %-28s %d" % (name, s.stats[name]))
    for name in sorted(s.stats):
        if name.startswith("dhcp") or name.startswith("dns") or name.startswith("mdns") or (
                name.startswith("udp") and name not in _SHOW_STATS):
            print("  %-28s %d" % (name, s.stats[name]))
    print("failures: %d" % len(s.failures))
    kinds = []
    for seed, ether, f in s.failures:
        if f.kind not in kinds:
            kinds.append(f.kind)
    for kind in kinds:
        n = 0
        for seed, ether, f in s.failures:
            if f.kind == kind:
                if n < 3:
                    print("  " + failure_text(seed, ether, f))
                n += 1
        if n > 3:
            print("  ... and %d more like it" % (n - 3))


def _print_exc(e):
    if hasattr(sys, "print_exception"):  # pragma: no cover (MicroPython)
        sys.print_exception(e)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def main(argv):
    runs, seed, ether, log, mini = 100, 1, None, False, False
    usage = "usage: fuzz.py [--runs N] [--seed S] [--ip | --ether | --lan] [--log] [--minimise]"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--runs", "--seed") and i + 1 < len(argv):
            try:
                val = int(argv[i + 1])
            except ValueError:
                print("fuzz.py: %s needs a number" % a)
                return 2
            if a == "--runs":
                runs = val
            else:
                seed = val
            i += 2
            continue
        if a == "--ether":
            ether = True
        elif a == "--ip":
            ether = False
        elif a == "--lan":
            ether = "lan"
        elif a == "--log":
            log = True
        elif a == "--minimise":
            mini = True
        else:
            print(usage)
            return 2
        i += 1
    print("fuzz: %d %sruns from seed %d (%s)" % (runs, "LAN " if ether == "lan" else "", seed,
                                                 sys.implementation.name))
    last = [port.ticks_ms()]

    def progress(s):
        t = port.ticks_ms()
        if port.ticks_diff(t, last[0]) >= 5000 or s.runs == runs:
            last[0] = t
            print("  runs %d/%d, segments %d, polls %d, %.1f s, failures %d" % (
                s.runs, runs, s.segments, s.polls, s.ms / 1000, len(s.failures)))

    s = run_campaign(range(seed, seed + runs), ether, print if log else None, progress)
    print_summary(s)
    if log:
        for seed_, eth, f in s.failures:
            if f.cause is not None:
                _print_exc(f.cause)
    if mini:
        done = []
        for seed_, eth, f in s.failures:
            if f.kind in done:
                continue
            done.append(f.kind)
            print("")
            print("minimised, seed %d (%s): %s" % (seed_, _mode(eth), f.kind))
            print_script(seed_, eth, minimise(seed_, eth, f.kind))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
