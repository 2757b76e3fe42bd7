# REPL debugging helpers: netstat(), stats(), trace() and a packet capture ring.
# SPDX-License-Identifier: MIT
#
#     >>> from stack import debug
#     >>> debug.netstat(net)             # every TCB, listener and TIME-WAIT record
#     >>> debug.stats(net)               # non-zero counters (all=True: every counter)
#     >>> debug.trace(net)               # each segment as an RFC-figure row; trace(net, False)
#     >>> debug.capture(net, size=16384) # every frame in and out into a fixed ring
#     >>> debug.dump(net)                # the ring as text lines; tools/pcap_pull.py reads them
#
# Nothing in the core imports this module: it costs no RAM until someone imports it at the
# REPL (or the board's main.py does). The capture ring is the one thing here that runs on
# the data path, through the stack's `capture` hook (iface.py): one bytearray allocated
# when capture() is called, and nothing allocated per frame.

from micropython import const

from . import ipv4, port, seq
from . import trace as _trace
from .tcp import CLOSED, STATE_NAMES

_HDR = const(8)  # record header: ticks_ms (4 bytes, big-endian), length (2), direction (1), 0
LINKTYPE_ETHERNET = const(1)  # pcap link types (tcpdump.org/linktypes.html)
LINKTYPE_IPV4 = const(228)
_TIMERS = ("rexmit", "persist", "ack", "fin2", "keepalive")

_captures = {}  # Stack -> its Capture (kept after capture(net, False), for dump())


def _wire(hi, lo, rel):
    # A sequence offset as the 32-bit number on the wire (may be a heap int: display only).
    return seq.to_int(*seq.add_halves(hi, lo, rel))


def _addr(hi, lo, p):
    return "%d.%d.%d.%d:%d" % (hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF, p)


_ROW = "%-21s %-21s %-12s %10s %10s %10s %6s %6s %6s %5s %5s %5s %s"


def netstat(net, out=print):
    """Print one row per listener, TCB in use and TIME-WAIT record, like `netstat -tn`.

    Sequence numbers are wire values (as tcpdump prints them with -S); snd_wnd is the
    peer's window, rcv_wnd what we last advertised (right edge minus rcv_nxt); sendq and
    recvq are the bytes in the send and receive rings; timers show ms left per armed timer.
    """
    now = net.clock()
    used = 0
    for tcb in net.tcbs:
        if tcb.in_use:
            used += 1
    out("TCBs %d/%d in use, TIME-WAIT %d/%d, listeners %d" % (
        used, len(net.tcbs), net.tw.used, net.tw.slots, len(net.listeners)))
    _lan(net, now, out)
    out(_ROW % ("Local", "Remote", "State", "snd_una", "snd_nxt", "rcv_nxt", "sndwnd",
                "rcvwnd", "cwnd", "rto", "sendq", "recvq", "timers"))
    lhi, llo = net.ip_hi, net.ip_lo
    for lst in net.listeners:
        backlog = lst._backlog
        out(_ROW % ("0.0.0.0:%d" % lst._lport, "0.0.0.0:*", "LISTEN", "-", "-", "-", "-",
                    "-", "-", "-", "-", len(backlog) if backlog else 0,
                    "backlog %d" % lst._backlog_max))
    for tcb in net.tcbs:
        if not tcb.in_use:
            continue
        state = tcb.state
        timers = []
        for name in _TIMERS:
            at = getattr(tcb, name + "_at")
            if at is not None:
                timers.append("%s:%d" % (name, port.ticks_diff(at, now)))
        if state == CLOSED:
            una = nxt = rnxt = "-"
        else:
            una = _wire(tcb.snd_hi, tcb.snd_lo, tcb.snd_una)
            nxt = _wire(tcb.snd_hi, tcb.snd_lo, tcb.snd_nxt)
            rnxt = _wire(tcb.rcv_hi, tcb.rcv_lo, tcb.rcv_nxt) if tcb.rcv_nxt else "-"
        flags = ""
        if tcb.orphan:
            flags = " orphan"
        out(_ROW % (_addr(lhi, llo, tcb.lport), _addr(tcb.rip_hi, tcb.rip_lo, tcb.rport),
                    STATE_NAMES[state], una, nxt, rnxt, tcb.snd_wnd, tcb.rcv_adv - tcb.rcv_nxt,
                    tcb.cwnd, tcb.rto_ms, tcb.tx_count, tcb.rx_count,
                    (" ".join(timers) or "-") + flags))
    tw = net.tw
    for slot, rhi, rlo, lport, rport in tw.records():
        out(_ROW % (_addr(lhi, llo, lport), _addr(rhi, rlo, rport), "TIME-WAIT", "-",
                    seq.to_int(*tw.snd_nxt(slot)), seq.to_int(*tw.rcv_nxt(slot)), "-",
                    tw.wnd(slot), "-", "-", "-", "-",
                    "2msl:%d" % port.ticks_diff(tw.expiry[slot], now)))
    _udp_rows(net, out)


