# W5500 MACRAW link: socket 0 of a WIZnet W5500 used as a raw Ethernet MAC over SPI.
# SPDX-License-Identifier: MIT
#
#   from machine import Pin, SPI                       # only boards/ does this
#   spi = SPI(0, baudrate=20_000_000, sck=Pin(18), mosi=Pin(19), miso=Pin(16))
#   link = W5500(spi, Pin(17, Pin.OUT, value=1), rst=Pin(20, Pin.OUT, value=1),
#                int_pin=Pin(21, Pin.IN, Pin.PULL_UP))
#   net = Stack(link, ip="10.0.0.2")
#
# The chip's own TCP/IP is bypassed: socket 0 in MACRAW mode hands us whole Ethernet frames
# (no FCS) and sends ours. Facts and sources: ../shared/reference/W5500.md ("ref" below);
# "DS" is the W5500 datasheet v1.0.9, cited by page/section as the reference cites it.
#
# The link contract (DESIGN.md 4): mtu, mac, recv_into(buf) -> int (non-blocking, 0 when
# nothing waits), send(buf). There is no fileno(): a board loop polls (the INT pin makes an
# idle poll free, see below), and irq(handler) lets stack/aio.py sleep until INTn falls.
#
# SPI cost (what bounds a board at a given clock). A "transaction" is one CS-low frame: a
# 3-byte header (16-bit offset, control byte) then data (DS p.13-14, ref 1). Steady state
# (host_tests/test_w5500.py measures and asserts these):
# - send: 5 transactions, 22 bytes + the frame: read Sn_CR/Sn_IR/Sn_SR in one burst (did the
#   previous SEND finish?), clear SEND_OK, the frame (one burst; two if it crosses the
#   ring's end), Sn_TX_WR, Sn_CR = SEND. TX_WR is ours (the chip never moves it), so it is
#   cached, not read; TX_FSR is not read per frame because SEND_OK means TX_RD caught up with
#   TX_WR: in MACRAW one SEND carries exactly one frame (ref 4), so the whole ring is free.
# - receive: per batch (what one RX_RSR reading showed, often one frame): RX_RSR twice (the
#   16-bit race, DS p.54-55), then per frame 1 transaction for a frame of up to 60 bytes
#   (length header + 60 bytes, the shortest frame there is) or 2 for a longer one, then
#   Sn_RX_RD, RECV and the Sn_CR check once for the whole batch (6 transactions and 28 bytes
#   + the frame for one short frame; one Sn_CR read more after a SEND; with the INT pin two
#   more: Sn_CR/Sn_IR/Sn_SR and clearing Sn_IR). RX_RD is cached too.
# - idle poll: 0 transactions with the INT pin (INTn high = no frame: only RECV is enabled in
#   Sn_IMR, so a finished SEND does not pull it low), else 1 (RX_RSR
#   read once: a torn read of a growing counter, MSB first, can only come out low, so a 0
#   is safe to believe and only a non-zero value needs the second read).
# Every transfer goes straight between the chip and a preallocated buffer or the caller's
# buffer (memoryview slices: no allocation that grows with the frame).
#
# Counted, never raised, on the data path: a send that found the previous SEND unfinished
# (tx_full: waited tx_timeout_ms, then dropped), frames dropped because the link was down
# (tx_link_down), link losses seen (link_losses), the RX ring found too full to take a
# maximum frame (rx_overruns: the chip then drops arriving frames whole and silently, and
# MACRAW has no overrun counter, so this counts the times drops were possible, not frames
# lost), corrupt length headers (rx_resyncs: RX_RD = RX_WR, RECV), frames too
# long for the caller's buffer (rx_too_long), socket 0 found not in MACRAW and reopened
# (reopens; reopen_fails when it would not open: tried again reopen_retry_ms later), SENDs
# that ended with Sn_IR.TIMEOUT instead of SEND_OK (tx_timeouts; the frame may not have
# left), commands the chip did not take or finish in time (cmd_timeouts). Set-up failures
# (no chip, wrong version, socket 0 will not open) raise OSError with what was read.

from micropython import const

from .. import port

