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

from micropython import const

from . import port, seq
from .assembler import Assembler
from .ringbuf import RingBuffer
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

_DEFAULT_MSS = const(536)  # RFC 9293 3.7.1: assumed when the peer sends no MSS option
_MAX_WND = const(65535)  # no window scaling


def _min(a, b):
    return a if a < b else b


class TCB:
    def __init__(self, stack, index, rx_size, tx_size, ranges):
        self.stack = stack
        self.index = index
        self.rx = RingBuffer(rx_size)
        self.tx = RingBuffer(tx_size)
        self.asm = Assembler(ranges)
        self.in_use = False
        self.reset()

    def reset(self):
        """Fresh fields for a new connection (buffers are kept, just emptied)."""
        self.state = CLOSED
        self.orphan = False  # the application closed its socket: no one reads or writes
        self.parent = None  # the listening socket, while in its backlog
        self.rip_hi = self.rip_lo = 0
        self.lport = self.rport = 0
        # Bases of the sequence offsets, as 16-bit halves of wire values (seq.py).
        self.snd_hi = self.snd_lo = 0  # ISS, then moved by rebasing
        self.rcv_hi = self.rcv_lo = 0  # IRS, then moved by rebasing
        # Send side. snd_una..snd_nxt is in flight; snd_max is the highest snd_nxt ever
        # (snd_nxt goes back to snd_una on a timeout). The send ring holds snd_una onwards:
        # an ACK of snd_una + n frees n bytes of it.
        self.snd_una = self.snd_nxt = self.snd_max = 0
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.snd_mss = _DEFAULT_MSS
        self.fin_seq = -1  # sequence number of our FIN, -1 until the send side is closed
        # Receive side. rcv_adv is the right edge of the window we last advertised.
        self.rcv_nxt = 0
        self.rcv_adv = 0
        self.rx_fin = False  # the peer's FIN arrived (EOF after the ring drains)
        self.rd_shut = False  # shutdown(SHUT_RD)
        self.rx_unacked = 0  # bytes received since our last ACK (delayed ACK)
        self.ack_now = False
        # Errors: `ended` is sticky (recv/send keep raising it), so_error is read-and-clear.
        self.ended = 0
        self.so_error = 0
        # Timers: deadlines in ticks, None = off.
        self.rexmit_at = None
        self.persist_at = None
        self.ack_at = None
        self.fin2_at = None
        self.keepalive_at = None
        self.retries = 0
        self.persist_shift = 0
        self.keepalive_sent = 0
        cfg = self.stack.cfg
        self.rto_ms = cfg.rto_initial_ms
        self.srtt_ms = 0  # 0 = no sample yet
        self.rttvar_ms = 0
        self.rtt_at = None  # when the timed segment left (Karn: one at a time, not resent)
        self.rtt_seq = 0
        # Congestion control (RFC 5681, NewReno RFC 6582).
        self.cwnd = 0
        self.ssthresh = _MAX_WND
        self.dupacks = 0
        self.recover = 0
        self.in_recovery = False
        self.nodelay = False
        self.keepalive = cfg.keepalive_ms is not None
        self.rx.clear()
        self.tx.clear()
        self.asm.clear()

    # ---- state -------------------------------------------------------------------------

    def _set_state(self, new):
        old = self.state
        if old == new:
            return
        st = self.stack
        was_estab = old == ESTABLISHED or old == CLOSE_WAIT
        is_estab = new == ESTABLISHED or new == CLOSE_WAIT
        if was_estab and not is_estab:
            st.stats.tcpCurrEstab -= 1
        elif is_estab and not was_estab:
            st.stats.tcpCurrEstab += 1
        self.state = new
        if st.log:
            st.log("tcp %d: %s => %s" % (self.index, STATE_NAMES[old], STATE_NAMES[new]))

    def synchronized(self):
        return self.state >= ESTABLISHED

    def state_name(self):
        return STATE_NAMES[self.state]

    # ---- opening -----------------------------------------------------------------------

    def _start(self, rip_hi, rip_lo, lport, rport, now):
        st = self.stack
        self.rip_hi, self.rip_lo = rip_hi, rip_lo
        self.lport, self.rport = lport, rport
        self.snd_mss = _DEFAULT_MSS
        self.cwnd = st.mss  # set again from the peer's MSS (RFC 5681 initial window below)

    def open_active(self, rip_hi, rip_lo, lport, rport, now):
        """connect(): send SYN, enter SYN-SENT."""
        self._start(rip_hi, rip_lo, lport, rport, now)
        self.snd_hi, self.snd_lo = self.stack.isn(rip_hi, rip_lo, lport, rport, now)
        self.stack.stats.tcpActiveOpens += 1
        self._set_state(SYN_SENT)
        self.output(now)

    def open_passive(self, seg, parent, iss, now):
        """A SYN reached a listener: enter SYN-RECEIVED and answer SYN,ACK."""
        buf, t = seg.buf, seg.t
        self._start(seg.rip_hi, seg.rip_lo, seg.dport, seg.sport, now)
        self.parent = parent
        self.snd_hi, self.snd_lo = iss
        self._learn_irs(seg)
        self.stack.stats.tcpPassiveOpens += 1
        self._set_state(SYN_RECEIVED)
        self.output(now)

    def _learn_irs(self, seg):
        """The peer's SYN: IRS becomes the receive base, so the SYN is offset 0."""
        buf, t = seg.buf, seg.t
        self.rcv_hi = (buf[t + 4] << 8) | buf[t + 5]
        self.rcv_lo = (buf[t + 6] << 8) | buf[t + 7]
        self.rcv_nxt = 1
        self.rcv_adv = 1
        self.snd_wnd = seg.wnd
        self.max_snd_wnd = seg.wnd
        self.snd_wl1 = 0
        mss = seg.mss if seg.mss else _DEFAULT_MSS
        self.snd_mss = _min(mss, self.stack.mss)
        # RFC 5681 3.1 initial window: 2 to 4 segments by size.
        m = self.snd_mss
        self.cwnd = 4 * m if m <= 1095 else (3 * m if m <= 2190 else 2 * m)

    # ---- closing, from the application ------------------------------------------------

    def close_send(self, now):
        """No more data from the application: queue our FIN after what is in the ring."""
        s = self.state
        if s == SYN_SENT or (s == SYN_RECEIVED and self.parent is not None):
            self._drop(0)
            return
        if self.fin_seq >= 0:
            return
        if s == ESTABLISHED or s == SYN_RECEIVED:
            self._set_state(FIN_WAIT_1)
        elif s == CLOSE_WAIT:
            self._set_state(LAST_ACK)
        else:
            return
        self.fin_seq = self.snd_una + self.tx.count
        self.output(now)

    def abort(self, now):
        """RST now (RFC 9293 ABORT), discard everything."""
        if self.state >= SYN_RECEIVED and self.state != TIME_WAIT:
            self._send_rst(now)
        if self.state == ESTABLISHED or self.state == CLOSE_WAIT:
            self.stack.stats.tcpEstabResets += 1
        self._drop(0)

    def _send_rst(self, now):
        # Linux's form (tcp_send_active_reset): <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>.
        self._emit(RST | ACK, self.snd_nxt, 0)

    def _drop(self, err):
        """To CLOSED: timers off, and the pool slot back if the application let go."""
        self._set_state(CLOSED)
        if err:
            self.ended = err
            self.so_error = err
        self.rexmit_at = self.persist_at = self.ack_at = None
        self.fin2_at = self.keepalive_at = None
        self.ack_now = False
        self.tx.clear()
        parent = self.parent
        if parent is not None:
            # Reset or timed out before accept(): Linux drops it from the queue too.
            parent._forget(self)
            self.parent = None
            self.orphan = True
        if self.orphan:
            self.stack.free_tcb(self)

    def _enter_time_wait(self, now):
        """Hand the connection to the TIME-WAIT table; the TCB is free for reuse."""
        self._set_state(TIME_WAIT)
        st = self.stack
        shi, slo = seq.add_halves(self.snd_hi, self.snd_lo, self.snd_nxt)
        rhi, rlo = seq.add_halves(self.rcv_hi, self.rcv_lo, self.rcv_nxt)
        st.tw.add(self.rip_hi, self.rip_lo, self.lport, self.rport, shi, slo, rhi, rlo,
                  self._rcv_window(), port.ticks_add(now, 2 * st.cfg.msl_ms), now, st.stats)
        # The application may still hold the socket to read; the protocol part is done.
        self._drop(0)

    # ---- input -------------------------------------------------------------------------

    def process(self, seg, now):
        """Handle one segment for this connection (RFC 9293 3.10.7)."""
        st = self.stack
        state = self.state
        if state == SYN_SENT:
            self._process_syn_sent(seg, now)
            return
        buf, t, flags = seg.buf, seg.t, seg.flags
        sq = seq.from_wire(buf, t + 4, self.rcv_hi, self.rcv_lo)
        dlen = seg.dlen
        seg_len = dlen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        self.keepalive_sent = 0
        if self.keepalive_at is not None:
            self.keepalive_at = port.ticks_add(now, st.cfg.keepalive_ms)

        if state == SYN_RECEIVED and flags & SYN and sq == 0:
            if not flags & ACK:
                # The peer's SYN again (our SYN,ACK was lost): answer it again.
                self.snd_nxt = 0
                return
            if self.parent is None and not dlen:
                # Simultaneous open: their SYN,ACK acknowledges our SYN. Its SYN was
                # already counted, so take it as the ACK it carries (as Linux does).
                flags &= ~SYN
                sq = 1
                seg_len = 0

        # First: is the segment in the window? (RFC 9293 3.10.7.4 table)
        wnd = self.rcv_adv - self.rcv_nxt
        if wnd < 0:
            wnd = 0
        rn = self.rcv_nxt
        if seg_len == 0:
            ok = sq == rn if wnd == 0 else rn <= sq < rn + wnd
        elif wnd == 0:
            # Linux accepts a bare FIN at rcv_nxt into a zero window; so do we.
            ok = sq == rn and dlen == 0 and flags & FIN
        else:
            ok = (rn <= sq < rn + wnd) or (rn <= sq + seg_len - 1 < rn + wnd)
        if not ok:
            if not flags & RST:
                self.ack_now = True  # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
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
        ack = seq.from_wire(buf, t + 8, self.snd_hi, self.snd_lo)
        if state == SYN_RECEIVED:
            if not (self.snd_una < ack <= self.snd_max):
                # RFC 9293: <SEQ=SEG.ACK><CTL=RST> for an unacceptable ACK here.
                st.reply_rst(seg)
                return
            self.snd_una = ack
            self._rtt_sample(ack, now)
            self.rexmit_at = None
            self.retries = 0
            self.snd_wnd = seg.wnd
            self.snd_wl1, self.snd_wl2 = sq, ack
            self._set_state(ESTABLISHED)
            if self.keepalive:
                self.keepalive_at = port.ticks_add(now, st.cfg.keepalive_ms)
            if self.parent is not None:
                self.parent._ready(self)
        else:
            # RFC 5961 5.2: an ACK outside [SND.UNA - MAX.SND.WND, SND.MAX] is dropped.
            if ack > self.snd_max or ack < self.snd_una - self.max_snd_wnd:
                self.ack_now = True
                st.stats.tcpDropped += 1
                return
            self._process_ack(seg, sq, ack, now)
            state = self.state
            fin_acked = self.fin_seq >= 0 and self.snd_una > self.fin_seq
            if state == FIN_WAIT_1:
                if fin_acked:
                    # Our FIN is acknowledged: FIN-WAIT-2. An orphan gets a deadline.
                    self._set_state(FIN_WAIT_2)
                    if self.orphan and self.fin2_at is None:
                        self.fin2_at = port.ticks_add(now, st.cfg.fin_timeout_ms)
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
        state = self.state
        if dlen and (state == ESTABLISHED or state == FIN_WAIT_1 or state == FIN_WAIT_2):
            if self.orphan and not self.rd_shut:
                # Nobody will read this: RFC 1122 4.2.2.13, as Linux (TCPAbortOnData).
                st.stats.tcpRstsDataAfterClose += 1
                self.abort(now)
                return
            if not self._receive_data(seg, sq, now):
                return  # out of order: any FIN waits for the retransmission

        # Eighth: FIN, once everything before it is in.
        if flags & FIN and sq + dlen == self.rcv_nxt and not self.rx_fin:
            self.rcv_nxt += 1
            self.rx_fin = True
            self.ack_now = True
            self.fin2_at = None  # what an orphan's deadline waited for has come
            if state == ESTABLISHED:
                # Passive close: CLOSE-WAIT; recv() gives EOF once the ring is read.
                self._set_state(CLOSE_WAIT)
            elif state == FIN_WAIT_1:
                # Their FIN crossed ours (not acked yet): simultaneous close, CLOSING.
                self._set_state(CLOSING)
            elif state == FIN_WAIT_2:
                # Normal or three-way close: TIME-WAIT. The ACK leaves from TIME-WAIT,
                # then the connection moves to the TIME-WAIT table.
                self._set_state(TIME_WAIT)
                self._emit(ACK, self.snd_nxt, 0)
                self._enter_time_wait(now)

    def _process_syn_sent(self, seg, now):
        st = self.stack
        buf, t, flags = seg.buf, seg.t, seg.flags
        if flags & ACK:
            ack = seq.from_wire(buf, t + 8, self.snd_hi, self.snd_lo)
            if ack <= 0 or ack > self.snd_max:
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
            self.snd_una = ack
            if self.snd_nxt < ack:
                self.snd_nxt = ack
            self._rtt_sample(ack, now)
            self.rexmit_at = None
            self.retries = 0
            self.snd_wl2 = ack
            self._set_state(ESTABLISHED)
            if self.keepalive:
                self.keepalive_at = port.ticks_add(now, st.cfg.keepalive_ms)
            self.ack_now = True
        else:
            # Simultaneous open: SYN-RECEIVED, and our SYN again with an ACK.
            self._set_state(SYN_RECEIVED)
            self.snd_nxt = 0
            self.rexmit_at = None

    def _on_rst(self):
        st = self.stack
        state = self.state
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
            self._drop(0)  # RFC 9293: just close; the application has had its EOF
        else:
            self._drop(port.ECONNRESET)

    def icmp_unreachable(self, code):
        """ICMP destination unreachable about this connection (RFC 1122 4.2.3.9).

        Protocol and port unreachable are hard errors while connecting: connect() fails
        with ECONNREFUSED. Otherwise the error is only remembered (SO_ERROR), as Linux
        does: the connection may still recover.
        """
        st = self.stack
        if code == 2 or code == 3:
            if self.state == SYN_SENT:
                st.stats.tcpAttemptFails += 1
                self._drop(port.ECONNREFUSED)
                return
            self.so_error = port.ECONNREFUSED
        else:
            self.so_error = port.EHOSTUNREACH

    def _challenge_ack(self, now):
        if self.stack.challenge_ack_allowed(now):
            self.ack_now = True

    def _process_ack(self, seg, sq, ack, now):
        st = self.stack
        mss = self.snd_mss
        if ack > self.snd_una:
            acked = ack - self.snd_una
            data = acked
            if data > self.tx.count:
                data = self.tx.count  # the rest acknowledges our FIN
            self.tx.consume(data)
            self.snd_una = ack
            if self.snd_nxt < ack:
                self.snd_nxt = ack
            self._rtt_sample(ack, now)
            if self.retries:
                self.retries = 0
                self._rto_from_srtt()
            self.persist_shift = 0
            # Congestion control.
            if self.in_recovery:
                if ack >= self.recover:
                    # Full ACK: recovery ends with cwnd = ssthresh (RFC 6582 3.2 step 3).
                    self.in_recovery = False
                    self.cwnd = self.ssthresh
                else:
                    # Partial ACK: resend the next hole, deflate (RFC 6582 3.2 step 4).
                    self._retransmit_first(now)
                    self.cwnd = self.cwnd - acked + mss if self.cwnd > acked else mss
            elif self.cwnd < self.ssthresh:
                self.cwnd += acked if acked < mss else mss  # slow start
            else:
                inc = mss * mss // self.cwnd
                self.cwnd += inc if inc else 1  # congestion avoidance
            self.dupacks = 0
            # Restart the retransmission timer while data is in flight (RFC 6298 5.3).
            if self.snd_una >= self.snd_max:
                self.rexmit_at = None
            else:
                self.rexmit_at = port.ticks_add(now, self.rto_ms)
        elif (ack == self.snd_una and seg.dlen == 0 and not seg.flags & FIN
              and seg.wnd == self.snd_wnd and self.snd_max > self.snd_una):
            # A duplicate ACK (RFC 5681 2): three of them trigger fast retransmit.
            self.dupacks += 1
            if self.dupacks == 3 and not self.in_recovery:
                flight = self.snd_max - self.snd_una
                self.ssthresh = flight // 2 if flight // 2 > 2 * mss else 2 * mss
                self.recover = self.snd_max
                self.in_recovery = True
                st.stats.tcpFastRetransmits += 1
                self._retransmit_first(now)
                self.cwnd = self.ssthresh + 3 * mss
            elif self.dupacks > 3 and self.in_recovery:
                self.cwnd += mss  # each further dup ACK: a segment has left the network
        # Window update (RFC 9293: only from a newer segment, or a newer ACK of the same).
        if self.snd_wl1 < sq or (self.snd_wl1 == sq and self.snd_wl2 <= ack):
            opened = self.snd_wnd == 0 and seg.wnd > 0
            self.snd_wnd = seg.wnd
            self.snd_wl1 = sq
            self.snd_wl2 = ack
            if seg.wnd > self.max_snd_wnd:
                self.max_snd_wnd = seg.wnd
            if opened:
                self.persist_at = None
                self.persist_shift = 0

    def _receive_data(self, seg, sq, now):
        """Put the payload into the receive ring; return True if it was in order."""
        st = self.stack
        skip = self.rcv_nxt - sq  # bytes we already have (a retransmission overlapping)
        if skip < 0:
            skip = 0
        n = seg.dlen - skip
        if n <= 0:
            self.ack_now = True
            return True
        start = seg.data + skip
        view = st.rxmv[start:start + n]
        off = sq + skip - self.rcv_nxt
        if self.rd_shut:
            # shutdown(SHUT_RD): accept and discard, so the window stays open.
            if off:
                self.ack_now = True
                return False
            self.rcv_nxt += n
            self.rx_unacked += n
            self._schedule_ack(now)
            return True
        if off:
            # Out of order: into the ring at its place, remembered by the assembler.
            got = self.rx.write_at(off, view)
            if got and self.asm.add(off, off + got):
                st.stats.tcpOutOfOrderSegs += 1
            else:
                st.stats.tcpOutOfOrderDrops += 1
            self.ack_now = True  # a duplicate ACK tells the sender about the hole
            return False
        got = self.rx.write_at(0, view)
        self.rx.commit(got)
        extra = self.asm.advance(got)
        if extra:
            self.rx.commit(extra)
            self.ack_now = True  # a hole was filled: ACK at once (RFC 5681 4.2)
        self.rcv_nxt += got + extra
        if self.asm.used:
            self.ack_now = True
        self.rx_unacked += got
        self._schedule_ack(now)
        return got == n

    def _schedule_ack(self, now):
        # Delayed ACK: at least every second full-sized segment, at most ack_delay_ms late.
        if self.rx_unacked >= 2 * self.stack.mss:
            self.ack_now = True
        elif self.ack_at is None:
            self.ack_at = port.ticks_add(now, self.stack.cfg.ack_delay_ms)

    # ---- rebasing (seq.py) -------------------------------------------------------------

    def _rebase_snd(self):
        r = seq.REBASE_AT
        self.snd_hi, self.snd_lo = seq.add_halves(self.snd_hi, self.snd_lo, r)
        self.snd_una -= r
        self.snd_nxt -= r
        self.snd_max -= r
        self.snd_wl2 -= r
        self.rtt_seq -= r
        self.recover -= r
        if self.fin_seq >= 0:
            self.fin_seq -= r

    def _rebase_rcv(self):
        r = seq.REBASE_AT
        self.rcv_hi, self.rcv_lo = seq.add_halves(self.rcv_hi, self.rcv_lo, r)
        self.rcv_nxt -= r
        self.rcv_adv -= r
        self.snd_wl1 -= r

    # ---- RTT and RTO (RFC 6298) --------------------------------------------------------

    def _rtt_sample(self, ack, now):
        if self.rtt_at is None or ack <= self.rtt_seq:
            return
        r = port.ticks_diff(now, self.rtt_at)
        self.rtt_at = None
        if r < 1:
            r = 1
        if not self.srtt_ms:
            self.srtt_ms = r
            self.rttvar_ms = r // 2
        else:
            d = self.srtt_ms - r
            if d < 0:
                d = -d
            self.rttvar_ms = (3 * self.rttvar_ms + d) // 4
            self.srtt_ms = (7 * self.srtt_ms + r) // 8
        self._rto_from_srtt()

    def _rto_from_srtt(self):
        cfg = self.stack.cfg
        if not self.srtt_ms:
            self.rto_ms = cfg.rto_initial_ms
            return
        k = 4 * self.rttvar_ms
        rto = self.srtt_ms + (k if k > 1 else 1)
        if rto < cfg.rto_min_ms:
            rto = cfg.rto_min_ms
        elif rto > cfg.rto_max_ms:
            rto = cfg.rto_max_ms
        self.rto_ms = rto

    # ---- output ------------------------------------------------------------------------

    def _rcv_window(self):
        """The window to advertise, with receiver SWS avoidance (RFC 1122 4.2.3.3)."""
        free = self.rx.size - self.rx.count
        if free > _MAX_WND:
            free = _MAX_WND
        edge = self.rcv_nxt + free
        step = self.rx.size // 2
        if step > self.stack.mss:
            step = self.stack.mss
        if edge < self.rcv_adv + step and self.rcv_adv > self.rcv_nxt:
            return self.rcv_adv - self.rcv_nxt  # keep the old right edge
        if edge > self.rcv_adv:
            self.rcv_adv = edge
        return self.rcv_adv - self.rcv_nxt

    def window_update_due(self):
        """After the application read: is the new window worth an ACK of its own?"""
        if not self.synchronized() or self.rx_fin:
            return False
        adv = self.rcv_adv - self.rcv_nxt
        free = self.rx.size - self.rx.count
        step = self.rx.size // 2
        if step > self.stack.mss:
            step = self.stack.mss
        return adv < step <= free - adv

    def _emit(self, flags, seq_rel, n, mss=False):
        """Build and send one segment; n payload bytes come from the send ring."""
        st = self.stack
        buf = st.txbuf
        ip = st.ip_off
        t = ip + 20
        # An RST advertises no window: nothing more will be received.
        wnd = 0 if flags & RST else self._rcv_window()
        hlen = st.write_tcp_header(t, self.lport, self.rport, flags, wnd, mss)
        seq.to_wire(buf, t + 4, self.snd_hi, self.snd_lo, seq_rel)
        if flags & ACK:
            seq.to_wire(buf, t + 8, self.rcv_hi, self.rcv_lo, self.rcv_nxt)
            self.ack_now = False
            self.ack_at = None
            self.rx_unacked = 0
        else:
            buf[t + 8] = buf[t + 9] = buf[t + 10] = buf[t + 11] = 0
        if n:
            self.tx.copy_out(seq_rel - self.snd_una, st.txbuf, n, t + hlen)
        if seq_rel < self.snd_max and (n or flags & (SYN | FIN)):
            st.stats.tcpRetransSegs += 1
        st.dispatch_tcp(self.rip_hi, self.rip_lo, hlen + n)

    def _retransmit_first(self, now):
        """Resend the oldest unacknowledged segment (fast retransmit, partial ACK)."""
        n = self.tx.count
        if n > self.snd_mss:
            n = self.snd_mss
        fin = self.fin_seq >= 0 and self.snd_una + n == self.fin_seq
        if n == 0 and not fin:
            return
        self.rtt_at = None  # Karn: never time a retransmitted segment
        self._emit(ACK | (FIN if fin else 0), self.snd_una, n)
        self.rexmit_at = port.ticks_add(now, self.rto_ms)

    def output(self, now):
        """Send what is due: SYN, data within the windows (Nagle), FIN, or a bare ACK."""
        state = self.state
        if state == CLOSED or state == LISTEN or state == TIME_WAIT:
            return
        # Offsets near 2**27 move their base (seq.py); done here, where no caller holds
        # an offset in a local variable.
        if self.snd_una >= seq.REBASE_AT:
            self._rebase_snd()
        if self.rcv_nxt >= seq.REBASE_AT:
            self._rebase_rcv()
        if state == SYN_SENT or state == SYN_RECEIVED:
            if self.snd_nxt == 0:
                self._emit(SYN if state == SYN_SENT else SYN | ACK, 0, 0, True)
                self.snd_nxt = 1
                if self.snd_max < 1:
                    self.snd_max = 1
                if self.retries == 0:
                    self.rtt_at = now
                    self.rtt_seq = 0
                if self.rexmit_at is None:
                    self.rexmit_at = port.ticks_add(now, self.rto_ms)
            return
        sent = False
        tx_count = self.tx.count
        mss = self.snd_mss
        while True:
            una = self.snd_una
            nxt = self.snd_nxt
            avail = tx_count - (nxt - una)
            if avail < 0:
                avail = 0
            wnd = self.snd_wnd if self.snd_wnd < self.cwnd else self.cwnd
            usable = una + wnd - nxt
            n = avail if avail < mss else mss
            if n > usable:
                n = usable if usable > 0 else 0
            fin = self.fin_seq >= 0 and nxt + n == self.fin_seq
            if n == 0 and not fin:
                break
            if n and n < mss and not fin:
                if n < avail:
                    # Window-limited: sender SWS avoidance (RFC 1122 4.2.3.4).
                    if n < self.max_snd_wnd // 2:
                        break
                elif nxt != una and not self.nodelay:
                    break  # Nagle: one small segment in flight at a time
            self._emit(ACK | (PSH if n and n == avail else 0) | (FIN if fin else 0), nxt, n)
            if self.rtt_at is None and nxt == self.snd_max and n:
                self.rtt_at = now
                self.rtt_seq = nxt
            nxt += n + (1 if fin else 0)
            self.snd_nxt = nxt
            if nxt > self.snd_max:
                self.snd_max = nxt
            if self.rexmit_at is None:
                self.rexmit_at = port.ticks_add(now, self.rto_ms)
            sent = True
        if not sent and self.ack_now:
            self._emit(ACK, self.snd_nxt, 0)
        # Zero window with data waiting and nothing in flight: persist (RFC 9293 3.8.6.1).
        if (self.snd_wnd == 0 and tx_count > self.snd_nxt - self.snd_una
                and self.snd_nxt == self.snd_una and self.rexmit_at is None
                and self.persist_at is None):
            self.persist_at = port.ticks_add(now, self.rto_ms)

    # ---- timers ------------------------------------------------------------------------

    def on_timer(self, now):
        """Run every timer that is due. Deadlines are compared with ticks_diff only."""
        diff = port.ticks_diff
        if self.rexmit_at is not None and diff(now, self.rexmit_at) >= 0:
            self._on_rexmit(now)
            if not self.in_use or self.state == CLOSED:
                return
        if self.persist_at is not None and diff(now, self.persist_at) >= 0:
            self._on_persist(now)
        if self.ack_at is not None and diff(now, self.ack_at) >= 0:
            self.ack_at = None
            self.ack_now = True
        if self.fin2_at is not None and diff(now, self.fin2_at) >= 0:
            # An orphan waited fin_timeout_ms (or a lingering close its timeout) for the
            # peer's FIN: give up with an RST.
            if self.state == FIN_WAIT_2:
                self.stack.stats.tcpFinWait2Timeouts += 1
            else:
                self.stack.stats.tcpLingerTimeouts += 1
            self.abort(now)
            return
        if self.keepalive_at is not None and diff(now, self.keepalive_at) >= 0:
            self._on_keepalive(now)

    def _on_rexmit(self, now):
        st = self.stack
        cfg = st.cfg
        self.rexmit_at = None
        state = self.state
        opening = state == SYN_SENT or state == SYN_RECEIVED
        if self.retries >= (cfg.syn_retries if opening else cfg.retries):
            st.stats.tcpTimeouts += 1
            if state == SYN_SENT:
                st.stats.tcpAttemptFails += 1
            if state == ESTABLISHED or state == CLOSE_WAIT:
                st.stats.tcpEstabResets += 1
            self._drop(port.ETIMEDOUT)
            return
        self.retries += 1
        rto = self.rto_ms * 2
        self.rto_ms = rto if rto < cfg.rto_max_ms else cfg.rto_max_ms
        self.rtt_at = None  # Karn
        if opening:
            self.snd_nxt = 0  # output() sends the SYN (or SYN,ACK) again
            return
        # Loss: ssthresh = max(FlightSize / 2, 2 * SMSS), cwnd = 1 segment (RFC 5681 3.1).
        mss = self.snd_mss
        half = (self.snd_max - self.snd_una) // 2
        self.ssthresh = half if half > 2 * mss else 2 * mss
        self.cwnd = mss
        self.dupacks = 0
        self.in_recovery = False
        self.recover = self.snd_max
        self.snd_nxt = self.snd_una  # go back N; output() resends from snd_una

    def _on_persist(self, now):
        # Zero-window probe: an old sequence number (snd_una - 1), no data, which any TCP
        # answers with an ACK carrying its current window (as Linux's tcp_xmit_probe_skb).
        self.stack.stats.tcpPersistProbes += 1
        self._emit(ACK, self.snd_una - 1, 0)
        self.persist_shift += 1
        wait = self.rto_ms << self.persist_shift if self.persist_shift < 7 else 1 << 30
        cap = self.stack.cfg.rto_max_ms
        self.persist_at = port.ticks_add(now, wait if wait < cap else cap)

    def _on_keepalive(self, now):
        cfg = self.stack.cfg
        if self.state != ESTABLISHED and self.state != CLOSE_WAIT:
            self.keepalive_at = None
            return
        if self.keepalive_sent >= cfg.keepalive_probes:
            self.stack.stats.tcpKeepaliveDrops += 1
            self.stack.stats.tcpEstabResets += 1
            self._drop(port.ETIMEDOUT)
            return
        self.keepalive_sent += 1
        self._emit(ACK, self.snd_una - 1, 0)
        self.keepalive_at = port.ticks_add(now, cfg.keepalive_intvl_ms)

    def next_due_ms(self, now):
        """ms until this TCB's earliest deadline (0 if something is due now), or None."""
        if self.ack_now:
            return 0
        best = _left(self.rexmit_at, now, None)
        best = _left(self.persist_at, now, best)
        best = _left(self.ack_at, now, best)
        best = _left(self.fin2_at, now, best)
        best = _left(self.keepalive_at, now, best)
        if best is not None and best < 0:
            best = 0
        return best


def _left(at, now, best):
    """The smaller of best and the ms left until deadline `at` (None = off)."""
    if at is None:
        return best
    left = port.ticks_diff(at, now)
    return left if best is None or left < best else best