def _lan(net, now, out):
    """The address and where it came from: static, or DHCP's state and lease left."""
    ip = ipv4.ntoa(net.ip_hi, net.ip_lo)
    c = getattr(net, "dhcp", None)
    if c is not None and c.running():
        from .dhcp import STATE_NAMES as DHCP_STATES

        left = c.lease_left_s(now)
        lease = "" if left is None else (" lease forever" if left < 0 else
                                         " lease %d s left" % left)
        out("IPv4 %s/%d, DHCP %s%s" % (ip, net.prefix, DHCP_STATES[c.state], lease))
    else:
        out("IPv4 %s/%d%s" % (ip, net.prefix, "" if net.has_address() else " (none)"))


def _udp_rows(net, out):
    """A row per UDP socket (recvq: bytes queued) and per service's port."""
    udp = net.udp
    for i in range(len(udp.socks)):
        s = udp.socks[i]
        if s is not None:
            out(_ROW % (_addr(net.ip_hi, net.ip_lo, s._lport), "*:*", "UDP", "-", "-", "-",
                        "-", "-", "-", "-", "-", udp.counts[i], "-"))
    for lport in udp.services:
        out(_ROW % (_addr(net.ip_hi, net.ip_lo, lport), "*:*", "UDP", "-", "-", "-", "-",
                    "-", "-", "-", "-", "-", "service"))


def stats(net, all=False, out=print):
    """Print the counters, non-zero first; zero ones only with all=True."""
    items = net.stats.items()
    zero = []
    for name, value in items:
        if value:
            out("%-28s %d" % (name, value))
        else:
            zero.append(name)
    drops = getattr(net.link, "drops", None)
    if drops:
        out("%-28s %d" % ("link.drops", drops))
    if all:
        for name in zero:
            out("%-28s 0" % name)


def trace(net, on=True, out=print):
    """Print every TCP segment as an RFC 793 figure row (the peer left, us right)."""
    if not on:
        net.tracer = None
        return None
    return _trace.attach(net, out=out)


