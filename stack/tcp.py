# TCP: the connection control block (TCB) and its state machine.
# SPDX-License-Identifier: MIT
#
# Reading list, in the order this file follows them:
#   RFC 9293  TCP (section 3.10.7 "SEGMENT ARRIVES" is the skeleton of process())
#   RFC 1122  4.2.2.13 closing (RST on unread data, new SYN in TIME-WAIT), 4.2.3 timers
#   RFC 6298  retransmission timer;  RFC 5681 / 6582  congestion control, NewReno
#   RFC 5961  blind RST/SYN mitigation (exact RST, challenge ACKs);  RFC 1337  RST in TIME-WAIT
#
# Sequence variables are offsets from a per-direction base (see seq.py): compare them with
# plain < and >, they never wrap. States are small ints; STATE_NAMES gives RFC spelling.
#
# A TCB lives in the stack's fixed pool. The socket holding it may let go (close(): the TCB
# becomes an *orphan* and finishes the close alone) or keep it after the protocol reached
# CLOSED (to read the last data, EOF or the error); it returns to the pool when both are done.
# TIME-WAIT is never held in a TCB: the connection moves to the TIME-WAIT table.
#
# The fields of a TCB are packed into one array of 32-bit ints, `tcb.v`, indexed by the
# constants below (`v[SND_UNA]` is RFC 9293's SND.UNA). On MicroPython every instance
# attribute costs a slot in the instance's hash map, about 10 bytes each on a 32-bit board;
# 60 fields as attributes made a TCB 870 bytes; with the array it is 510 on wasm32, rings
# excluded (one word per field). An array rather than a list so that native code (port.py) can read and write the
# fields too. So every field is an int: flags are 0 or 1, a timer that is off is OFF (-1,
# never a tick), and the two objects a TCB refers to (its listener, its socket) are the
# attributes `parent` and `owner`. The two rings' head and count and the out-of-order
# ranges (assembler.py, from ASM on) are fields too, so a connection is one object, one
# array and its two buffers. Code in the stack indexes `v` (a local `v = self.v` first:
# that is as fast as an attribute); at the REPL and in tests, `tcb.snd_una` still reads a
# field (__getattr__ below), read-only, with None for a timer that is off.

from array import array

from micropython import const

from . import assembler, config, ipv4, port, ringbuf, seq, tcpseg
from .seq import FAR
from .tcpseg import ACK, FIN, PSH, RST, SYN

CLOSED = const(0)
LISTEN = const(1)
SYN_SENT = const(2)
SYN_RECEIVED = const(3)
ESTABLISHED = const(4)
FIN_WAIT_1 = const(5)
FIN_WAIT_2 = const(6)
CLOSE_WAIT = const(7)
CLOSING = const(8)
LAST_ACK = const(9)
TIME_WAIT = const(10)

STATE_NAMES = (
    "CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
    "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
)

OFF = const(-1)  # a timer field (a deadline in ticks) that is off

# ---- the fields of tcb.v ---------------------------------------------------------------
STATE = const(0)
IN_USE = const(1)
ORPHAN = const(2)
RIP_HI = const(3)
RIP_LO = const(4)
LPORT = const(5)
RPORT = const(6)
SND_HI = const(7)
SND_LO = const(8)
RCV_HI = const(9)
RCV_LO = const(10)
SND_UNA = const(11)
SND_NXT = const(12)
SND_MAX = const(13)
SND_WND = const(14)
MAX_SND_WND = const(15)
SND_WL1 = const(16)
SND_WL2 = const(17)
SND_MSS = const(18)
FIN_SEQ = const(19)
RCV_NXT = const(20)
RCV_ADV = const(21)
RX_FIN = const(22)
RD_SHUT = const(23)
RX_UNACKED = const(24)
ACK_NOW = const(25)
ENDED = const(26)
SO_ERROR = const(27)
REXMIT_AT = const(28)
PERSIST_AT = const(29)
ACK_AT = const(30)
FIN2_AT = const(31)
KEEPALIVE_AT = const(32)
RETRIES = const(33)
PERSIST_SHIFT = const(34)
KEEPALIVE_SENT = const(35)
RTO_MS = const(36)
SRTT_MS = const(37)
RTTVAR_MS = const(38)
RTT_AT = const(39)
RTT_SEQ = const(40)
CWND = const(41)
SSTHRESH = const(42)
DUPACKS = const(43)
RECOVER = const(44)
IN_RECOVERY = const(45)
NODELAY = const(46)
KEEPALIVE = const(47)
RX_HEAD = const(48)
RX_COUNT = const(49)
RX_SIZE = const(50)
TX_HEAD = const(51)
TX_COUNT = const(52)
TX_SIZE = const(53)
SOFT_ERR = const(54)
ORPHAN_AT = const(55)
CW_SINCE = const(56)
INDEX = const(57)
ASM = const(58)
_ASM_SLOTS = config.ASSEMBLER_RANGES
N_FIELDS = ASM + assembler.size(_ASM_SLOTS)  # ASM's ranges follow it (assembler.py)

# The key table (iface.py Stack.tcb_keys, an array of 'H'): KEY_STRIDE halfwords a TCB,
# in the order _key() writes them and port.tcp4_in reads them (valid, remote port, local
# port, remote address low and high half, receive base hi and lo, send base hi and lo),
# then KEY_NH: the ARP entry of the connection's next hop (_emit).
KEY_STRIDE = const(10)
KEY_NH = const(9)


def __getattr__(name):
    # PEP 562: tcp.FIELDS, the fields' names by index, lives in tcpfields.py.
    if name == "FIELDS":
        from .tcpfields import FIELDS

        return FIELDS
    raise AttributeError(name)


# Flags that rule header prediction out (ACK must be set, PSH may be).
_PREDICT_MASK = const(0x37)  # ACK | URG | RST | SYN | FIN (tcpseg.py)

_DEFAULT_MSS = const(536)  # RFC 9293 3.7.1: assumed when the peer sends no MSS option
_MIN_MSS = const(48)  # a smaller peer MSS is raised to this (Linux's TCP_MIN_SND_MSS)
_MAX_WND = const(65535)  # no window scaling
_SYN_RTO_MS = const(3000)  # RFC 6298 5.7: RTO once data starts after a resent SYN


def _min(a, b):
    return a if a < b else b


def _finish_plain(buf, ip, total, ident, shi, slo, srel, rhi, rlo, rrel, flags, wnd):
    """port.tcp4_out in Python, for ports without viper: the per-segment fields of the
    segment at buf[ip:ip + total] and both checksums (see _checksum_viper.py)."""
    buf[ip] = 0x45  # version 4, 20-byte header
    buf[ip + 1] = 0
    buf[ip + 2] = total >> 8
    buf[ip + 3] = total & 0xFF
    buf[ip + 4] = ident >> 8
    buf[ip + 5] = ident & 0xFF
    buf[ip + 6] = 0x40  # DF
    buf[ip + 7] = 0
    buf[ip + 10] = buf[ip + 11] = 0
    t = ip + 20
    seq.to_wire(buf, t + 4, shi, slo, srel)
    if flags & ACK:
        seq.to_wire(buf, t + 8, rhi, rlo, rrel)
    else:
        buf[t + 8] = buf[t + 9] = buf[t + 10] = buf[t + 11] = 0
    buf[t + 13] = flags
    buf[t + 14] = wnd >> 8
    buf[t + 15] = wnd & 0xFF
    buf[t + 16] = buf[t + 17] = 0
    c = 0xFFFF ^ port.fold_checksum(port.checksum(buf, ip, t, 0))
    buf[ip + 10] = c >> 8
    buf[ip + 11] = c & 0xFF
    tcpseg.finish(buf, ip, t, total - 20)


