# A register-level W5500 emulator: a machine.SPI and its Pins, so the board driver runs on a
# host. SPDX-License-Identifier: MIT
#
#   from tools.w5500emu import W5500Emulator
#   from stack.link.w5500 import W5500
#   emu = W5500Emulator(seed=1)
#   link = W5500(emu, emu.cs, rst=emu.rst, int_pin=emu.int)   # emu is the SPI bus
#   emu.receive(frame)          # a frame arrives from the wire
#   emu.sent                    # frames the chip put on the wire (unless on_transmit is set)
#
#   bridge = Bridge(emu, Packet("veth1"))     # the emulator's wire is a veth (or a Tap)
#   bridge.pump()                             # wire -> chip; chip -> wire happens on SEND
#   link = EmulatedW5500Link("veth1")         # all of it as one link, with fileno()
#
# Built from the W5500 datasheet v1.0.9 ("DS") as ../shared/reference/W5500.md ("ref")
# quotes it; where the datasheet is silent the model follows working drivers and says so
# ("inferred"). Only what a MACRAW driver touches is modelled: the SPI frame, the common
# registers, socket 0's registers and rings (sockets 1-7 keep their registers but have no
# protocol), commands, status and interrupts, the PHY link bit. The TCP/UDP engine is not.
#
# It runs on CPython and on the MicroPython unix port (no random/time features beyond
# ticks), so the driver tests run on both. It is slow by design (bytes go through Python),
# but whole rings and frames move as slices.
#
# Fault hooks for tests (attributes; see W5500Emulator.__init__): version, version_zero_reads,
# cmd_busy_reads, reset_busy_reads, corrupt_next_header, rsr_tear_frames, tx_stall,
# phy_link, imr_gates_ir. Timing a real chip has and the model leaves out unless a test asks
# (../shared/reference/W5500-REVIEW.md D1, D2, D5, D8): reset_zero_reads / reset_zero_ms
# (registers read 0 for a while after MR.RST), cmd_latency_reads / cmd_latency_us (Sn_SR
# lags OPEN and CLOSE), send_timeouts (a SEND ends with Sn_IR.TIMEOUT), wire_bps (a SEND
# takes the frame's wire time). Misuse by the driver is counted, not raised: a test asserts
# that the counters in `errors()` stay zero.

try:
    from time import ticks_add as _ticks_add
    from time import ticks_diff as _ticks_diff
    from time import ticks_us as _ticks_us
except ImportError:  # CPython
    import time as _time

    def _ticks_us():
        return _time.monotonic_ns() // 1000

    def _ticks_diff(a, b):
        return a - b

    def _ticks_add(a, b):
        return a + b


# ---- constants (DS 4.1 Common Registers, 4.2 Socket Registers; ref 2, 3) ------------------
MR = 0x00
SHAR = 0x09
IR = 0x15
IMR = 0x16
SIR = 0x17
SIMR = 0x18
RTR = 0x19
RCR = 0x1B
PHYCFGR = 0x2E
VERSIONR = 0x39

SN_MR = 0x00
SN_CR = 0x01
SN_IR = 0x02
SN_SR = 0x03
SN_RXBUF_SIZE = 0x1E
SN_TXBUF_SIZE = 0x1F
SN_TX_FSR = 0x20
SN_TX_RD = 0x22
SN_TX_WR = 0x24
SN_RX_RSR = 0x26
SN_RX_RD = 0x28
SN_RX_WR = 0x2A
SN_IMR = 0x2C

CR_OPEN = 0x01
CR_CLOSE = 0x10
CR_SEND = 0x20
CR_RECV = 0x40
IR_SEND_OK = 0x10
IR_TIMEOUT = 0x08
IR_RECV = 0x04
SR_CLOSED = 0x00
SR_MACRAW = 0x42
MR_MACRAW = 0x04
MR_MFEN = 0x80
MR_BCASTB = 0x40
MR_MMB = 0x20
MR_MIP6B = 0x10

MEM_SIZE = 16384  # 16 KiB TX + 16 KiB RX, shared by the 8 sockets (DS p.31)
MIN_FRAME = 60
MAX_FRAME = 1514  # MACRAW: no jumbo frames, no FCS (ref 4)
T_RC_US = 500  # RSTn low at least this long (DS 5.5.1)
T_PL_US = 1000  # PLL lock after RSTn rises (DS 5.5.1)
PHYCFGR_RESET = 0xB8  # 0b10111xxx: OPMD=1, OPMDC=111 (all capable, autonegotiation)
BROADCAST = b"\xff\xff\xff\xff\xff\xff"