# ---- SPI control byte (DS p.14-15, ref 1): BSB[4:0] << 3 | RWB << 2 | OM[1:0] ----------
_RWB_WRITE = const(0x04)  # RWB = 1: write; OM = 00: variable-length data mode (VDM)
_BLK_COMMON = const(0x00)  # BSB 00000: common registers
_BLK_S0_REG = const(0x08)  # BSB 00001: socket 0 registers (socket n: 0x08 + 0x20 * n)
_BLK_S0_TX = const(0x10)  # BSB 00010: socket 0 TX buffer
_BLK_S0_RX = const(0x18)  # BSB 00011: socket 0 RX buffer

# ---- common registers (DS 4.1 Common Registers; ref 2) -------------------------------------
_MR = const(0x0000)  # mode: b7 RST (software reset, self-clearing)
_SHAR = const(0x0009)  # source MAC, 6 bytes; the MACRAW MAC filter compares with it
_SIMR = const(0x0018)  # bit n enables socket n's interrupt on INTn
_RTR = const(0x0019)  # retry time, reset value 0x07D0: read back as a presence check
_PHYCFGR = const(0x002E)  # b0 LNK (1 = link up)
_VERSIONR = const(0x0039)  # always 0x04 on a W5500

_MR_RST = const(0x80)
_RTR_RESET = const(0x07D0)
_VERSION = const(0x04)
_MR_PB = const(0x10)  # ping block: Linux, Zephyr and ESP-IDF set it after MR.RST
_PHY_OK = const(0x81)  # PHYCFGR: b7 RST = 1 (PHY not held in reset, ESP-IDF) and b0 LNK

# ---- socket registers (DS 4.2 Socket Registers; ref 3) -------------------------------------
_SN_MR = const(0x00)
_SN_CR = const(0x01)
_SN_IR = const(0x02)
_SN_SR = const(0x03)
_SN_RXBUF_SIZE = const(0x1E)  # KiB; Sn_TXBUF_SIZE follows at 0x1F
_SN_TX_FSR = const(0x20)
_SN_TX_WR = const(0x24)  # Sn_RX_RSR follows at 0x26, Sn_RX_RD at 0x28
_SN_RX_RSR = const(0x26)
_SN_RX_RD = const(0x28)
_SN_RX_WR = const(0x2A)
_SN_IMR = const(0x2C)

_MR_MACRAW = const(0x04)  # P[3:0] = 0100: MACRAW, socket 0 only
_MR_MFEN = const(0x80)  # MAC filter: only frames to SHAR, broadcast and multicast
_MR_MIP6B = const(0x10)  # block IPv6 frames (MACRAW)
_CR_OPEN = const(0x01)
_CR_CLOSE = const(0x10)
_CR_SEND = const(0x20)
_CR_RECV = const(0x40)
_IR_SEND_OK = const(0x10)
_IR_TIMEOUT = const(0x08)  # a SEND that ended without SEND_OK (ioLibrary, Zephyr: done)
_IR_RECV = const(0x04)
_SR_CLOSED = const(0x00)
_SR_MACRAW = const(0x42)

# ---- buffers: socket 0 gets all 16 KiB each way, sockets 1-7 none (ref 5 step 7) --------
_BUF_KB = const(16)
_BUF_SIZE = const(16384)
_BUF_MASK = const(16383)  # phys = base + (ptr & (size - 1)), base 0 for socket 0 (DS p.31)

_MIN_FRAME = const(60)  # shortest Ethernet frame without FCS: runts are not forwarded
_MAX_FRAME = const(1514)  # MACRAW has no jumbo frames; no FCS (ref 4)
_MAX_HDR_FRAME = const(1522)  # largest length header believed (ESP-IDF; a VLAN tag fits)
_HEAD = const(62)  # 2-byte length header + the 60 bytes every frame has: read in one go
_RSR_TRIES = const(8)  # reads of a 16-bit size register before giving up for this poll
_TX_STUCK_MS = const(1000)  # a SEND unfinished this long: reopen socket 0 to recover