class Capture:
    """Frames in a fixed byte ring, oldest overwritten. Each record: _HDR bytes (ticks_ms,
    length, direction) then the frame. record() is the stack's `capture` hook.

    No allocation per frame: the hook gets the stack's own buffer and a length; copying a
    slice of it would make a memoryview object, so record() copies the whole buffer (a
    slice *store* on a bytearray allocates nothing) and keeps only n bytes of it: the next
    record starts after those n. The cost: the copy also covers up to len(buf) - n bytes
    past the record, and a record never wraps round the end, so the oldest records are
    dropped a little early: once full, the ring holds the newest records in at least
    size - 2 * (len(buf) + 8) bytes, less one record.
    """

    def __init__(self, size, linktype, clock):
        self.buf = bytearray(size)
        self.size = size
        self.linktype = linktype
        self.clock = clock
        self.clear()

    def clear(self):
        self.head = 0  # oldest record
        self.tail = 0  # where the next record goes
        self.wrap_at = self.size  # end of the records before tail, when split
        self.split = False  # records run head..wrap_at, then 0..tail
        self.count = 0
        self.frames = 0  # recorded since clear()
        self.lost = 0  # overwritten by newer ones
        self.skipped = 0  # frames whose buffer is larger than the ring

    def _drop(self):
        b = self.buf
        h = self.head
        h += _HDR + ((b[h + 4] << 8) | b[h + 5])
        self.count -= 1
        self.lost += 1
        if self.split and h >= self.wrap_at:
            h = 0
            self.split = False
        self.head = h

    def record(self, out, buf, n):
        """The frame buf[:n], leaving (out=1) or arriving (out=0)."""
        need = _HDR + len(buf)
        if need > self.size:
            self.skipped += 1
            return
        t = self.tail
        if t + need > self.size:
            # No room before the end: drop the records past tail, then go on from 0.
            while self.split:
                self._drop()
            if self.count:
                self.wrap_at = t
                self.split = True
            t = 0
        while self.split and self.head < t + need:
            self._drop()  # the copy below covers it
        b = self.buf
        ts = self.clock()
        b[t] = (ts >> 24) & 0xFF
        b[t + 1] = (ts >> 16) & 0xFF
        b[t + 2] = (ts >> 8) & 0xFF
        b[t + 3] = ts & 0xFF
        b[t + 4] = n >> 8
        b[t + 5] = n & 0xFF
        b[t + 6] = out
        b[t + 7] = 0
        b[t + _HDR:t + need] = buf
        if not self.count:
            self.head = t
        self.tail = t + _HDR + n
        self.count += 1
        self.frames += 1

    def records(self):
        """(ticks_ms, out, offset, length) of every record, oldest first (for dump, tests)."""
        b = self.buf
        p = self.head
        split = self.split
        out = []
        for _ in range(self.count):
            if split and p >= self.wrap_at:
                p = 0
                split = False
            n = (b[p + 4] << 8) | b[p + 5]
            ts = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]
            out.append((ts, b[p + 6], p + _HDR, n))
            p += _HDR + n
        return out


def capture(net, on=True, size=8192):
    """Record every frame in and out of net into a ring of `size` bytes (allocated now,
    once: a second call with the same size reuses and clears it). on=False stops
    recording and keeps the ring for dump(). Returns the Capture."""
    cap = _captures.get(net)
    if not on:
        net.capture = None
        return cap
    if cap is None or cap.size != size:
        cap = None
        net.capture = None
        _captures.pop(net, None)
        cap = Capture(size, LINKTYPE_ETHERNET if net.mac else LINKTYPE_IPV4, net.clock)
        _captures[net] = cap
    else:
        cap.clear()
    net.capture = cap.record
    return cap


def dump(net, out=print):
    """Print the capture as text: a header line, one line per frame, then END.

        CAPTURE linktype=1 now=123456 period=1073741824 frames=12 kept=12 lost=0 skipped=0
        123400 in 0a0b0c...           (ticks_ms, direction, the frame in hex)
        END
    """
    import binascii

    cap = _captures.get(net)
    if cap is None:
        out("CAPTURE none")
        out("END")
        return
    recs = cap.records()
    out("CAPTURE linktype=%d now=%d period=%d frames=%d kept=%d lost=%d skipped=%d" % (
        cap.linktype, net.clock(), port.TICKS_PERIOD, cap.frames, len(recs), cap.lost,
        cap.skipped))
    mv = memoryview(cap.buf)
    for ts, direction, off, n in recs:
        out("%d %s %s" % (ts, "out" if direction else "in",
                          binascii.hexlify(mv[off:off + n]).decode()))
    out("END")