class Pin:
    """A machine.Pin stand-in: value(), value(v), pin(), pin(v), on(), off(), irq().

    An output pin may tell its owner of changes (on_change); an input pin may read its
    level from its owner (source). irq(handler, trigger) fires on edges of either kind.
    """

    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id=None, mode=-1, pull=-1, value=None, on_change=None, source=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = 1 if value is None else (1 if value else 0)
        self._on_change = on_change
        self._source = source
        self._handler = None
        self._trigger = 0
        self.edges = 0

    def init(self, mode=-1, pull=-1, value=None):
        self.mode = mode
        self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._source() if self._source is not None else self._v
        v = 1 if v else 0
        old = self._v
        self._v = v
        if old != v:
            self.edges += 1
            self._fire(old, v)
        if self._on_change is not None:
            self._on_change(v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self._handler = handler
        self._trigger = trigger
        return self

    def _fire(self, old, new):
        if self._handler is None:
            return
        if (old and not new and self._trigger & Pin.IRQ_FALLING) or \
                (new and not old and self._trigger & Pin.IRQ_RISING):
            self._handler(self)

    def _level_changed(self):
        # For source-driven pins: the owner calls this after anything that may move the level.
        new = self._source()
        old = self._v
        if new != old:
            self._v = new
            self.edges += 1
            self._fire(old, new)

    def __repr__(self):
        return "Pin(%r)" % (self.id,)


class _Rand:
    # xorshift32: the same start pointers for the same seed on every interpreter.
    def __init__(self, seed):
        self.x = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1

    def next16(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x & 0xFFFF


class W5500Emulator:
    """The chip as seen through SPI (write, readinto, write_readinto) and its pins.

    Pins: `cs` (drive it: SCSn), `rst` (drive it: RSTn), `int` (read it: INTn, active low).
    The wire side: receive(frame) is a frame arriving; frames sent go to on_transmit(frame)
    if set, else are appended to `sent`.
    """

    def __init__(self, seed=1, phy_link=True, version=0x04):
        self.cs = Pin("SCSn", Pin.OUT, value=1, on_change=self._cs_changed)
        self.rst = Pin("RSTn", Pin.OUT, value=1, on_change=self._rst_changed)
        self.int = Pin("INTn", Pin.IN, source=self._int_level)
        self._rand = _Rand(seed)
        # Fault hooks and knobs (tests set them):
        self.version = version  # what VERSIONR reads (0x04 on a real W5500)
        self.version_zero_reads = 0  # VERSIONR reads 0 this many times after a reset
        self.cmd_busy_reads = 0  # Sn_CR reads back the command this many times
        self.reset_busy_reads = 0  # MR.RST reads 1 this many times after a soft reset
        self.corrupt_next_header = None  # the next received frame gets this length header
        self.rsr_tear_frames = []  # frames that arrive between the 2 bytes of an RX_RSR read
        self.tx_stall = False  # SEND is taken but not finished until release_tx()
        self.phy_link = phy_link  # PHYCFGR.LNK; frames neither arrive nor leave when False
        self.imr_gates_ir = False  # True: Sn_IR bits latch only if set in Sn_IMR (DS wording)
        # After MR.RST the chip needs time before it answers (IDF PR #11337: "wait at least
        # 10ms"; Linux and Zephyr wait 5 ms): every common and socket register reads 0 for
        # this many reads and/or this many ms; a write then is lost (counted as in_reset).
        self.reset_zero_reads = 0
        self.reset_zero_ms = 0
        # Sn_CR clears when the chip takes a command, but OPEN and CLOSE are still being
        # processed (w5500.h Sn_CR): Sn_SR shows the old state for this many Sn_SR reads
        # and/or this many us. A command written meanwhile counts as cmd_in_progress.
        self.cmd_latency_reads = 0
        self.cmd_latency_us = 0
        self.send_timeouts = 0  # the next this many SENDs end with Sn_IR.TIMEOUT, unsent
        self.wire_bps = 0  # > 0: SEND_OK comes (n + 24) * 8 / wire_bps s after SEND (D8)
        self.on_transmit = None
        self.sent = []
        # Counters: traffic, and what a test wants to see stay at 0 (errors()).
        self.transactions = 0  # CS-low frames with at least a header
        self.spi_bytes = 0
        self.rx_frames = 0  # frames written into the RX ring
        self.rx_overruns = 0  # frames dropped whole: the RX ring had no room (inferred)
        self.rx_filtered = 0  # frames the MAC filter (MFEN/BCASTB/MMB/MIP6B) dropped
        self.rx_dropped = 0  # frames dropped: socket not open, no link, too long
        self.rx_padded = 0  # short frames padded to 60 as the wire would have
        self.tx_frames = 0
        self.tx_padded = 0  # SENDs under 60 bytes, padded by the MAC (not misuse: D3)
        self.tx_timeouts = 0  # SENDs ended with Sn_IR.TIMEOUT (send_timeouts)
        self.reset_zero_hits = 0  # register reads answered 0 after MR.RST (reset_zero_*)
        self.tx_dropped_link = 0  # SENDs swallowed while the link was down
        self.hard_resets = 0
        self.soft_resets = 0
        self.commands = {}
        self.err_unselected = 0  # bytes clocked while SCSn was high
        self.err_short_frame = 0  # CS went high inside the 3-byte header
        self.err_fdm = 0  # a control byte with OM != 00 (we use VDM only)
        self.err_bad_block = 0  # reserved block, or a ring of size 0
        self.err_in_reset = 0  # SPI while RSTn low or before the PLL locked (T_PL)
        self.err_short_reset = 0  # RSTn pulse shorter than T_RC
        self.err_ro_write = 0  # write to a read-only register
        self.err_bad_cmd = 0  # a command the socket's state does not allow, or unknown
        self.err_send_busy = 0  # SEND while the previous SEND had not finished
        self.err_tx_oversize = 0  # SEND of more than 1514 bytes
        self.err_cmd_in_progress = 0  # a command while OPEN/CLOSE still showed the old Sn_SR
        self.err_recv_past_wr = 0  # RECV with RX_RD beyond RX_WR
        self.err_buf_config = 0  # buffer sizes not in 0,1,2,4,8,16 or summing above 16
        self._sel = False
        self._hdr_n = 0
        self._addr = 0
        self._ctrl = 0
        self._rst_low_at = None
        self._ready_at = None
        self._zero_reads = 0
        self._zero_until = None
        self.txmem = bytearray(MEM_SIZE)
        self.rxmem = bytearray(MEM_SIZE)
        self._power_on()

    # ---- reset (DS 4.1 MR, 5.5.1 Reset Timing) ---------------------------------------------

    def _power_on(self):
        self.common = bytearray(0x40)
        c = self.common
        c[RTR] = 0x07
        c[RTR + 1] = 0xD0  # 200 ms (DS p.38)
        c[RCR] = 0x08
        c[PHYCFGR] = PHYCFGR_RESET
        self.sock = [bytearray(0x30) for _ in range(8)]
        for s in self.sock:
            s[0x06:0x0C] = BROADCAST  # Sn_DHAR
            s[0x16] = 0x80  # Sn_TTL
            s[SN_RXBUF_SIZE] = 2
            s[SN_TXBUF_SIZE] = 2
            s[SN_TX_FSR] = 0x08  # 2 KiB free
            s[SN_IMR] = 0xFF
            s[0x2D] = 0x40  # Sn_FRAG
        self._cr_busy = 0
        self._mr_busy = 0
        self._version_zero = self.version_zero_reads
        self.tx_rd = self.tx_wr_at_send = 0
        self.rx_wr = self.rx_rd_acked = 0
        self.rx_size = self.tx_size = 2048
        self._tx_pending = False
        self._held = None
        self._tx_due = None  # wire_bps: when the held SEND finishes (ticks_us)
        self._sr_old = 0  # cmd_latency_*: what Sn_SR shows until OPEN/CLOSE completes
        self._sr_lag_reads = 0
        self._sr_lag_until = None

    def _rst_changed(self, v):
        now = _ticks_us()
        if not v:
            if self._rst_low_at is None:
                self._rst_low_at = now
            return
        if self._rst_low_at is None:
            return
        low_us = _ticks_diff(now, self._rst_low_at)
        self._rst_low_at = None
        if low_us < T_RC_US:
            self.err_short_reset += 1  # the chip need not have reset: keep the old state
            return
        self.hard_resets += 1
        self._power_on()
        self._ready_at = now
        self.int._level_changed()

    def _in_reset(self):
        if self._rst_low_at is not None:
            return True
        if self._ready_at is not None:
            if _ticks_diff(_ticks_us(), self._ready_at) < T_PL_US:
                return True
            self._ready_at = None
        return False

    # ---- SPI frame (DS 2.2, p.13-14: offset, control byte, data; VDM ends with SCSn) -------

    def _cs_changed(self, v):
        if not v:
            self._sel = True
            self._hdr_n = 0
        else:
            if self._sel:
                if self._hdr_n == 3:
                    self.transactions += 1
                elif self._hdr_n:
                    self.err_short_frame += 1
            self._sel = False

    def write(self, buf):
        self._clock(buf, None, len(buf), 0)

    def read(self, nbytes, write=0x00):
        out = bytearray(nbytes)
        self._clock(None, memoryview(out), nbytes, write)
        return bytes(out)

    def readinto(self, buf, write=0x00):
        self._clock(None, memoryview(buf), len(buf), write)

    def write_readinto(self, write_buf, read_buf):
        n = len(write_buf)
        if len(read_buf) != n:
            raise ValueError("buffers must be the same length")
        self._clock(write_buf, memoryview(read_buf), n, 0)

    def init(self, *args, **kwargs):
        pass

    def deinit(self):
        pass

    def _clock(self, mosi, miso, n, fill):
        """Clock n bytes each way: MOSI from mosi (or `fill`), MISO into miso (if given).

        DS 2.2 SPI Frame (p.13-14, ref 1): the first 3 bytes of a CS-low frame are the 16-bit
        offset and the control byte (BSB[4:0] RWB OM[1:0]; OM must be 00, VDM), answered
        with 01 02 03 on MISO; then data, the offset auto-incrementing. A frame may be split
        over several calls (header in one, data in the next) as long as SCSn stays low.
        """
        if not self._sel:
            self.err_unselected += n
            if miso is not None:
                for i in range(n):
                    miso[i] = 0xFF  # MISO is high-Z while SCSn is high; pulled up
            return
        if self._in_reset():
            self.err_in_reset += 1
            if miso is not None:
                for i in range(n):
                    miso[i] = 0
            return
        if self._tx_due is not None and _ticks_diff(_ticks_us(), self._tx_due) >= 0:
            self.release_tx()  # wire_bps: the frame has left by now
        self.spi_bytes += n
        i = 0
        while i < n and self._hdr_n < 3:
            b = mosi[i] if mosi is not None else fill
            k = self._hdr_n
            if k == 0:
                self._addr = b << 8
            elif k == 1:
                self._addr |= b
            else:
                self._ctrl = b
                if b & 0x03:
                    self.err_fdm += 1  # fixed-length data mode: not what we use
            if miso is not None:
                miso[i] = k + 1  # 0x01 0x02 0x03 while the header goes in (Zephyr)
            self._hdr_n = k + 1
            i += 1
        if i == n:
            return
        count = n - i
        block = self._ctrl >> 3
        if (block == 0 or block & 3 == 1) and self._booting():
            # Just after MR.RST: registers read 0 and writes are lost (reset_zero_*).
            if self._ctrl & 0x04:
                self.err_in_reset += 1
            else:
                self.reset_zero_hits += 1
                if self._zero_reads:
                    self._zero_reads -= 1
            if miso is not None:
                for j in range(i, n):
                    miso[j] = 0
            self._addr = (self._addr + count) & 0xFFFF
            return
        if self._ctrl & 0x04:  # RWB = 1: write
            data = memoryview(mosi)[i:n] if mosi is not None else bytes([fill]) * count
            self._write_block(block, self._addr, data)
            if miso is not None:
                for j in range(i, n):
                    miso[j] = 0
        else:
            out = miso[i:n] if miso is not None else memoryview(bytearray(count))
            self._read_block(block, self._addr, out)
        self._addr = (self._addr + count) & 0xFFFF  # the offset auto-increments (DS p.14)
        self.int._level_changed()

    def _sock_of(self, block):
        return (block - 1) >> 2

    def _write_block(self, block, addr, data):
        if block == 0:
            for j in range(len(data)):
                self._write_common((addr + j) & 0xFFFF, data[j])
        elif block & 3 == 1:
            n = block >> 2
            for j in range(len(data)):
                self._write_sock(n, (addr + j) & 0xFFFF, data[j])
        elif block & 3 == 2:
            n = block >> 2
            base, size = self._tx_region(n)
            if not size:
                self.err_bad_block += 1
                return
            self._ring_put(self.txmem, base, size, addr, data)
        else:
            self.err_bad_block += 1  # RX buffer (not written by a host) or reserved block

    def _read_block(self, block, addr, out):
        if block == 0:
            for j in range(len(out)):
                out[j] = self._read_common((addr + j) & 0xFFFF)
        elif block & 3 == 1:
            n = block >> 2
            for j in range(len(out)):
                out[j] = self._read_sock(n, (addr + j) & 0xFFFF)
        elif block & 3 == 2 or block & 3 == 3:
            n = block >> 2
            base, size = (self._tx_region if block & 3 == 2 else self._rx_region)(n)
            if not size:
                self.err_bad_block += 1
                for j in range(len(out)):
                    out[j] = 0
                return
            mem = self.txmem if block & 3 == 2 else self.rxmem
            self._ring_get(mem, base, size, addr, out)
        else:
            self.err_bad_block += 1
            for j in range(len(out)):
                out[j] = 0

    # ---- rings (DS p.27, p.31, p.55; ref 3 "Pointer wrap") --------------------------------

    def _sizes(self, which):
        return [s[which] for s in self.sock]

    def _region(self, which, n):
        # Socket n's buffer: base = sum of the sizes before it, in socket order (DS p.31).
        kb = self._sizes(which)
        base = sum(kb[:n]) * 1024
        size = kb[n] * 1024
        if base + size > MEM_SIZE:
            return 0, 0
        return base, size

    def _tx_region(self, n):
        return self._region(SN_TXBUF_SIZE, n)

    def _rx_region(self, n):
        return self._region(SN_RXBUF_SIZE, n)

    @staticmethod
    def _ring_put(mem, base, size, ptr, data):
        # phys = base + (ptr & (size - 1)); a burst past the end wraps inside the buffer
        # (inferred from ioLibrary/ESP-IDF sending unsplit bursts, ref 3).
        data = memoryview(data)
        n = len(data)
        done = 0
        while done < n:
            off = (ptr + done) & (size - 1)
            k = min(n - done, size - off)
            mem[base + off:base + off + k] = data[done:done + k]
            done += k

    @staticmethod
    def _ring_get(mem, base, size, ptr, out):
        n = len(out)
        done = 0
        mv = memoryview(mem)
        while done < n:
            off = (ptr + done) & (size - 1)
            k = min(n - done, size - off)
            out[done:done + k] = mv[base + off:base + off + k]
            done += k

    # ---- common registers (DS 4.1) ---------------------------------------------------------

    def _write_common(self, a, v):
        c = self.common
        if a >= len(c):
            return
        if a == MR:
            if v & 0x80:
                self._soft_reset()
                return
            c[MR] = v
        elif a == IR:
            c[IR] &= ~v & 0xFF  # write 1 to clear
        elif a in (SIR, VERSIONR) or 0x28 <= a <= 0x2D:
            self.err_ro_write += 1
        elif a == PHYCFGR:
            c[PHYCFGR] = (v & 0xF8) | (c[PHYCFGR] & 0x07)  # LNK/SPD/DPX are read-only
        else:
            c[a] = v

    def _read_common(self, a):
        c = self.common
        if a == VERSIONR:
            if self._version_zero:
                self._version_zero -= 1
                return 0  # some units read 0 right after reset (ESP-IDF)
            return self.version
        if a == MR:
            if self._mr_busy:
                self._mr_busy -= 1
                return c[MR] | 0x80
            return c[MR]
        if a == PHYCFGR:
            # Up: 100 Mbit/s full duplex with LNK; down: DPX/SPD/LNK 0.
            return (c[PHYCFGR] & 0xF8) | (0x07 if self.phy_link else 0)
        if a == SIR:
            return self._sir()
        if a < len(c):
            return c[a]
        return 0

    def _soft_reset(self):
        # MR.RST: every register to its reset value; the bit clears itself (DS 4.1 MR).
        self.soft_resets += 1
        busy = self.reset_busy_reads
        self._power_on()
        self._mr_busy = busy
        self._zero_reads = self.reset_zero_reads
        self._zero_until = (_ticks_add(_ticks_us(), self.reset_zero_ms * 1000)
                            if self.reset_zero_ms else None)

    def _booting(self):
        # The window after MR.RST in which the chip answers 0 (reset_zero_reads/_ms).
        if self._zero_reads:
            return True
        if self._zero_until is not None:
            if _ticks_diff(self._zero_until, _ticks_us()) > 0:
                return True
            self._zero_until = None
        return False

    # ---- socket registers (DS 4.2) ---------------------------------------------------------

    def _get16(self, n, a):
        s = self.sock[n]
        return (s[a] << 8) | s[a + 1]

    def _rsr(self):
        return (self.rx_wr - self.rx_rd_acked) & 0xFFFF

    def _fsr(self):
        return self.tx_size - ((self._get16(0, SN_TX_WR) - self.tx_rd) & 0xFFFF)

    def _write_sock(self, n, a, v):
        s = self.sock[n]
        if a >= len(s):
            return
        if a == SN_CR:
            s[SN_CR] = v
            self._command(n, v)
        elif a == SN_IR:
            s[SN_IR] &= ~v & 0xFF  # write 1 to clear
        elif a in (SN_SR, SN_TX_FSR, SN_TX_FSR + 1, SN_TX_RD, SN_TX_RD + 1, SN_RX_RSR,
                   SN_RX_RSR + 1, SN_RX_WR, SN_RX_WR + 1):
            self.err_ro_write += 1
        else:
            s[a] = v

    def _read_sock(self, n, a):
        s = self.sock[n]
        if n != 0:
            return s[a] if a < len(s) else 0
        if a == SN_CR:
            if self._cr_busy:
                self._cr_busy -= 1
                return s[SN_CR]
            s[SN_CR] = 0  # cleared once the chip has taken the command
            return 0
        if a == SN_SR and self._sr_lagging():
            if self._sr_lag_reads:
                self._sr_lag_reads -= 1
            return self._sr_old  # OPEN/CLOSE taken (Sn_CR is 0) but not yet done
        if a in (SN_TX_FSR, SN_TX_FSR + 1):
            return self._byte(self._fsr(), a - SN_TX_FSR)
        if a in (SN_TX_RD, SN_TX_RD + 1):
            return self._byte(self.tx_rd, a - SN_TX_RD)
        if a in (SN_RX_RSR, SN_RX_RSR + 1):
            v = self._byte(self._rsr(), a - SN_RX_RSR)
            if a == SN_RX_RSR and self.rsr_tear_frames:
                # Frames arrive between the MSB and LSB reads: the datasheet's race (p.54).
                frames = self.rsr_tear_frames
                self.rsr_tear_frames = []
                for f in frames:
                    self.receive(f)
            return v
        if a in (SN_RX_WR, SN_RX_WR + 1):
            return self._byte(self.rx_wr, a - SN_RX_WR)
        return s[a] if a < len(s) else 0

    def _sr_lagging(self):
        if self._sr_lag_reads:
            return True
        if self._sr_lag_until is not None:
            if _ticks_diff(self._sr_lag_until, _ticks_us()) > 0:
                return True
            self._sr_lag_until = None
        return False

    @staticmethod
    def _byte(v, i):
        return (v >> 8) & 0xFF if i == 0 else v & 0xFF

    def _set_ir(self, bits):
        s = self.sock[0]
        if self.imr_gates_ir:
            bits &= s[SN_IMR]
        s[SN_IR] |= bits

    def _sir(self):
        # SIR bit n: socket n has an interrupt pending (DS 4.1 SIR: follows Sn_IR).
        out = 0
        for n in range(8):
            if self.sock[n][SN_IR] & self.sock[n][SN_IMR]:
                out |= 1 << n
        return out

    def _int_level(self):
        # INTn is low while (IR & IMR) or (SIR & SIMR) (inferred, ref 3 "Interrupt model").
        c = self.common
        if c[IR] & c[IMR] or self._sir() & c[SIMR]:
            return 0
        return 1

    # ---- commands (DS 4.2 Sn_CR; ref 3 "Command semantics") ------------------------------

    def _command(self, n, cmd):
        self.commands[cmd] = self.commands.get(cmd, 0) + 1
        s = self.sock[n]
        self._cr_busy = self.cmd_busy_reads
        if n != 0:
            if cmd == CR_CLOSE:
                s[SN_SR] = SR_CLOSED
            elif cmd:
                self.err_bad_cmd += 1  # only socket 0 (MACRAW) is modelled
            return
        if cmd and self._sr_lagging():
            self.err_cmd_in_progress += 1  # the last OPEN/CLOSE has not finished (Sn_SR)
        if cmd == CR_OPEN or cmd == CR_CLOSE:
            old = s[SN_SR]
            if cmd == CR_OPEN:
                self._open()
            else:
                s[SN_SR] = SR_CLOSED
                self._tx_pending = False
                self._held = None
                self._tx_due = None
            if (self.cmd_latency_reads or self.cmd_latency_us) and old != s[SN_SR]:
                self._sr_old = old
                self._sr_lag_reads = self.cmd_latency_reads
                self._sr_lag_until = (_ticks_add(_ticks_us(), self.cmd_latency_us)
                                      if self.cmd_latency_us else None)
        elif cmd == CR_SEND:
            self._send()
        elif cmd == CR_RECV:
            self._recv()
        else:
            self.err_bad_cmd += 1  # LISTEN, CONNECT, DISCON, SEND_MAC, ...: not MACRAW's

    def _open(self):
        """OPEN (DS 4.2 Sn_CR): MACRAW only (Sn_MR P = 0100, socket 0), Sn_SR = 0x42.

        Buffer sizes must be 0/1/2/4/8/16 KiB summing to at most 16 (DS 4.2 Sn_RXBUF_SIZE);
        the ring pointers start at a seeded random value (the chip initializes them, ref 3).
        """
        s = self.sock[0]
        if s[SN_MR] & 0x0F != MR_MACRAW:
            self.err_bad_cmd += 1  # TCP/UDP/IPRAW are not modelled: the socket stays closed
            s[SN_SR] = SR_CLOSED
            return
        rx_kb = self._sizes(SN_RXBUF_SIZE)
        tx_kb = self._sizes(SN_TXBUF_SIZE)
        valid = (0, 1, 2, 4, 8, 16)
        if sum(rx_kb) > 16 or sum(tx_kb) > 16 or rx_kb[0] not in valid or \
                tx_kb[0] not in valid or not rx_kb[0] or not tx_kb[0]:
            self.err_buf_config += 1
            s[SN_SR] = SR_CLOSED
            return
        self.rx_size = rx_kb[0] * 1024
        self.tx_size = tx_kb[0] * 1024
        # The chip "initializes" the pointers on OPEN; drivers must read them. Here they
        # start at a seeded random value, so wrap-around comes early (ref 3).
        p = self._rand.next16()
        self.tx_rd = p
        s[SN_TX_WR] = p >> 8
        s[SN_TX_WR + 1] = p & 0xFF
        q = self._rand.next16()
        self.rx_wr = self.rx_rd_acked = q
        s[SN_RX_RD] = q >> 8
        s[SN_RX_RD + 1] = q & 0xFF
        s[SN_IR] = 0
        s[SN_SR] = SR_MACRAW
        self._tx_pending = False
        self._held = None
        self._tx_due = None

    def _send(self):
        """SEND (DS 4.2 Sn_CR, Sn_TX_WR/Sn_TX_RD; ref 4 "Transmit").

        The bytes from TX_RD to TX_WR leave as one frame; TX_RD catches up and Sn_IR.SEND_OK
        is set (after the frame's wire time if wire_bps is set; with Sn_IR.TIMEOUT instead,
        the frame unsent, while send_timeouts lasts). A frame under 60 bytes is padded: Linux,
        ESP-IDF and MicroPython hand 42-byte ARP frames to SEND (review D3). Without a link
        it never finishes (the ESP-IDF stall, inferred).
        """
        s = self.sock[0]
        if s[SN_SR] != SR_MACRAW:
            self.err_bad_cmd += 1
            return
        if self._tx_pending:
            self.err_send_busy += 1
            return
        wr = self._get16(0, SN_TX_WR)
        n = (wr - self.tx_rd) & 0xFFFF
        if n > self.tx_size:
            self.err_tx_oversize += 1
            return
        frame = bytearray(n)
        self._ring_get(self.txmem, 0, self.tx_size, self.tx_rd, memoryview(frame))
        if n > MAX_FRAME:
            self.err_tx_oversize += 1
            frame = frame[:MAX_FRAME]
        elif n < MIN_FRAME:
            self.tx_padded += 1  # the MAC pads (real drivers rely on it, review D3)
            frame = frame + bytes(MIN_FRAME - n)
        self._held = (bytes(frame), wr)
        self._tx_pending = True
        if not self.phy_link:
            # No link: the frame never leaves and SEND_OK never comes (ESP-IDF IDF #6233:
            # "stalls forever"); only CLOSE/OPEN (or a reset) clears it.
            self.tx_dropped_link += 1
            self._held = None
            return
        if self.send_timeouts:
            # Sn_IR.TIMEOUT: the SEND is over, the frame did not go (ioLibrary's sendto,
            # Zephyr and njh treat it so; review D5).
            self.send_timeouts -= 1
            self.tx_timeouts += 1
            self._held = None
            self._tx_pending = False
            self.tx_rd = wr
            self._set_ir(IR_TIMEOUT)
            return
        if self.tx_stall:
            return
        if self.wire_bps:
            # Preamble, SFD, FCS and the inter-frame gap: 24 bytes more than the frame.
            us = (len(frame) + 24) * 8 * 1000000 // self.wire_bps
            self._tx_due = _ticks_add(_ticks_us(), us)
            return
        self.release_tx()

    def release_tx(self):
        """Finish a SEND held by tx_stall: the frame leaves, SEND_OK is set."""
        if self._held is None:
            return
        frame, wr = self._held
        self._held = None
        self._tx_due = None
        self._tx_pending = False
        self.tx_rd = wr
        self.tx_frames += 1
        self._set_ir(IR_SEND_OK)
        self.int._level_changed()
        if self.on_transmit is not None:
            self.on_transmit(frame)
        else:
            self.sent.append(frame)

    def _recv(self):
        """RECV (DS 4.2 Sn_CR, Sn_RX_RD, Sn_RX_RSR p.54-55; ref 3).

        RX_RD as written by the host becomes the chip's read pointer; RX_RSR is recomputed
        and the space before RX_RD is free again.
        """
        s = self.sock[0]
        if s[SN_SR] != SR_MACRAW:
            self.err_bad_cmd += 1
            return
        rd = self._get16(0, SN_RX_RD)
        if ((rd - self.rx_rd_acked) & 0xFFFF) > self._rsr():
            self.err_recv_past_wr += 1
            return
        self.rx_rd_acked = rd

    # ---- the wire side -------------------------------------------------------------------

    def rx_free(self):
        """Bytes free in socket 0's RX ring (0 when the socket is not open)."""
        if self.sock[0][SN_SR] != SR_MACRAW:
            return 0
        return self.rx_size - self._rsr()

    def rx_used(self):
        return self._rsr()

    def receive(self, frame):
        """A frame (no FCS) arrives from the wire; True if it went into the RX ring.

        MACRAW receive (ref 4): [length incl. its 2 bytes, big-endian] + frame at RX_WR,
        RX_WR advances, Sn_IR.RECV is set; MAC filter per DS 4.2 Sn_MR; a frame that does
        not fit is dropped whole (inferred).
        """
        s = self.sock[0]
        n = len(frame)
        if not self.phy_link or s[SN_SR] != SR_MACRAW or n > MAX_FRAME or n < 14:
            self.rx_dropped += 1
            return False
        mr = s[SN_MR]
        dst = bytes(frame[0:6])
        multicast = dst[0] & 1
        # MAC filter (DS 4.2 Sn_MR; ref 3 "MFEN"): MFEN keeps frames to SHAR plus broadcast
        # and multicast; BCASTB/MMB block those; MIP6B blocks IPv6. All or nothing: no
        # per-group multicast filter.
        if mr & MR_MFEN and not multicast and dst != bytes(self.common[SHAR:SHAR + 6]):
            self.rx_filtered += 1
            return False
        if (dst == BROADCAST and mr & MR_BCASTB) or \
                (multicast and dst != BROADCAST and mr & MR_MMB) or \
                (mr & MR_MIP6B and frame[12] == 0x86 and frame[13] == 0xDD):
            self.rx_filtered += 1
            return False
        if n < MIN_FRAME:
            # A frame on a real wire is at least 60 bytes (the sender pads); a veth or TAP
            # does not pad, so do it here (runts are not forwarded, ref 4).
            frame = bytes(frame) + bytes(MIN_FRAME - n)
            n = MIN_FRAME
            self.rx_padded += 1
        total = n + 2  # the length header counts itself (ioLibrary, Linux, ESP-IDF)
        if total > self.rx_size - self._rsr():
            self.rx_overruns += 1  # no room: dropped whole, nobody told (inferred, ref 4)
            return False
        header = total if self.corrupt_next_header is None else self.corrupt_next_header
        self.corrupt_next_header = None
        wr = self.rx_wr
        self._ring_put(self.rxmem, 0, self.rx_size, wr, bytes((header >> 8 & 0xFF,
                                                                header & 0xFF)))
        self._ring_put(self.rxmem, 0, self.rx_size, (wr + 2) & 0xFFFF, frame)
        self.rx_wr = (wr + total) & 0xFFFF
        self.rx_frames += 1
        self._set_ir(IR_RECV)
        self.int._level_changed()
        return True

    def set_link(self, up):
        """Plug or unplug the cable (PHYCFGR.LNK)."""
        self.phy_link = bool(up)

    def errors(self):
        """Counters of driver misuse; all should be 0."""
        return {
            "unselected": self.err_unselected,
            "short_frame": self.err_short_frame,
            "fdm": self.err_fdm,
            "bad_block": self.err_bad_block,
            "in_reset": self.err_in_reset,
            "short_reset": self.err_short_reset,
            "ro_write": self.err_ro_write,
            "bad_cmd": self.err_bad_cmd,
            "send_busy": self.err_send_busy,
            "tx_oversize": self.err_tx_oversize,
            "cmd_in_progress": self.err_cmd_in_progress,
            "recv_past_wr": self.err_recv_past_wr,
            "buf_config": self.err_buf_config,
        }


class Bridge:
    """Joins the emulator's wire to a host link (Packet on a veth, or Tap).

    Frames the chip sends go to the host link at once (on SEND). pump() moves frames from the
    host link into the chip's RX ring; with backpressure (the default) it stops while the
    ring has room for fewer than two full frames, leaving the rest in the kernel's queue,
    instead of letting the chip drop them as a real wire would (backpressure=False). Two,
    not one: the driver counts a ring with room for less than one full frame as an overrun.
    """

    def __init__(self, emu, host_link, backpressure=True):
        self.emu = emu
        self.host = host_link
        self.backpressure = backpressure
        self.buf = bytearray(MAX_FRAME + 4)
        self.mv = memoryview(self.buf)
        self.to_chip = 0
        self.to_host = 0
        emu.on_transmit = self._to_host

    def _to_host(self, frame):
        self.to_host += 1
        self.host.send(frame)

    def pump(self, max_frames=64):
        """Move up to max_frames frames host -> chip; how many were moved."""
        emu = self.emu
        moved = 0
        while moved < max_frames:
            if self.backpressure and emu.rx_free() < 2 * (MAX_FRAME + 2):
                break
            n = self.host.recv_into(self.buf)
            if not n:
                break
            emu.receive(self.mv[:n])
            moved += 1
        self.to_chip += moved
        return moved


class EmulatedW5500Link:
    """A link for the stack: our W5500 driver on the emulator, bridged to interface ifname.

    recv_into() pumps the bridge and then asks the driver; fileno() is the AF_PACKET
    socket's, so host loops still sleep until a frame arrives. The driver is `driver`, the
    chip `emu`, the bridge `bridge`.
    """

    def __init__(self, ifname, mac=None, seed=1, mtu=1500, backpressure=True, use_int=True):
        from stack.link.packet import Packet
        from stack.link.w5500 import W5500

        self.packet = Packet(ifname, mtu=mtu)
        self.emu = W5500Emulator(seed=seed)
        self.bridge = Bridge(self.emu, self.packet, backpressure)
        self.driver = W5500(self.emu, self.emu.cs, rst=self.emu.rst,
                            int_pin=self.emu.int if use_int else None,
                            mac=mac if mac is not None else self.packet.mac, mtu=mtu)
        self.mtu = self.driver.mtu
        self.mac = self.driver.mac
        self.name = ifname

    def recv_into(self, buf):
        self.bridge.pump()
        return self.driver.recv_into(buf)

    def send(self, buf):
        self.driver.send(buf)

    def fileno(self):
        return self.packet.fileno()

    def close(self):
        self.packet.close()

    def __repr__(self):
        return "<EmulatedW5500Link %s %r>" % (self.name, self.driver)