class W5500:
    """Socket 0 of a W5500 in MACRAW mode, as a link (DESIGN.md section 4)."""

    def __init__(self, spi, cs, rst=None, int_pin=None, mac=None, mtu=1500, mfen=True,
                 block_ipv6=False, tx_timeout_ms=3, cmd_timeout_ms=100,
                 reset_timeout_ms=200, wait_link_ms=0, reopen_retry_ms=1000):
        if mtu > _MAX_FRAME - 14 or mtu < 68:
            raise ValueError("mtu must be 68..1500 (MACRAW frames are at most 1514 bytes)")
        if mac is None:
            # Locally administered, unicast: first byte 0x02. Boards pass one derived from
            # machine.unique_id() so that it stays the same across boots.
            mac = b"\x02" + bytes(port.urandom(5))
        mac = bytes(mac)
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError("mac must be 6 bytes, unicast (first byte even)")
        self.mtu = mtu
        self.mac = mac
        self._spi = spi
        self._cs = getattr(cs, "value", cs)  # Pin.value, or any callable taking 0/1
        self._rst = None if rst is None else getattr(rst, "value", rst)
        self._int = None if int_pin is None else getattr(int_pin, "value", int_pin)
        self._int_pin = int_pin
        self._mode = _MR_MACRAW | (_MR_MFEN if mfen else 0) | (_MR_MIP6B if block_ipv6 else 0)
        self.tx_timeout_ms = tx_timeout_ms
        self.cmd_timeout_ms = cmd_timeout_ms
        self.reset_timeout_ms = reset_timeout_ms
        # A failed reopen waits up to 2 x cmd_timeout_ms: after one, the data path does not
        # try again for this long, so a dead chip does not stall every poll.
        self.reopen_retry_ms = reopen_retry_ms
        self._retry_at = None
        # Register transactions: header + up to 8 data bytes, sent with one write() or
        # write_readinto() each. _txv[k]/_rxv[k] are views of header + k data bytes, made
        # once here so that no transaction allocates a view.
        self._cmd = bytearray(11)
        self._ans = bytearray(11)
        cmv = memoryview(self._cmd)
        amv = memoryview(self._ans)
        self._txv = [cmv[:3 + k] for k in range(9)]
        self._rxv = [amv[:3 + k] for k in range(9)]
        # Buffer transactions: the 3-byte header, then the data straight from/to a buffer.
        self._hdr = bytearray(3)
        self._head = bytearray(_HEAD)  # length header + first 60 bytes of a received frame
        hmv = memoryview(self._head)
        self._headv = hmv
        self._head_data = hmv[2:]
        self._pad = bytearray(_MIN_FRAME)  # short frames are padded to 60 here (ref 4)
        self._padv = memoryview(self._pad)
        self._zeros = memoryview(bytearray(_MIN_FRAME))
        self._buf = None  # the caller's last receive buffer and a view of it (cached: the
        self._bufv = None  # stack passes the same buffer every time)
        # Ring pointers we own (the chip never moves them): cached after OPEN.
        self._tx_wr = 0
        self._rx_rd = 0
        self._rx_left = 0  # bytes of the current RX batch (one RX_RSR reading) not yet read
        self._tx_busy = False  # a SEND was issued and its SEND_OK not yet seen
        self._tx_sent_at = 0
        self._cr_dirty = False  # a command was written and Sn_CR not yet seen back at 0
        self._link = True  # last PHYCFGR.LNK seen (assumed up until a send says otherwise)
        self._opened = False  # socket 0 open in MACRAW and its pointers read (_open)
        # Counters (see the top of the file); `stats` returns them as a dict.
        self.spi_transactions = 0
        self.spi_bytes = 0
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.tx_full = 0
        self.tx_link_down = 0
        self.tx_too_long = 0
        self.link_losses = 0
        self.rx_overruns = 0
        self.rx_resyncs = 0
        self.rx_too_long = 0
        self.reopens = 0
        self.reopen_fails = 0
        self.tx_timeouts = 0
        self.cmd_timeouts = 0
        self.reset()
        if wait_link_ms:
            start = port.ticks_ms()
            while not self.link_up() and port.ticks_diff(port.ticks_ms(), start) < wait_link_ms:
                port.sleep_ms(10)

    # ---- SPI transactions (DS 2.2 SPI Frame, p.13-14; ref 1) -----------------------------

    def _read(self, block, addr, n):
        # n (<= 8) register bytes from addr: one transaction; the data is self._ans[3:3 + n].
        # While the header goes out the chip answers 01 02 03 (ignored).
        c = self._cmd
        c[0] = addr >> 8
        c[1] = addr & 0xFF
        c[2] = block
        cs = self._cs
        cs(0)
        self._spi.write_readinto(self._txv[n], self._rxv[n])
        cs(1)
        self.spi_transactions += 1
        self.spi_bytes += 3 + n
        return self._ans

    def _read8(self, block, addr):
        return self._read(block, addr, 1)[3]

    def _read16(self, block, addr):
        a = self._read(block, addr, 2)
        return (a[3] << 8) | a[4]  # every multi-byte register is big-endian

    def _write(self, block, addr, n):
        # Write self._cmd[3:3 + n] (filled by the caller) to addr: one transaction.
        c = self._cmd
        c[0] = addr >> 8
        c[1] = addr & 0xFF
        c[2] = block | _RWB_WRITE
        cs = self._cs
        cs(0)
        self._spi.write(self._txv[n])
        cs(1)
        self.spi_transactions += 1
        self.spi_bytes += 3 + n

    def _write8(self, block, addr, v):
        self._cmd[3] = v
        self._write(block, addr, 1)

    def _write16(self, block, addr, v):
        c = self._cmd
        c[3] = v >> 8
        c[4] = v & 0xFF
        self._write(block, addr, 2)

    def _burst(self, ctrl, off, mv):
        # One transaction moving len(mv) bytes of a ring at physical offset off.
        h = self._hdr
        h[0] = off >> 8
        h[1] = off & 0xFF
        h[2] = ctrl
        cs = self._cs
        spi = self._spi
        cs(0)
        spi.write(h)
        if ctrl & _RWB_WRITE:
            spi.write(mv)
        else:
            spi.readinto(mv)
        cs(1)
        self.spi_transactions += 1
        self.spi_bytes += 3 + len(mv)

    def _ring(self, ctrl, ptr, mv):
        # Move mv to/from socket 0's ring at the free-running 16-bit pointer ptr. The chip
        # maps an offset to base + (ptr & (size - 1)) (DS p.27, p.31, p.55); an auto-
        # incrementing burst that runs past the end is only *inferred* to wrap (ref 3), so,
        # like Linux and Zephyr, split it in two at the end of the ring instead.
        off = ptr & _BUF_MASK
        n = len(mv)
        first = _BUF_SIZE - off
        if n <= first:
            self._burst(ctrl, off, mv)
        else:
            if not isinstance(mv, memoryview):
                mv = memoryview(mv)  # slices of a view copy nothing
            self._burst(ctrl, off, mv[:first])
            self._burst(ctrl, 0, mv[first:])

    def _read16_stable(self, addr, a=None):
        # A 16-bit size/pointer register the chip may change between its two bytes: read
        # until two reads agree (DS p.54-55 on Sn_TX_FSR/Sn_RX_RSR; ioLibrary, ESP-IDF).
        # `a`: a first reading the caller already has. None if it never settles.
        if a is None:
            a = self._read16(_BLK_S0_REG, addr)
        for _ in range(_RSR_TRIES):
            b = self._read16(_BLK_S0_REG, addr)
            if a == b:
                return a
            a = b
        return None

    # ---- commands (DS 4.2 Sn_CR; ref 3 "Command semantics") -------------------------------

    def _wait_cr(self):
        # Sn_CR reads 0 once the chip has taken the command. Bounded: ESP-IDF, Zephyr and
        # Linux give up after 100 ms.
        start = port.ticks_ms()
        while self._read8(_BLK_S0_REG, _SN_CR):
            if port.ticks_diff(port.ticks_ms(), start) > self.cmd_timeout_ms:
                self.cmd_timeouts += 1
                return False
        self._cr_dirty = False
        return True

    def _command(self, cmd):
        if self._cr_dirty:
            self._wait_cr()  # never overwrite a command the chip has not taken yet
        self._write8(_BLK_S0_REG, _SN_CR, cmd)
        self._cr_dirty = True

    # ---- set-up (DS 5.5.1 via Zephyr; ref 5 "Reset and init sequence") --------------------

    def reset(self):
        """Hardware reset (if RST is wired), software reset, check the chip, open socket 0
        in MACRAW mode; OSError saying what was read if that fails."""
        if self._rst is not None:
            self._rst(0)
            # T_RC: RSTn low for at least 500 us. 2 ms, not 1: on some ports sleep_ms(1)
            # ends at the next millisecond tick, however near (the qemu port measured
            # pulses under 500 us).
            port.sleep_ms(2)
            self._rst(1)
            port.sleep_ms(2)  # T_PL: the PLL locks within 1 ms of RSTn rising
        # Software reset (MR.RST clears itself), then as ref 5 orders it: VERSIONR, RTR. Some
        # chips read 0 for a while after a reset (ESP-IDF PR #11337: "wait at least 10ms";
        # Linux and Zephyr wait 5 ms) and the RST bit is no sign of being done (IDF), so wait
        # 10 ms, then poll until VERSIONR is 0x04 and RTR its reset value 0x07D0 (DS p.38;
        # a bus that answers 0x04 to everything fails there), bounded by reset_timeout_ms.
        self._write8(_BLK_COMMON, _MR, _MR_RST)
        port.sleep_ms(10)
        start = port.ticks_ms()
        while True:
            version = self._read8(_BLK_COMMON, _VERSIONR)
            rtr = self._read16(_BLK_COMMON, _RTR)
            if version == _VERSION and rtr == _RTR_RESET:
                break
            if port.ticks_diff(port.ticks_ms(), start) > self.reset_timeout_ms:
                if version != _VERSION:
                    raise OSError("W5500 not found: VERSIONR read 0x%02x, expected 0x04 "
                                  "(check SPI wiring, CS pin, SPI mode 0, and that the chip "
                                  "has power)" % version)
                raise OSError("W5500 answers oddly: RTR read 0x%04x after reset, expected "
                              "0x07d0 (SPI corrupted? check wiring and clock)" % rtr)
            port.sleep_ms(1)
        self._write8(_BLK_COMMON, _MR, _MR_PB)  # no ping answers from the chip itself
        # Buffer sizes: all 16 KiB each way to socket 0, none to sockets 1-7 (the sum over
        # the 8 sockets must not exceed 16 KiB; Sn_RXBUF_SIZE and Sn_TXBUF_SIZE are adjacent).
        c = self._cmd
        for n in range(8):
            c[3] = c[4] = _BUF_KB if n == 0 else 0
            self._write(_BLK_S0_REG + (n << 5), _SN_RXBUF_SIZE, 2)
        self._cmd[3:9] = self.mac
        self._write(_BLK_COMMON, _SHAR, 6)
        err = self._open()
        if err:
            raise OSError(err)
        # Interrupts: RECV only in Sn_IMR, socket 0 in SIMR (as MicroPython, ESP-IDF and
        # Zephyr). Sn_IMR masks INTn only, not the latching of Sn_IR (they all poll SEND_OK
        # with it off: review D6), so a finished SEND does not pull INTn low.
        self._write8(_BLK_S0_REG, _SN_IMR, _IR_RECV)
        self._write8(_BLK_COMMON, _SIMR, 0x01)
        self._link = True

    def _wait_sr(self, want):
        # OPEN and CLOSE go on after Sn_CR clears (w5500.h: "check Sn_IR or Sn_SR"): poll
        # Sn_SR until it reads `want`, as ioLibrary's socket() and close() do, bounded by
        # cmd_timeout_ms. Returns the last value read.
        start = port.ticks_ms()
        while True:
            sr = self._read8(_BLK_S0_REG, _SN_SR)
            if sr == want:
                return sr
            if port.ticks_diff(port.ticks_ms(), start) > self.cmd_timeout_ms:
                self.cmd_timeouts += 1
                return sr

    def _open(self):
        # Close socket 0, then open it in MACRAW mode with Sn_MR = MACRAW | MFEN (0x84; 0x94
        # with block_ipv6) written before OPEN, as ESP-IDF, Linux and Zephyr do (MicroPython
        # OPENs with 0x04 and ORs MFEN in afterwards). None when open, else what is wrong:
        # reset() raises it, the data path (_reopen) counts it.
        if self._cr_dirty:
            self._wait_cr()
        self._opened = False
        self._rx_left = 0  # whatever the rings held is lost
        self._tx_busy = False
        self._write8(_BLK_S0_REG, _SN_CR, _CR_CLOSE)
        self._wait_cr()
        self._wait_sr(_SR_CLOSED)
        self._write8(_BLK_S0_REG, _SN_IR, 0xFF)  # clear what the old socket left
        self._write8(_BLK_S0_REG, _SN_MR, self._mode)
        self._write8(_BLK_S0_REG, _SN_CR, _CR_OPEN)
        self._wait_cr()
        sr = self._wait_sr(_SR_MACRAW)
        if sr != _SR_MACRAW:
            return ("W5500 socket 0 did not open in MACRAW mode: Sn_SR read 0x%02x, "
                    "expected 0x42" % sr)
        size = self._read8(_BLK_S0_REG, _SN_RXBUF_SIZE)
        if size != _BUF_KB:
            return "W5500 socket 0 RX buffer is %d KiB, expected 16" % size
        # OPEN "initializes" the pointers to values the driver must read, never assume (ref
        # 3): TX_WR (0x24), RX_RSR (0x26) and RX_RD (0x28) in one burst. Both are ours from
        # now on: the chip moves TX_RD and RX_WR only.
        a = self._read(_BLK_S0_REG, _SN_TX_WR, 6)
        self._tx_wr = (a[3] << 8) | a[4]
        self._rx_rd = (a[7] << 8) | a[8]
        fsr = self._read16_stable(_SN_TX_FSR)
        if fsr != _BUF_SIZE:
            return "W5500 socket 0 TX_FSR read %r after OPEN, expected 16384" % fsr
        self._opened = True
        return None

    def _reopen(self):
        # Socket 0 left MACRAW (a brown-out reset, a glitch) or a SEND never finished:
        # close and open it again; frames in the rings are lost. On the data path, so a
        # failure is counted, not raised: until a reopen works, the receive batches and
        # sends try again every reopen_retry_ms (a send's frame is dropped). True once open.
        at = self._retry_at
        if at is not None and port.ticks_diff(port.ticks_ms(), at) < 0:
            return False
        self.reopens += 1
        if self._open():
            self.reopen_fails += 1
            self._retry_at = port.ticks_add(port.ticks_ms(), self.reopen_retry_ms)
        else:
            self._retry_at = None
        return self._opened

    def close(self):
        """Close socket 0 (the chip stops receiving)."""
        self._command(_CR_CLOSE)
        self._wait_cr()
        self._wait_sr(_SR_CLOSED)

    def irq(self, handler):
        """Have handler(pin) called when INTn falls (a frame arrived); False when INTn is
        not wired or its pin has no irq(). It runs as a hard interrupt: it must not
        allocate (asyncio's ThreadSafeFlag.set() is safe, as is micropython.schedule())."""
        pin = self._int_pin
        if getattr(pin, "irq", None) is None:
            return False
        pin.irq(handler, pin.IRQ_FALLING, hard=True)
        return True

    # ---- link (PHY) status (DS 4.1 PHYCFGR; ref 2, ref 5 "Link") ------------------------

    def link_up(self):
        """True when the PHY reports a link (PHYCFGR.LNK, and RST = 1: the PHY is not held
        in reset, as ESP-IDF checks); one SPI transaction."""
        up = (self._read8(_BLK_COMMON, _PHYCFGR) & _PHY_OK) == _PHY_OK
        was = self._link
        self._link = up
        if was and not up:
            self.link_losses += 1
        elif up and not was and self._tx_busy and not self._tx_done():
            self._reopen()  # the SEND that the link loss caught will never finish
        return up

    # ---- receive (ref 4 "Receive") ---------------------------------------------------------

    def recv_into(self, buf):
        """One Ethernet frame (no FCS) into buf; its length, or 0 if none is waiting."""
        for _ in range(4):  # frames too long for buf are skipped; a few per call at most
            left = self._rx_left
            if not left:
                left = self._rx_batch()
                if not left:
                    return 0
            if left < _HEAD:
                self._resync()  # less than the shortest frame: the framing is lost
                return 0
            start = self._rx_rd
            # Length header and the first 60 bytes in one transaction: every frame has them.
            self._ring(_BLK_S0_RX, start, self._headv)
            head = self._head
            total = (head[0] << 8) | head[1]  # includes its own 2 bytes (ioLibrary, Linux)
            n = total - 2
            if n < _MIN_FRAME or n > _MAX_HDR_FRAME or total > left:
                self._resync()  # corrupt length header: skip all that is buffered
                return 0
            left -= total
            self._rx_rd = (start + total) & 0xFFFF
            self._rx_left = left
            if n <= len(buf):
                if buf is not self._buf:
                    self._buf = buf
                    self._bufv = memoryview(buf)
                bufv = self._bufv
                bufv[:_MIN_FRAME] = self._head_data
                if n > _MIN_FRAME:
                    self._ring(_BLK_S0_RX, (start + _HEAD) & 0xFFFF, bufv[_MIN_FRAME:n])
            else:
                self.rx_too_long += 1
                n = 0
            if not left:
                self._rx_release()
            if n:
                self.rx_frames += 1
                self.rx_bytes += n
                return n
        return 0

    def _rx_batch(self):
        # How many bytes wait in the RX ring (0 if none); with the INT pin, no SPI at all
        # while INTn is high (Sn_IR & Sn_IMR == 0: no frame arrived).
        if not self._opened and not self._reopen():
            return 0
        if self._int is not None:
            if self._int():
                return 0
            # INTn low: clear RECV *before* draining (ESP-IDF), so a frame arriving during
            # the drain asserts INTn again; take a finished SEND too, in the same write, so
            # the next send need not ask.
            a = self._read(_BLK_S0_REG, _SN_CR, 3)
            cr = a[3]
            ir = a[4]
            if a[5] != _SR_MACRAW:
                self._reopen()
                return 0
            clear = ir & (_IR_RECV | _IR_SEND_OK | _IR_TIMEOUT)
            if clear:
                self._write8(_BLK_S0_REG, _SN_IR, clear)
                self._tx_end(clear)
            if not cr:
                self._cr_dirty = False
            if not ir & _IR_RECV:
                return 0
        rsr = self._read16(_BLK_S0_REG, _SN_RX_RSR)
        if not rsr:
            return 0  # a torn read only ever comes out low: 0 needs no second look
        rsr = self._read16_stable(_SN_RX_RSR, rsr)
        if not rsr:
            return 0
        if rsr > _BUF_SIZE:
            self._resync()  # impossible value: a corrupted read or a confused chip
            return 0
        if rsr > _BUF_SIZE - (_MAX_FRAME + 2):
            # Not even one more full frame fits: the chip now drops arriving frames whole
            # and tells no one (ref 4, inferred). Counted as an overrun.
            self.rx_overruns += 1
        self._rx_left = rsr
        return rsr

    def _rx_release(self):
        # The batch is read: hand the space back (RX_RD, then RECV). Wait for Sn_CR == 0,
        # because RX_RSR is recomputed by RECV and the next batch starts by reading it.
        self._write16(_BLK_S0_REG, _SN_RX_RD, self._rx_rd)
        self._command(_CR_RECV)
        self._wait_cr()

    def _resync(self):
        # A corrupt length header misaligns every later frame: drop everything buffered
        # (RX_RD = RX_WR, then RECV), as ESP-IDF does (ref 4; WIZnet forum topic 4925).
        self.rx_resyncs += 1
        wr = self._read16_stable(_SN_RX_WR)
        if wr is None:
            self._reopen()
            return
        self._rx_rd = wr
        self._rx_left = 0
        self._rx_release()

    # ---- transmit (ref 4 "Transmit") -------------------------------------------------------

    def send(self, buf):
        """Send one Ethernet frame (no FCS, at most 1514 bytes); drops are counted."""
        n = len(buf)
        if n > _MAX_FRAME:
            self.tx_too_long += 1
            return
        if not self._link and not self.link_up():
            # The link was seen down: one PHYCFGR read per frame until it is back.
            self.tx_link_down += 1
            return
        if not self._opened and not self._reopen():
            return  # a reopen failed, and failed again now: dropped (reopen_fails)
        if self._tx_busy and not self._tx_wait():
            return
        if n < _MIN_FRAME:
            # Pad to 60 (the MAC is only inferred to pad, ref 4): the frame, then zeros.
            pad = self._padv
            pad[:n] = buf
            pad[n:] = self._zeros[n:]
            buf = pad
            n = _MIN_FRAME
        wr = self._tx_wr
        self._ring(_BLK_S0_TX | _RWB_WRITE, wr, buf)
        wr = (wr + n) & 0xFFFF
        self._tx_wr = wr
        self._write16(_BLK_S0_REG, _SN_TX_WR, wr)
        self._command(_CR_SEND)
        self._tx_busy = True
        self._tx_sent_at = port.ticks_ms()
        self.tx_frames += 1
        self.tx_bytes += n

    def _tx_done(self):
        # Did the last SEND finish? Sn_CR, Sn_IR and Sn_SR in one burst; on SEND_OK or
        # TIMEOUT clear it (write 1 to Sn_IR). Socket 0 found out of MACRAW is reopened
        # (rings empty: done).
        a = self._read(_BLK_S0_REG, _SN_CR, 3)
        if a[5] != _SR_MACRAW:
            return self._reopen()
        if not a[3]:
            self._cr_dirty = False
        done = a[4] & (_IR_SEND_OK | _IR_TIMEOUT)
        if done:
            self._write8(_BLK_S0_REG, _SN_IR, done)
            self._tx_end(done)
            return True
        return False

    def _tx_end(self, ir):
        # Sn_IR bits just cleared: SEND_OK or TIMEOUT ends the SEND in flight. TIMEOUT is a
        # failed SEND (ioLibrary's sendto, Zephyr, njh): counted, and the frame not retried
        # (TCP retransmits; MACRAW does no ARP, so it should not happen at all: review D5).
        if ir & _IR_TIMEOUT:
            self.tx_timeouts += 1
        if ir & (_IR_SEND_OK | _IR_TIMEOUT):
            self._tx_busy = False

    def _tx_wait(self):
        # The previous SEND must finish before the next (one SEND is one frame, ref 4).
        # Bounded by tx_timeout_ms; then the frame is dropped and counted: as tx_link_down
        # when the PHY has no link (a SEND then never finishes: ESP-IDF checks PHYCFGR, IDF
        # #6233), else as tx_full (the MAC is still busy with the previous frame).
        start = port.ticks_ms()
        while not self._tx_done():
            now = port.ticks_ms()
            if port.ticks_diff(now, start) >= self.tx_timeout_ms:
                break
        else:
            return True
        if not self.link_up():
            self.tx_link_down += 1
        else:
            self.tx_full += 1
            if port.ticks_diff(now, self._tx_sent_at) > _TX_STUCK_MS:
                self._reopen()  # a SEND stuck this long will not finish: start afresh
        return False

    @property
    def stats(self):
        """Every counter, as a dict (diagnostics; allocates)."""
        return {
            "spi_transactions": self.spi_transactions,
            "spi_bytes": self.spi_bytes,
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "tx_full": self.tx_full,
            "tx_link_down": self.tx_link_down,
            "tx_too_long": self.tx_too_long,
            "link_losses": self.link_losses,
            "rx_overruns": self.rx_overruns,
            "rx_resyncs": self.rx_resyncs,
            "rx_too_long": self.rx_too_long,
            "reopens": self.reopens,
            "reopen_fails": self.reopen_fails,
            "tx_timeouts": self.tx_timeouts,
            "cmd_timeouts": self.cmd_timeouts,
        }

    def __repr__(self):
        return "<W5500 MACRAW mac=%s mtu=%d>" % (
            ":".join("%02x" % b for b in self.mac), self.mtu)