_finish = port.tcp4_out or _finish_plain
_copy = port.copy_viper  # None where there is no viper (see ringbuf.py)
_out = port.tcp_out  # output()'s common turn in native code; None where there is no viper
_len = len  # a module global is found faster than a builtin (see sock.py): write()


class TCB:
    def __init__(self, stack, index, rx_size, tx_size):
        self.stack = stack
        # From range() and cleared, not from a zeroed temporary (it would stay on the heap
        # until the next collection).
        self.v = v = array("i", range(N_FIELDS))
        for i in range(N_FIELDS):
            v[i] = 0
        # The rings' bytes (ringbuf.py): their head and count are fields.
        self.rxb = memoryview(bytearray(rx_size))
        self.txb = memoryview(bytearray(tx_size))
        v[INDEX] = index  # its place in the pool (a field: an attribute more costs 16 B)
        v[RX_SIZE] = rx_size
        v[TX_SIZE] = tx_size
        v[IN_USE] = False
        self.reset()

    def __getattr__(self, name):
        # Only for names that are not real attributes: the fields, read-only (see top), by
        # the names in tcpfields.py (loaded then: the REPL, debug.py, trace.py, tests).
        from .tcpfields import field

        return field(self, name)

    def rx_ranges(self):
        """The out-of-order ranges held, ((start, end), ...) from rcv_nxt (debugging)."""
        v = self.v
        return tuple((v[ASM + 1 + 2 * i], v[ASM + 2 + 2 * i]) for i in range(v[ASM]))

    def reset(self):
        """Fresh fields for a new connection (buffers are kept, just emptied)."""
        v = self.v
        v[STATE] = CLOSED
        v[ORPHAN] = False  # the application closed its socket: no one reads or writes
        self.parent = None  # the listening socket, while in its backlog
        self.owner = None  # the application's socket, while it holds the connection
        v[RIP_HI] = v[RIP_LO] = 0
        v[LPORT] = v[RPORT] = 0
        # Bases of the sequence offsets, as 16-bit halves of wire values (seq.py).
        v[SND_HI] = v[SND_LO] = 0  # ISS, then moved by rebasing
        v[RCV_HI] = v[RCV_LO] = 0  # IRS, then moved by rebasing
        # Send side. snd_una..snd_nxt is in flight; snd_max is the highest snd_nxt ever
        # (snd_nxt goes back to snd_una on a timeout). The send ring holds snd_una onwards:
        # an ACK of snd_una + n frees n bytes of it.
        v[SND_UNA] = v[SND_NXT] = v[SND_MAX] = 0
        v[SND_WND] = 0
        v[MAX_SND_WND] = 0
        v[SND_WL1] = v[SND_WL2] = 0
        v[SND_MSS] = _DEFAULT_MSS
        v[FIN_SEQ] = -1  # sequence number of our FIN, -1 until the send side is closed
        # Receive side. rcv_adv is the right edge of the window we last advertised.
        v[RCV_NXT] = 0
        v[RCV_ADV] = 0
        v[RX_FIN] = False  # the peer's FIN arrived (EOF after the ring drains)
        v[RD_SHUT] = False  # shutdown(SHUT_RD)
        v[RX_UNACKED] = 0  # bytes received since our last ACK (delayed ACK)
        v[ACK_NOW] = False
        # Errors: `ended` is sticky (recv/send keep raising it), so_error is read-and-clear.
        v[ENDED] = 0
        v[SO_ERROR] = 0
        # An ICMP soft error (RFC 1122 4.2.3.9): reported only if the connection later
        # times out, as Linux's sk_err_soft; a new ACK clears it.
        v[SOFT_ERR] = 0
        # Timers: deadlines in ticks, OFF = off.
        v[REXMIT_AT] = OFF
        v[PERSIST_AT] = OFF
        v[ACK_AT] = OFF
        v[FIN2_AT] = OFF
        v[KEEPALIVE_AT] = OFF
        v[ORPHAN_AT] = OFF  # an orphan's total lifetime ends here (DESIGN.md section 10)
        v[CW_SINCE] = OFF  # when the peer's FIN put us in CLOSE-WAIT (not a timer)
        # Bytes 8..39 of this connection's IPv4 + TCP headers (TTL to the urgent pointer)
        # are st.tcb_hdrs[32 * index:][:32], what does not change from one segment to the
        # next filled in: _emit copies them, then writes the rest. Their first byte (the
        # TTL) is 0 until _make_hdr() fills them, and again after our address changes.
        st = self.stack
        st.tcb_hdrs[v[INDEX] << 5] = 0  # new addresses and ports: made again
        st.tcb_nh_gen[v[INDEX]] = -1  # no next hop known (_emit)
        # Retransmissions of the oldest segment, or zero-window probes, since the peer
        # last showed it is alive; `retries` of them end the connection.
        v[RETRIES] = 0
        v[PERSIST_SHIFT] = 0
        v[KEEPALIVE_SENT] = 0
        cfg = self.stack.cfg
        v[RTO_MS] = cfg.rto_initial_ms
        v[SRTT_MS] = 0  # 0 = no sample yet
        v[RTTVAR_MS] = 0
        v[RTT_AT] = OFF  # when the timed segment left (Karn: one at a time, not resent)
        v[RTT_SEQ] = 0
        # Congestion control (RFC 5681, NewReno RFC 6582).
        v[CWND] = 0
        v[SSTHRESH] = _MAX_WND
        v[DUPACKS] = 0
        v[RECOVER] = 0
        v[IN_RECOVERY] = False
        v[NODELAY] = False
        v[KEEPALIVE] = cfg.keepalive_ms is not None
        v[RX_HEAD] = v[RX_COUNT] = 0
        v[TX_HEAD] = v[TX_COUNT] = 0
        v[ASM] = 0  # out-of-order ranges in use (assembler.py)
        self._key()

    # ---- state -------------------------------------------------------------------------

    def _set_state(self, new):
        v = self.v
        old = v[STATE]
        if old == new:
            return
        st = self.stack
        was_estab = old == ESTABLISHED or old == CLOSE_WAIT
        is_estab = new == ESTABLISHED or new == CLOSE_WAIT
        if was_estab and not is_estab:
            st.stats.tcpCurrEstab -= 1
        elif is_estab and not was_estab:
            st.stats.tcpCurrEstab += 1
        v[STATE] = new
        if new == ESTABLISHED or old == ESTABLISHED:
            self._key()
        if st.log:
            st.log("tcp %d: %s => %s" % (v[INDEX], STATE_NAMES[old], STATE_NAMES[new]))

    def _key(self):
        """This connection's entry in the stack's key table, which native code demultiplexes
        with (port.tcp4_in, iface.py process_frame): while ESTABLISHED its 4-tuple and the
        bases of its sequence offsets, else cleared. Set where those change: the state,
        reset() and rebasing."""
        k = self.stack.tcb_keys
        v = self.v
        i = v[INDEX] * KEY_STRIDE
        if v[STATE] != ESTABLISHED:
            k[i] = 0
            return
        k[i + 1] = v[RPORT]
        k[i + 2] = v[LPORT]
        k[i + 3] = v[RIP_LO]
        k[i + 4] = v[RIP_HI]
        k[i + 5] = v[RCV_HI]
        k[i + 6] = v[RCV_LO]
        k[i + 7] = v[SND_HI]
        k[i + 8] = v[SND_LO]
        k[i] = 1

    def synchronized(self):
        return self.v[STATE] >= ESTABLISHED

    def state_name(self):
        return STATE_NAMES[self.v[STATE]]

    # ---- opening -----------------------------------------------------------------------

    def _start(self, rip_hi, rip_lo, lport, rport, now):
        v = self.v
        st = self.stack
        v[RIP_HI], v[RIP_LO] = rip_hi, rip_lo
        v[LPORT], v[RPORT] = lport, rport
        v[SND_MSS] = _DEFAULT_MSS
        v[CWND] = st.mss  # set again from the peer's MSS (RFC 5681 initial window below)

    def open_active(self, rip_hi, rip_lo, lport, rport, now):
        """connect(): send SYN, enter SYN-SENT."""
        v = self.v
        self._start(rip_hi, rip_lo, lport, rport, now)
        v[SND_HI], v[SND_LO] = self.stack.isn(rip_hi, rip_lo, lport, rport, now)
        self.stack.stats.tcpActiveOpens += 1
        self.stack.dirty = True
        self._set_state(SYN_SENT)
        self.output(now)

    def open_passive(self, seg, parent, iss, now):
        """A SYN reached a listener: enter SYN-RECEIVED and answer SYN,ACK."""
        v = self.v
        buf, t = seg.buf, seg.t
        self._start(seg.rip_hi, seg.rip_lo, seg.dport, seg.sport, now)
        self.parent = parent
        v[SND_HI], v[SND_LO] = iss
        self._learn_irs(seg)
        self.stack.stats.tcpPassiveOpens += 1
        self._set_state(SYN_RECEIVED)
        self.output(now)

    def _learn_irs(self, seg):
        """The peer's SYN: IRS becomes the receive base, so the SYN is offset 0."""
        v = self.v
        buf, t = seg.buf, seg.t
        v[RCV_HI] = (buf[t + 4] << 8) | buf[t + 5]
        v[RCV_LO] = (buf[t + 6] << 8) | buf[t + 7]
        v[RCV_NXT] = 1
        v[RCV_ADV] = 1
        v[SND_WND] = seg.wnd
        v[MAX_SND_WND] = seg.wnd
        v[SND_WL1] = 0
        # No option (or 0, as Linux reads it): 536. A tiny MSS would turn every byte into a
        # segment of its own: at least 48, as Linux clamps it.
        mss = seg.mss if seg.mss else _DEFAULT_MSS
        v[SND_MSS] = _min(mss if mss > _MIN_MSS else _MIN_MSS, self.stack.mss)
        # RFC 5681 3.1 initial window: 2 to 4 segments by size.
        m = v[SND_MSS]
        v[CWND] = 4 * m if m <= 1095 else (3 * m if m <= 2190 else 2 * m)

    # ---- the application's data (sock.py) ---------------------------------------------

    def write(self, data):
        """Append what fits of data to the send ring; return how many bytes were taken."""
        v = self.v
        count = v[TX_COUNT]
        n = _len(data)
        size = v[TX_SIZE]
        start = v[TX_HEAD] + count
        if start >= size:
            start -= size
        # The native copy called here when the bytes need not wrap (ringbuf.write_from's
        # common case, without its two calls); else write_at, which cuts what does not fit.
        if not (start + n <= size and n <= size - count and _copy is not None
                and _copy(self.txb, start, data, 0, n)):
            n = ringbuf.write_at(self.txb, v[TX_HEAD], count, 0, data)
        v[TX_COUNT] = count + n
        st = self.stack  # data to send: poll() must look at this TCB (iface.py `hot`)
        if st.hot is None:
            st.hot = self
        elif st.hot is not self:
            st.hot = True
        return n

    def read_into(self, dest):
        """Move up to len(dest) received bytes into dest; return how many."""
        v = self.v
        n = len(dest)
        if n > v[RX_COUNT]:
            n = v[RX_COUNT]
        if n:
            head = v[RX_HEAD]
            end = head + n
            size = v[RX_SIZE]
            # ringbuf.copy_out's common case without its call: no wrap, the native copy.
            if end > size or _copy is None or not _copy(dest, 0, self.rxb, head, n):
                ringbuf.copy_out(self.rxb, head, 0, dest, n)
            v[RX_HEAD] = end - size if end >= size else end  # ringbuf.advance
            v[RX_COUNT] -= n
        return n

    def unread(self):
        """Received bytes nobody read, in order or not (close() resets if any)."""
        v = self.v
        return v[RX_COUNT] or v[ASM]

    def discard_received(self):
        """SHUT_RD: drop what is unread; later data is acknowledged and dropped."""
        v = self.v
        v[RD_SHUT] = True
        v[RX_HEAD] = ringbuf.advance(v[RX_HEAD], v[RX_COUNT], v[RX_SIZE])
        v[RX_COUNT] = 0
        v[ASM] = 0

    # ---- closing, from the application ------------------------------------------------

    def make_orphan(self, now):
        """The application let go: the connection finishes alone, within a lifetime."""
        v = self.v
        v[ORPHAN] = True
        self.stack.dirty = True
        # Retries and timeouts bound each wait, but a peer that keeps answering (a zero
        # window, an ACK of one byte a minute) could hold the slot for ever: cap the total.
        v[ORPHAN_AT] = port.ticks_add(now, self.stack.cfg.orphan_timeout_ms)

    def close_send(self, now):
        """No more data from the application: queue our FIN after what is in the ring."""
        v = self.v
        self.stack.dirty = True
        s = v[STATE]
        if s == SYN_SENT:
            self._drop(0)
            return
        if s == SYN_RECEIVED:
            # Our SYN is not acknowledged yet, so a FIN has no place to go (the send ring
            # starts after the SYN only once it is): reset the half-open connection.
            self.abort(now)
            return
        if v[FIN_SEQ] >= 0:
            return
        if s == ESTABLISHED:
            self._set_state(FIN_WAIT_1)
        elif s == CLOSE_WAIT:
            self._set_state(LAST_ACK)
        else:
            return
        v[FIN_SEQ] = v[SND_UNA] + v[TX_COUNT]
        self.output(now)

    def abort(self, now):
        """RST now (RFC 9293 ABORT), discard everything."""
        v = self.v
        if v[STATE] >= SYN_RECEIVED and v[STATE] != TIME_WAIT:
            self._send_rst(now)
        if v[STATE] == ESTABLISHED or v[STATE] == CLOSE_WAIT:
            self.stack.stats.tcpEstabResets += 1
        self._drop(0)

    def abort_with(self, now, err):
        """RST now, and the application's next call raises err."""
        self._send_rst(now)
        self.stack.stats.tcpEstabResets += 1
        self._drop(err)

    def abort_silently(self, err):
        """End the connection with err and no word to the peer (our address is gone)."""
        self._drop(err)

    def drop_embryonic(self):
        """Forget a half-open passive connection without a word (SYN-flood recycling)."""
        self._drop(0)

    def _send_rst(self, now):
        v = self.v
        # Linux's form (tcp_send_active_reset): <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>.
        self._emit(RST | ACK, v[SND_NXT], 0)

    def _drop(self, err):
        """To CLOSED: timers off, and the pool slot back if the application let go."""
        v = self.v
        self.stack.dirty = True
        self._set_state(CLOSED)
        if err:
            v[ENDED] = err
            v[SO_ERROR] = err
        v[REXMIT_AT] = v[PERSIST_AT] = v[ACK_AT] = OFF
        v[FIN2_AT] = v[KEEPALIVE_AT] = v[ORPHAN_AT] = OFF
        v[ACK_NOW] = False
        v[TX_HEAD] = v[TX_COUNT] = 0
        parent = self.parent
        if parent is not None:
            # Reset or timed out before accept(): Linux drops it from the queue too.
            parent._forget(self)
            self.parent = None
            v[ORPHAN] = True
        if v[ORPHAN]:
            self.stack.free_tcb(self)

    def _enter_time_wait(self, now):
        """Hand the connection to the TIME-WAIT table; the TCB is free for reuse."""
        v = self.v
        if v[ACK_NOW]:
            # Their FIN came in the same poll() as the ACK of ours (CLOSING, then at once
            # here): acknowledge it now, the table answers only retransmissions.
            self._emit(ACK, v[SND_NXT], 0)
        self._set_state(TIME_WAIT)
        st = self.stack
        shi, slo = seq.add_halves(v[SND_HI], v[SND_LO], v[SND_NXT])
        rhi, rlo = seq.add_halves(v[RCV_HI], v[RCV_LO], v[RCV_NXT])
        st.tw.add(v[RIP_HI], v[RIP_LO], v[LPORT], v[RPORT], shi, slo, rhi, rlo,
                  self._rcv_window(), port.ticks_add(now, 2 * st.cfg.msl_ms), now, st.stats)
        # The application may still hold the socket to read; the protocol part is done.
        self._drop(0)

    # ---- input -------------------------------------------------------------------------

    def process(self, seg, now):
        """Handle one segment for this connection (RFC 9293 3.10.7)."""
        v = self.v
        st = self.stack
        state = v[STATE]
        if state == SYN_SENT:
            self._process_syn_sent(seg, now)
            return
        buf, t, flags = seg.buf, seg.t, seg.flags
        sq = seq.from_wire(buf, t + 4, v[RCV_HI], v[RCV_LO])
        dlen = seg.dlen
        if (state == ESTABLISHED and flags & _PREDICT_MASK == ACK
                and self.predicted(sq, seq.from_wire(buf, t + 8, v[SND_HI], v[SND_LO]), flags,
                                   seg.wnd, seg.data, dlen, now)):
            return
        v[KEEPALIVE_SENT] = 0
        if v[KEEPALIVE_AT] >= 0:
            v[KEEPALIVE_AT] = port.ticks_add(now, st.cfg.keepalive_ms)

        seg_len = dlen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if state == SYN_RECEIVED and flags & SYN and sq == 0:
            if not flags & ACK:
                # The peer's SYN again (our SYN,ACK was lost): answer it again.
                v[SND_NXT] = 0
                return
            if self.parent is None and not dlen:
                # Simultaneous open: their SYN,ACK acknowledges our SYN. Its SYN was
                # already counted, so take it as the ACK it carries (as Linux does).
                flags &= ~SYN
                sq = 1
                seg_len = 0
                if v[SND_NXT] == 0:
                    # Our SYN,ACK never left (their SYN and this came in one poll()):
                    # nothing has acknowledged their SYN yet, so an ACK must.
                    v[ACK_NOW] = True

        # First: is the segment in the window? (RFC 9293 3.10.7.4 table)
        wnd = v[RCV_ADV] - v[RCV_NXT]
        if wnd < 0:
            wnd = 0
        rn = v[RCV_NXT]
        if seg_len == 0:
            ok = sq == rn if wnd == 0 else rn <= sq < rn + wnd
        elif wnd == 0:
            # Linux accepts a bare FIN at rcv_nxt into a zero window; so do we.
            ok = sq == rn and dlen == 0 and flags & FIN
        else:
            ok = (rn <= sq < rn + wnd) or (rn <= sq + seg_len - 1 < rn + wnd)
        if not ok:
            if not flags & RST:
                v[ACK_NOW] = True  # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
            st.stats.tcpDropped += 1
            return

        # Second: RST. Only an exact rcv_nxt match resets; anything else in the window
        # gets a challenge ACK (RFC 5961 3.2), so a blind attacker must guess exactly.
        if flags & RST:
            if sq != rn:
                self._challenge_ack(now)
                return
            self._on_rst()
            return

        # Fourth: SYN in a synchronized state: challenge ACK (RFC 5961 4.2).
        if flags & SYN:
            self._challenge_ack(now)
            return

        # Fifth: ACK. Without it the segment is dropped.
        if not flags & ACK:
            st.stats.tcpDropped += 1
            return
        ack = seq.from_wire(buf, t + 8, v[SND_HI], v[SND_LO])
        if state == SYN_RECEIVED:
            if not (v[SND_UNA] < ack <= v[SND_MAX]):
                # RFC 9293: <SEQ=SEG.ACK><CTL=RST> for an unacceptable ACK here.
                st.reply_rst(seg)
                return
            v[SND_WND] = seg.wnd
            if seg.wnd > v[MAX_SND_WND]:
                v[MAX_SND_WND] = seg.wnd
            v[SND_WL1] = sq
            self._synchronized(ack, now)
            if self.parent is not None:
                self.parent._ready(self)
        else:
            # RFC 5961 5.2: an ACK outside [SND.UNA - MAX.SND.WND, SND.MAX] is dropped.
            if ack > v[SND_MAX] or ack < v[SND_UNA] - v[MAX_SND_WND]:
                v[ACK_NOW] = True
                st.stats.tcpDropped += 1
                return
            self._process_ack(sq, ack, seg.wnd, not dlen and not flags & FIN, now)
            state = v[STATE]
            fin_acked = v[FIN_SEQ] >= 0 and v[SND_UNA] > v[FIN_SEQ]
            if state == FIN_WAIT_1:
                if fin_acked:
                    # Our FIN is acknowledged: FIN-WAIT-2. An orphan gets a deadline.
                    self._set_state(FIN_WAIT_2)
                    if v[ORPHAN] and v[FIN2_AT] < 0:
                        v[FIN2_AT] = port.ticks_add(now, st.cfg.fin_timeout_ms)
            elif state == CLOSING:
                if fin_acked:
                    # Simultaneous close, both FINs acknowledged: TIME-WAIT.
                    self._enter_time_wait(now)
                return
            elif state == LAST_ACK:
                if fin_acked:
                    # Passive close done: the ACK of our FIN ends the connection.
                    self._drop(0)
                return

        # Seventh: segment text (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 only).
        state = v[STATE]
        if dlen and (state == ESTABLISHED or state == FIN_WAIT_1 or state == FIN_WAIT_2):
            if v[ORPHAN] and not v[RD_SHUT]:
                # Nobody will read this: RFC 1122 4.2.2.13, as Linux (TCPAbortOnData).
                st.stats.tcpRstsDataAfterClose += 1
                self.abort(now)
                return
            if not self._receive_data(seg, sq, now):
                return  # out of order: any FIN waits for the retransmission

        # Eighth: FIN, once everything before it is in.
        if flags & FIN and sq + dlen == v[RCV_NXT] and not v[RX_FIN]:
            v[RCV_NXT] += 1
            v[RX_FIN] = True
            v[ACK_NOW] = True
            v[FIN2_AT] = OFF  # what an orphan's deadline waited for has come
            if state == ESTABLISHED:
                # Passive close: CLOSE-WAIT; recv() gives EOF once the ring is read.
                self._set_state(CLOSE_WAIT)
                v[CW_SINCE] = now
            elif state == FIN_WAIT_1:
                # Their FIN crossed ours (not acked yet): simultaneous close, CLOSING.
                self._set_state(CLOSING)
            elif state == FIN_WAIT_2:
                # Normal or three-way close: TIME-WAIT. The ACK leaves from TIME-WAIT,
                # then the connection moves to the TIME-WAIT table.
                self._set_state(TIME_WAIT)
                self._emit(ACK, v[SND_NXT], 0)
                self._enter_time_wait(now)

    def predicted(self, sq, ack, flags, wnd, data, dlen, now):
        """Header prediction (Van Jacobson; Linux's tcp_rcv_established fast path): in a
        bulk transfer nearly every segment is either a pure ACK of new data (its window
        may differ: a reading receiver's does, every other ACK) or the next data in order
        with nothing new acknowledged and an unchanged window. For those every check of
        process() passes the same way: take them straight to their effect and return
        True; anything else returns False, untouched, for process().

        sq and ack are offsets (seq.from_wire), data the payload's offset in the stack's
        rxbuf. Called by process(), and by iface.py process_frame() for segments that
        native code checked and demultiplexed (port.tcp4_in) without a Segment."""
        v = self.v
        if v[STATE] != ESTABLISHED or flags & _PREDICT_MASK != ACK or sq != v[RCV_NXT]:
            return False
        una = v[SND_UNA]
        if dlen == 0:
            if ack <= una or ack > v[SND_MAX] or v[IN_RECOVERY]:
                return False
            self._process_ack(sq, ack, wnd, True, now)  # new data acknowledged, the window
        elif (ack == una and wnd == v[SND_WND] and not v[ASM] and dlen <= v[RCV_ADV] - sq
              and not v[ORPHAN] and not v[RD_SHUT]):
            # The next data in order, into the ring (it fits: it is in the window).
            # _receive_data's in-order case, inlined; the native copy called here when the
            # bytes need not wrap (ringbuf.write_from's common case, without its call).
            count = v[RX_COUNT]
            start = v[RX_HEAD] + count
            size = v[RX_SIZE]
            if start >= size:
                start -= size
            if start + dlen <= size and dlen <= size - count and _copy is not None and _copy(
                    self.rxb, start, self.stack.rxmv, data, dlen):
                got = dlen
            else:
                got = ringbuf.write_from(self.rxb, v[RX_HEAD], count, 0, self.stack.rxmv,
                                         data, dlen)
            v[RX_COUNT] = count + got
            v[RCV_NXT] = sq + got
            v[SND_WL1] = sq  # what the window update would record
            v[SND_WL2] = ack
            v[RX_UNACKED] += got
            self._schedule_ack(now)
        else:
            return False
        v[KEEPALIVE_SENT] = 0
        if v[KEEPALIVE_AT] >= 0:
            v[KEEPALIVE_AT] = port.ticks_add(now, self.stack.cfg.keepalive_ms)
        return True

    def _process_syn_sent(self, seg, now):
        v = self.v
        st = self.stack
        buf, t, flags = seg.buf, seg.t, seg.flags
        if flags & ACK:
            ack = seq.from_wire(buf, t + 8, v[SND_HI], v[SND_LO])
            if ack <= 0 or ack > v[SND_MAX]:
                # Not for our SYN (an old connection?): <SEQ=SEG.ACK><CTL=RST>.
                if not flags & RST:
                    st.reply_rst(seg)
                st.stats.tcpDropped += 1
                return
        if flags & RST:
            if flags & ACK:
                # Connection refused.
                st.stats.tcpAttemptFails += 1
                self._drop(port.ECONNREFUSED)
            return
        if not flags & SYN:
            st.stats.tcpDropped += 1
            return
        self._learn_irs(seg)
        if flags & ACK:
            self._synchronized(ack, now)
            v[ACK_NOW] = True
        else:
            # Simultaneous open: SYN-RECEIVED, and our SYN again with an ACK.
            self._set_state(SYN_RECEIVED)
            v[SND_NXT] = 0
            v[REXMIT_AT] = OFF

    def _synchronized(self, ack, now):
        """Our SYN is acknowledged (by ack): ESTABLISHED."""
        v = self.v
        cfg = self.stack.cfg
        v[SND_UNA] = ack
        if v[SND_NXT] < ack:
            # A duplicate SYN taken in the same poll() may have marked our SYN for
            # resending (snd_nxt 0): the ACK settles it, and snd_una <= snd_nxt holds.
            v[SND_NXT] = ack
        self._rtt_sample(ack, now)
        if v[RETRIES] and not v[SRTT_MS]:
            # RFC 6298 5.7: the SYN was resent (so never timed): data starts with 3 s.
            rto = _SYN_RTO_MS if cfg.rto_initial_ms < _SYN_RTO_MS else cfg.rto_initial_ms
            v[RTO_MS] = rto if rto < cfg.rto_max_ms else cfg.rto_max_ms
        v[REXMIT_AT] = OFF
        v[RETRIES] = 0
        v[SND_WL2] = ack
        self._set_state(ESTABLISHED)
        if v[KEEPALIVE]:
            v[KEEPALIVE_AT] = port.ticks_add(now, cfg.keepalive_ms)

    def _on_rst(self):
        v = self.v
        st = self.stack
        state = v[STATE]
        if state == SYN_RECEIVED:
            if self.parent is not None:
                self._drop(0)  # back to LISTEN: the listener never saw it
            else:
                st.stats.tcpAttemptFails += 1
                self._drop(port.ECONNREFUSED)
            return
        if state == ESTABLISHED or state == CLOSE_WAIT:
            st.stats.tcpEstabResets += 1
        if state == CLOSING or state == LAST_ACK:
            # The peer's FIN came first, so recv() keeps its EOF; but our last data may not
            # have arrived, and the application must be able to learn it: SO_ERROR, as
            # Linux reports it (sk_err = ECONNRESET, SOCK_DONE still gives EOF).
            v[SO_ERROR] = port.ECONNRESET
            self._drop(0)
        else:
            self._drop(port.ECONNRESET)

    def _challenge_ack(self, now):
        v = self.v
        if self.stack.challenge_ack_allowed(now):
            v[ACK_NOW] = True

    def _process_ack(self, sq, ack, wnd, bare, now):
        """An acceptable ACK (and the window it carries); bare: no data and no FIN."""
        v = self.v
        st = self.stack
        mss = v[SND_MSS]
        if ack > v[SND_UNA]:
            acked = ack - v[SND_UNA]
            data = acked
            if data > v[TX_COUNT]:
                data = v[TX_COUNT]  # the rest acknowledges our FIN
            v[TX_HEAD] = ringbuf.advance(v[TX_HEAD], data, v[TX_SIZE])
            v[TX_COUNT] -= data
            v[SND_UNA] = ack
            if v[SND_NXT] < ack:
                v[SND_NXT] = ack
            self._rtt_sample(ack, now)
            if v[RETRIES]:
                v[RETRIES] = 0
                self._rto_from_srtt()
            v[PERSIST_SHIFT] = 0
            v[SOFT_ERR] = 0  # something got through: forget the ICMP soft error
            # Congestion control.
            if v[IN_RECOVERY]:
                if ack >= v[RECOVER]:
                    # Full ACK: recovery ends with cwnd = ssthresh (RFC 6582 3.2 step 3).
                    v[IN_RECOVERY] = False
                    v[CWND] = v[SSTHRESH]
                else:
                    # Partial ACK: resend the next hole, deflate (RFC 6582 3.2 step 4).
                    self._retransmit_first(now)
                    v[CWND] = v[CWND] - acked + mss if v[CWND] > acked else mss
            elif v[CWND] < v[SSTHRESH]:
                v[CWND] += acked if acked < mss else mss  # slow start
            else:
                inc = mss * mss // v[CWND]
                v[CWND] += inc if inc else 1  # congestion avoidance
            if v[CWND] > _MAX_WND:
                v[CWND] = _MAX_WND  # the send window never exceeds it: more is no use
            v[DUPACKS] = 0
            # Restart the retransmission timer while data is in flight (RFC 6298 5.3).
            if v[SND_UNA] >= v[SND_MAX]:
                v[REXMIT_AT] = OFF
            else:
                v[REXMIT_AT] = port.ticks_add(now, v[RTO_MS])
        elif ack == v[SND_UNA] and bare and wnd == v[SND_WND] and v[SND_MAX] > v[SND_UNA]:
            # A duplicate ACK (RFC 5681 2): three of them trigger fast retransmit.
            if v[DUPACKS] < 4:
                v[DUPACKS] += 1
            if v[DUPACKS] == 3 and not v[IN_RECOVERY]:
                flight = v[SND_MAX] - v[SND_UNA]
                v[SSTHRESH] = flight // 2 if flight // 2 > 2 * mss else 2 * mss
                v[RECOVER] = v[SND_MAX]
                v[IN_RECOVERY] = True
                st.stats.tcpFastRetransmits += 1
                self._retransmit_first(now)
                v[CWND] = v[SSTHRESH] + 3 * mss
            elif v[DUPACKS] > 3 and v[IN_RECOVERY]:
                # Each further dup ACK: a segment has left the network. Bounded: a peer
                # repeating an ACK 100,000 times must not grow cwnd (a heap int at 2**30).
                c = v[CWND] + mss
                v[CWND] = c if c < _MAX_WND else _MAX_WND
        # Window update (RFC 9293: only from a newer segment, or a newer ACK of the same).
        if v[SND_WL1] < sq or (v[SND_WL1] == sq and v[SND_WL2] <= ack):
            opened = v[SND_WND] == 0 and wnd > 0
            v[SND_WND] = wnd
            v[SND_WL1] = sq
            v[SND_WL2] = ack
            if wnd > v[MAX_SND_WND]:
                v[MAX_SND_WND] = wnd
            if opened:
                v[PERSIST_AT] = OFF
                v[PERSIST_SHIFT] = 0
        if v[PERSIST_AT] >= 0 and not v[ORPHAN]:
            # The peer answers our probes: it may keep its window closed as long as it
            # likes (RFC 1122 4.2.2.17). An orphan's probes count on (DESIGN.md section 10).
            v[RETRIES] = 0

    def _receive_data(self, seg, sq, now):
        """Put the payload into the receive ring; return True if it was in order."""
        v = self.v
        st = self.stack
        skip = v[RCV_NXT] - sq  # bytes we already have (a retransmission overlapping)
        if skip < 0:
            skip = 0
        n = seg.dlen - skip
        if n <= 0:
            v[ACK_NOW] = True
            return True
        start = seg.data + skip
        view = st.rxmv[start:start + n]
        off = sq + skip - v[RCV_NXT]
        if v[RD_SHUT]:
            # shutdown(SHUT_RD): accept and discard, so the window stays open.
            if off:
                v[ACK_NOW] = True
                return False
            v[RCV_NXT] += n
            v[RX_UNACKED] += n
            self._schedule_ack(now)
            return True
        if off:
            # Out of order: into the ring at its place, remembered by the assembler.
            got = ringbuf.write_at(self.rxb, v[RX_HEAD], v[RX_COUNT], off, view)
            if got and assembler.add(v, ASM, _ASM_SLOTS, off, off + got):
                st.stats.tcpOutOfOrderSegs += 1
            else:
                st.stats.tcpOutOfOrderDrops += 1
            v[ACK_NOW] = True  # a duplicate ACK tells the sender about the hole
            return False
        got = ringbuf.write_at(self.rxb, v[RX_HEAD], v[RX_COUNT], 0, view)
        v[RX_COUNT] += got
        extra = assembler.advance(v, ASM, got) if v[ASM] else 0
        if extra:
            v[RX_COUNT] += extra
            v[ACK_NOW] = True  # a hole was filled: ACK at once (RFC 5681 4.2)
        v[RCV_NXT] += got + extra
        if v[ASM]:
            v[ACK_NOW] = True
        v[RX_UNACKED] += got
        self._schedule_ack(now)
        return got == n

    def _schedule_ack(self, now):
        v = self.v
        # Delayed ACK: at least every second full-sized segment, at most ack_delay_ms late.
        if v[RX_UNACKED] >= 2 * self.stack.mss:
            v[ACK_NOW] = True
        elif v[ACK_AT] < 0:
            v[ACK_AT] = port.ticks_add(now, self.stack.cfg.ack_delay_ms)

    # ---- rebasing (seq.py) -------------------------------------------------------------

    def _rebase_snd(self):
        v = self.v
        r = seq.REBASE_AT
        v[SND_HI], v[SND_LO] = seq.add_halves(v[SND_HI], v[SND_LO], r)
        v[SND_UNA] -= r
        v[SND_NXT] -= r
        v[SND_MAX] -= r
        v[SND_WL2] -= r
        v[RTT_SEQ] -= r
        v[RECOVER] -= r
        if v[FIN_SEQ] >= 0:
            v[FIN_SEQ] -= r
        self._key()

    def _rebase_rcv(self):
        v = self.v
        r = seq.REBASE_AT
        v[RCV_HI], v[RCV_LO] = seq.add_halves(v[RCV_HI], v[RCV_LO], r)
        v[RCV_NXT] -= r
        v[RCV_ADV] -= r
        v[SND_WL1] -= r
        self._key()

    # ---- RTT and RTO (RFC 6298) --------------------------------------------------------

    def _rtt_sample(self, ack, now):
        v = self.v
        if v[RTT_AT] < 0 or ack <= v[RTT_SEQ]:
            return
        r = port.ticks_diff(now, v[RTT_AT])
        v[RTT_AT] = OFF
        if r < 1:
            r = 1
        if not v[SRTT_MS]:
            v[SRTT_MS] = r
            v[RTTVAR_MS] = r // 2
        else:
            d = v[SRTT_MS] - r
            if d < 0:
                d = -d
            v[RTTVAR_MS] = (3 * v[RTTVAR_MS] + d) // 4
            v[SRTT_MS] = (7 * v[SRTT_MS] + r) // 8
        self._rto_from_srtt()

    def _rto_from_srtt(self):
        v = self.v
        cfg = self.stack.cfg
        if not v[SRTT_MS]:
            v[RTO_MS] = cfg.rto_initial_ms
            return
        k = 4 * v[RTTVAR_MS]
        rto = v[SRTT_MS] + (k if k > 1 else 1)
        if rto < cfg.rto_min_ms:
            rto = cfg.rto_min_ms
        elif rto > cfg.rto_max_ms:
            rto = cfg.rto_max_ms
        v[RTO_MS] = rto

    # ---- output ------------------------------------------------------------------------

    def _rcv_window(self):
        """The window to advertise, with receiver SWS avoidance (RFC 1122 4.2.3.3)."""
        v = self.v
        free = v[RX_SIZE] - v[RX_COUNT]
        if free > _MAX_WND:
            free = _MAX_WND
        edge = v[RCV_NXT] + free
        step = v[RX_SIZE] // 2
        if step > self.stack.mss:
            step = self.stack.mss
        if edge < v[RCV_ADV] + step and v[RCV_ADV] > v[RCV_NXT]:
            return v[RCV_ADV] - v[RCV_NXT]  # keep the old right edge
        if edge > v[RCV_ADV]:
            v[RCV_ADV] = edge
        return v[RCV_ADV] - v[RCV_NXT]

    def window_update_due(self):
        """After the application read: is the new window worth an ACK of its own?"""
        v = self.v
        if v[STATE] < ESTABLISHED or v[RX_FIN]:  # not synchronized(): a call saved a read
            return False
        adv = v[RCV_ADV] - v[RCV_NXT]
        free = v[RX_SIZE] - v[RX_COUNT]
        step = v[RX_SIZE] // 2
        if step > self.stack.mss:
            step = self.stack.mss
        return adv < step <= free - adv

    def _emit(self, flags, seq_rel, n, mss=False):
        """Build and send one segment; n payload bytes come from the send ring."""
        v = self.v
        st = self.stack
        if mss:
            self._emit_syn(flags)
            return
        hdrs = st.tcb_hdrs
        x = v[INDEX]
        h = x << 5
        if not hdrs[h]:
            self._make_hdr()
        buf = st.txbuf
        ip = st.ip_off
        t = ip + 20
        # The hot path (every data segment and ACK): the prepared headers in one copy, then
        # only what changes, written by _finish (native code where there is viper). The
        # native copy takes 1.1 k instructions on the Cortex-M0, a slice assignment 8.1 k.
        if _copy is None or not _copy(buf, ip + 8, hdrs, h, 32):
            st.txmv[ip + 8:t + 20] = memoryview(hdrs)[h:h + 32]
        total = 40 + n
        ident = st.next_ident()
        if flags & ACK:
            v[ACK_NOW] = False
            v[ACK_AT] = OFF
            v[RX_UNACKED] = 0
        if flags & RST:
            st.stats.tcpOutRsts += 1
            wnd = 0  # an RST advertises no window: nothing more will be received
        else:
            wnd = self._rcv_window()
        if n:
            ringbuf.copy_out(self.txb, v[TX_HEAD], seq_rel - v[SND_UNA], buf, n, t + 20)
            if seq_rel < v[SND_MAX]:
                st.stats.tcpRetransSegs += 1
        elif flags & FIN and seq_rel < v[SND_MAX]:
            st.stats.tcpRetransSegs += 1
        _finish(buf, ip, total, ident, v[SND_HI], v[SND_LO], seq_rel, v[RCV_HI], v[RCV_LO],
                v[RCV_NXT], flags, wnd)
        st.stats.tcpOutSegs += 1
        if st.tracer:
            st.tracer("out", buf, ip, total)
        self._send(total, st.clock())

    def _send(self, total, now):
        """Send the IPv4 packet of length total that is in the stack's txbuf (_emit)."""
        st = self.stack
        arp = st.arp
        v = self.v
        x = v[INDEX]
        if arp is not None and st.tcb_nh_gen[x] == arp.gen:
            # The next hop this connection used last, with nothing in the ARP cache or the
            # route changed since (arp.py gen): no routing, no lookup (10 k instructions on
            # the Cortex-M0 a segment). What dispatch_ipv4 would do with it, done here.
            i = st.tcb_keys[x * KEY_STRIDE + KEY_NH]
            arp.used[i] = now
            st.stats.ipOutRequests += 1
            st.send_frame(arp.macs[i], st.ip_off + total)
        elif st.dispatch_ipv4(v[RIP_HI], v[RIP_LO], total, now) and arp is not None:
            st.tcb_nh_gen[x] = arp.gen
            st.tcb_keys[x * KEY_STRIDE + KEY_NH] = arp.last

    def _make_hdr(self):
        """Fill this connection's prepared headers (st.tcb_hdrs, see reset()): the IPv4 and
        TCP header fields that stay the same (addresses, ports, TTL, protocol, data
        offset); what _finish writes is left as it may be."""
        v = self.v
        h = bytearray(40)  # set-up only: the whole headers, then their bytes 8..39 kept
        ipv4.write_header(h, 0, self.stack.ip, v[RIP_HI], v[RIP_LO], ipv4.PROTO_TCP, 0, 0)
        tcpseg.write_header(h, 20, v[LPORT], v[RPORT], 0, 0, 0)
        x = v[INDEX] << 5
        self.stack.tcb_hdrs[x:x + 32] = memoryview(h)[8:]

    def _emit_syn(self, flags):
        """A SYN or SYN,ACK (sequence number 0, our MSS option): the general path."""
        v = self.v
        st = self.stack
        buf = st.txbuf
        t = st.ip_off + 20
        hlen = st.write_tcp_header(t, v[LPORT], v[RPORT], flags, self._rcv_window(), True)
        seq.to_wire(buf, t + 4, v[SND_HI], v[SND_LO], 0)
        if flags & ACK:
            seq.to_wire(buf, t + 8, v[RCV_HI], v[RCV_LO], v[RCV_NXT])
            v[ACK_NOW] = False
            v[ACK_AT] = OFF
            v[RX_UNACKED] = 0
        else:
            buf[t + 8] = buf[t + 9] = buf[t + 10] = buf[t + 11] = 0
        if v[SND_MAX] > 0:
            st.stats.tcpRetransSegs += 1
        st.dispatch_tcp(v[RIP_HI], v[RIP_LO], hlen)

    def _retransmit_first(self, now):
        """Resend the oldest unacknowledged segment (fast retransmit, partial ACK)."""
        v = self.v
        n = v[TX_COUNT]
        if n > v[SND_MSS]:
            n = v[SND_MSS]
        fin = v[FIN_SEQ] >= 0 and v[SND_UNA] + n == v[FIN_SEQ]
        if n == 0 and not fin:
            return
        v[RTT_AT] = OFF  # Karn: never time a retransmitted segment
        self._emit(ACK | (FIN if fin else 0), v[SND_UNA], n)
        v[REXMIT_AT] = port.ticks_add(now, v[RTO_MS])

    def output(self, now, force=False):
        """Send what is due: SYN, data within the windows (Nagle), FIN, or a bare ACK.

        force: the override timer fired (RFC 1122 4.2.3.4): send a window-limited small
        segment that sender SWS avoidance would hold back.
        """
        v = self.v
        if _out is not None:
            st = self.stack
            if not st.tracer:
                # The common case natively (port.tcp_out: new data or a bare ACK, each turn
                # a whole segment in txbuf and the fields updated); -1: the Python below.
                r = _out(v, st.txbuf, st.tcb_hdrs, self.txb, now, force, st.knobs)
                while r > 0:
                    st.stats.tcpOutSegs += 1
                    self._send(r & 0xFFFF, now)
                    if not r & 0x10000:
                        return
                    if r & 0x20000:
                        force = False
                    r = _out(v, st.txbuf, st.tcb_hdrs, self.txb, now, force, st.knobs)
                if r == 0:
                    return
        state = v[STATE]
        if state == CLOSED or state == LISTEN or state == TIME_WAIT:
            return
        # Offsets near 2**27 move their base (seq.py); done here, where no caller holds
        # an offset in a local variable.
        if v[SND_UNA] >= seq.REBASE_AT:
            self._rebase_snd()
        if v[RCV_NXT] >= seq.REBASE_AT:
            self._rebase_rcv()
        if state == SYN_SENT or state == SYN_RECEIVED:
            if v[SND_NXT] == 0:
                self._emit(SYN if state == SYN_SENT else SYN | ACK, 0, 0, True)
                v[SND_NXT] = 1
                if v[SND_MAX] < 1:
                    v[SND_MAX] = 1
                if v[RETRIES] == 0:
                    v[RTT_AT] = now
                    v[RTT_SEQ] = 0
                if v[REXMIT_AT] < 0:
                    v[REXMIT_AT] = port.ticks_add(now, v[RTO_MS])
            elif v[ACK_NOW]:
                if state == SYN_RECEIVED:
                    # An unacceptable segment here gets <SEQ=SND.NXT><ACK=RCV.NXT><ACK>
                    # (RFC 9293 3.10.7.4); _emit clears the request.
                    self._emit(ACK, v[SND_NXT], 0)
                else:
                    v[ACK_NOW] = False  # nothing to acknowledge before the peer's SYN
            return
        tx_count = v[TX_COUNT]
        nxt = v[SND_NXT]
        fin_seq = v[FIN_SEQ]
        if tx_count <= nxt - v[SND_UNA] and fin_seq != nxt:
            # Nothing new to send (all of the ring in flight, no FIN due here): what the
            # loop below would find, at a third of its cost (a receiver's every poll).
            if v[ACK_NOW]:
                self._emit(ACK, nxt, 0)
            return
        sent = False
        mss = v[SND_MSS]
        while True:
            una = v[SND_UNA]
            nxt = v[SND_NXT]
            avail = tx_count - (nxt - una)
            if avail < 0:
                avail = 0
            wnd = v[SND_WND] if v[SND_WND] < v[CWND] else v[CWND]
            usable = una + wnd - nxt
            n = avail if avail < mss else mss
            if n > usable:
                n = usable if usable > 0 else 0
            fin = v[FIN_SEQ] >= 0 and nxt + n == v[FIN_SEQ]
            if n == 0 and not fin:
                break
            if n and n < mss and not fin:
                if n < avail:
                    # Window-limited: sender SWS avoidance (RFC 1122 4.2.3.4).
                    if n < v[MAX_SND_WND] // 2 and not force:
                        break
                    force = False
                elif nxt != una and not v[NODELAY]:
                    break  # Nagle: one small segment in flight at a time
            self._emit(ACK | (PSH if n and n == avail else 0) | (FIN if fin else 0), nxt, n)
            if v[RTT_AT] < 0 and nxt == v[SND_MAX] and n:
                v[RTT_AT] = now
                v[RTT_SEQ] = nxt
            nxt += n + (1 if fin else 0)
            v[SND_NXT] = nxt
            if nxt > v[SND_MAX]:
                v[SND_MAX] = nxt
            if v[REXMIT_AT] < 0:
                v[REXMIT_AT] = port.ticks_add(now, v[RTO_MS])
            sent = True
            if n == avail and fin_seq != nxt:
                break  # all of the ring sent and no FIN due: another turn would find so
        if not sent and v[ACK_NOW]:
            self._emit(ACK, v[SND_NXT], 0)
        # Data waiting, nothing in flight, and the window held it back (zero, or too
        # small for SWS avoidance): the persist timer probes a zero window (RFC 9293
        # 3.8.6.1) and is the override timer of a small one (RFC 1122 4.2.3.4), as Linux's
        # probe timer is both. Without it nothing would ever move again.
        if (tx_count > v[SND_NXT] - v[SND_UNA] and v[SND_NXT] == v[SND_UNA]
                and v[REXMIT_AT] < 0 and v[PERSIST_AT] < 0):
            v[PERSIST_AT] = port.ticks_add(now, v[RTO_MS])

    # ---- timers ------------------------------------------------------------------------

    def on_timer(self, now):
        """Run every timer that is due. Deadlines are compared with ticks_diff only."""
        v = self.v
        diff = port.ticks_diff
        if v[REXMIT_AT] >= 0 and diff(now, v[REXMIT_AT]) >= 0:
            self._on_rexmit(now)
            if not v[IN_USE] or v[STATE] == CLOSED:
                return
        if v[PERSIST_AT] >= 0 and diff(now, v[PERSIST_AT]) >= 0:
            self._on_persist(now)
        if v[ACK_AT] >= 0 and diff(now, v[ACK_AT]) >= 0:
            v[ACK_AT] = OFF
            v[ACK_NOW] = True
        if v[FIN2_AT] >= 0 and diff(now, v[FIN2_AT]) >= 0:
            # An orphan waited fin_timeout_ms (or a lingering close its timeout) for the
            # peer's FIN: give up with an RST.
            if v[STATE] == FIN_WAIT_2:
                self.stack.stats.tcpFinWait2Timeouts += 1
            else:
                self.stack.stats.tcpLingerTimeouts += 1
            self.abort(now)
            return
        if v[ORPHAN_AT] >= 0 and diff(now, v[ORPHAN_AT]) >= 0:
            self.stack.stats.tcpOrphanTimeouts += 1
            self.abort(now)
            return
        if v[KEEPALIVE_AT] >= 0 and diff(now, v[KEEPALIVE_AT]) >= 0:
            self._on_keepalive(now)

    def _on_rexmit(self, now):
        v = self.v
        st = self.stack
        cfg = st.cfg
        v[REXMIT_AT] = OFF
        state = v[STATE]
        opening = state == SYN_SENT or state == SYN_RECEIVED
        if v[RETRIES] >= (cfg.syn_retries if opening else cfg.retries):
            self._give_up()
            return
        v[RETRIES] += 1
        rto = v[RTO_MS] * 2
        v[RTO_MS] = rto if rto < cfg.rto_max_ms else cfg.rto_max_ms
        v[RTT_AT] = OFF  # Karn
        if opening:
            v[SND_NXT] = 0  # output() sends the SYN (or SYN,ACK) again
            return
        # Loss: ssthresh = max(FlightSize / 2, 2 * SMSS), cwnd = 1 segment (RFC 5681 3.1).
        mss = v[SND_MSS]
        half = (v[SND_MAX] - v[SND_UNA]) // 2
        v[SSTHRESH] = half if half > 2 * mss else 2 * mss
        v[CWND] = mss
        v[DUPACKS] = 0
        v[IN_RECOVERY] = False
        v[RECOVER] = v[SND_MAX]
        v[SND_NXT] = v[SND_UNA]  # go back N; output() resends from snd_una

    def _give_up(self):
        """Retries ran out: drop with ETIMEDOUT, or with the ICMP error that explains it."""
        v = self.v
        stats = self.stack.stats
        stats.tcpTimeouts += 1
        state = v[STATE]
        if state == SYN_SENT:
            stats.tcpAttemptFails += 1
        if state == ESTABLISHED or state == CLOSE_WAIT:
            stats.tcpEstabResets += 1
        self._drop(v[SOFT_ERR] or port.ETIMEDOUT)

    def _on_persist(self, now):
        # Zero-window probes and the override timer: tcp_probes.py, loaded when first due.
        from .tcp_probes import on_persist

        on_persist(self, now)

    def _on_keepalive(self, now):
        # Keepalive probes (off by default): tcp_probes.py, loaded when first due.
        from .tcp_probes import on_keepalive

        on_keepalive(self, now)

    def next_due_ms(self, now):
        """ms until this TCB's earliest deadline (0 if something is due now), or None."""
        v = self.v
        if v[ACK_NOW]:
            return 0
        # Each deadline written out: a loop over the fields cost twice as much (most are
        # OFF: one load and one test each).
        diff = port.ticks_diff
        best = None
        at = v[REXMIT_AT]
        if at >= 0:
            best = diff(at, now)
        at = v[ACK_AT]
        if at >= 0:
            left = diff(at, now)
            if best is None or left < best:
                best = left
        at = v[PERSIST_AT]
        if at >= 0:
            left = diff(at, now)
            if best is None or left < best:
                best = left
        at = v[KEEPALIVE_AT]
        if at >= 0:
            left = diff(at, now)
            if best is None or left < best:
                best = left
        at = v[FIN2_AT]
        if at >= 0:
            left = diff(at, now)
            if best is None or left < best:
                best = left
        at = v[ORPHAN_AT]
        if at >= 0:
            left = diff(at, now)
            if best is None or left < best:
                best = left
        if best is not None and best < 0:
            best = 0
        return best

