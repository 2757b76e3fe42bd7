# SMSC LAN9118 / LAN9220 link: a memory-mapped Ethernet MAC+PHY, frames through its FIFOs.
# SPDX-License-Identifier: MIT
#
#   from stack.link.lan9118 import LAN9118           # boards/qemu_mps2.py does this
#   link = LAN9118(0x40200000)                        # the MPS2 AN385's address
#   net = Stack(link, ip="10.0.0.2")
#
# The LAN9118 (and its software-compatible successor LAN9220, which the real MPS2 board
# carries) sits on the CPU's memory bus: 32-bit registers read and written through
# machine.mem32, no SPI. Like the W5500 in MACRAW mode, it hands us whole Ethernet frames and
# sends ours, so the TCP is ours. QEMU's mps2-an385 machine emulates it (hw/net/lan9118.c),
# which is how the emulated board gets on a network (../shared/reference/MCU-EMULATION.md 8).
# Register names are the datasheet's (SMSC LAN9118 datasheet, section 5, "DS" below).
#
# The link contract (DESIGN.md 4): mtu, mac, recv_into(buf) -> int (non-blocking, 0 when
# nothing waits), send(buf). No fileno(): a board loop polls.
#
# Receive (DS 3.13): the chip keeps frames in an RX data FIFO and one status word per frame
# in an RX status FIFO. RX_FIFO_INF says how many status words (RXSUSED) and data bytes
# (RXDUSED) wait. Per frame: pop the status word (length with the 4 FCS bytes, error bits),
# then pop ceil(length / 4) data words (RX_CFG = 0: no offset, no end padding). The frame
# goes into the caller's buffer without its FCS. A frame is dropped (its words popped and
# thrown away, so the FIFOs stay in step) when its status has the error summary (ES) or
# filter-fail bit set, when it is shorter than an Ethernet header or longer than 1518 bytes
# (1514 + a VLAN tag), or when it does not fit the caller's buffer. A status that claims
# more data than RXDUSED holds means the two FIFOs are out of step: both are flushed
# (RX_CFG.RX_DUMP) and counted; we never read past what the chip says it holds.
#
# Transmit (DS 3.12): per frame two command words into the TX data FIFO (A: first and last
# segment, buffer size; B: frame length, and a tag, here the length again), then the frame
# as ceil(n / 4) little-endian words. The chip adds padding and FCS. TX_FIFO_INF.TDFREE
# says how many bytes the TX data FIFO can take; a frame waits for room at most
# tx_timeout_ms, then is dropped and counted (tx_full). TX status words (one per frame) are
# popped at the next send; TX_CFG.TXSAO lets them overflow harmlessly if nobody sends.
#
# Cost per frame (register accesses; mem32 reads and writes): receive 2 + ceil(n / 4) (the
# RX_FIFO_INF and status reads, then the data words), an idle poll 1 (RX_FIFO_INF); send
# 3 + ceil(n / 4) (TX_FIFO_INF, two commands, the data) plus one read per TX status popped.
# The data words move through viper kernels (stack/link/_lan9118_viper.py) where the port
# has a native emitter and the link uses the real machine.mem32: no allocation per frame.
# Elsewhere (a fake mem32 in tests, ports without viper) a plain loop moves them: correct,
# but on a 32-bit board each word of 2**30 or more read through mem32 is a heap int.
#
# Counted, never raised, on the data path: rx_errors (status with ES or filter fail),
# rx_too_long (longer than 1518 or than the caller's buffer), rx_runts (shorter than 14),
# rx_resyncs (status and data FIFOs out of step: flushed), tx_full (no room in time),
# tx_too_long (over 1514), tx_errors (TX status with ES). Set-up failures (no chip, a reset
# that never finishes) raise OSError with what was read.

from micropython import const

from .. import port

# ---- system control and status registers, offsets from the base (DS 5.3, table 5-1) -------
_RX_DATA_FIFO = const(0x00)  # read: pops one RX data word (0x00-0x1C all alias it)
_TX_DATA_FIFO = const(0x20)  # write: pushes one TX data word (0x20-0x3C all alias it)
_RX_STATUS_FIFO = const(0x40)  # read: pops one RX status word
_TX_STATUS_FIFO = const(0x48)  # read: pops one TX status word
_ID_REV = const(0x50)  # chip ID (upper 16 bits) and revision
_IRQ_CFG = const(0x54)
_INT_STS = const(0x58)  # write 1 to clear
_INT_EN = const(0x5C)
_BYTE_TEST = const(0x64)  # always 0x87654321: the bus works and the byte order is right
_RX_CFG = const(0x6C)
_TX_CFG = const(0x70)
_HW_CFG = const(0x74)
_RX_FIFO_INF = const(0x7C)  # RXSUSED (23:16) status words, RXDUSED (15:0) data bytes
_TX_FIFO_INF = const(0x80)  # TXSUSED (23:16) status words, TDFREE (15:0) free data bytes
_PMT_CTRL = const(0x84)  # bit 0 READY: the chip may be accessed
_RX_DROP = const(0xA0)  # frames the chip dropped for want of FIFO room (clears on read)
_MAC_CSR_CMD = const(0xA4)
_MAC_CSR_DATA = const(0xA8)

_BYTE_TEST_VALUE = const(0x87654321)
_PMT_READY = const(0x01)
_HW_CFG_SRST = const(0x01)  # soft reset, self-clearing
_HW_CFG_MBO = const(0x00100000)  # "must be one"
_HW_CFG_TX_FIF_5K = const(0x00050000)  # TX FIFO size 5 KiB (the reset value)
_RX_CFG_RX_DUMP = const(0x8000)  # flush the RX data and status FIFOs
_TX_CFG_TX_ON = const(0x02)
_TX_CFG_TXSAO = const(0x04)  # TX status FIFO may overflow (we need not pop every word)
_CSR_BUSY = const(0x80000000)
_CSR_READ = const(0x40000000)

# ---- MAC control and status registers, through MAC_CSR_CMD/DATA (DS 5.4) -----------------
_MAC_CR = const(1)
_ADDRH = const(2)  # MAC address bytes 4, 5
_ADDRL = const(3)  # MAC address bytes 0..3, byte 0 lowest
_MII_ACC = const(6)
_MII_DATA = const(7)

_MAC_CR_RXEN = const(0x04)
_MAC_CR_TXEN = const(0x08)
_MAC_CR_MCPAS = const(0x00080000)  # pass all multicast (mDNS, without the hash filter)
_MAC_CR_PRMS = const(0x00040000)  # promiscuous
_MAC_CR_FDPX = const(0x00100000)  # full duplex

_PHY_ADDR = const(1)  # the internal PHY (DS 5.5)
_PHY_BCR = const(0)
_PHY_BSR = const(1)
_PHY_ANAR = const(4)
_PHY_BCR_RESET = const(0x8000)
_PHY_BCR_ANEG = const(0x1200)  # auto-negotiation enable + restart
_PHY_ANAR_ALL = const(0x01E1)  # 10/100, half and full duplex, IEEE 802.3
_PHY_BSR_LINK = const(0x0004)
_MII_BUSY = const(0x01)
_MII_WRITE = const(0x02)

# ---- RX and TX status and command words (DS 3.13.3, 3.12.2) -------------------------------
_RXS_FILTER_FAIL_HI = const(0x4000)  # bit 30, tested as (status >> 16): 0x40000000 is not a
# small int on a 32-bit board, and `status & <big int>` would allocate on every frame
_RXS_ES = const(0x8000)  # error summary: CRC, runt, too long, collision, watchdog, MII
_TXS_ES = const(0x8000)
_TXA_FIRST = const(0x2000)
_TXA_LAST = const(0x1000)

_MIN_FRAME = const(14)  # an Ethernet header
_MAX_FRAME = const(1514)  # what we send: no FCS, no VLAN tag
_MAX_RX_FRAME = const(1518)  # what we take: a VLAN tag fits
_MAX_RX_WORDS = const(381)  # (1518 + 4 FCS + 3) // 4
_DROP_LOOPS = const(4)  # dropped frames skipped per recv_into() call before returning 0


class LAN9118:
    """The LAN9118/LAN9220 at `base`, as a link (DESIGN.md section 4)."""

    def __init__(self, base=0x40200000, mac=None, mtu=1500, mem32=None, promiscuous=False,
                 tx_timeout_ms=5, reset_timeout_ms=100, fast=None):
        if mtu > _MAX_FRAME - 14 or mtu < 68:
            raise ValueError("mtu must be 68..1500")
        if mem32 is None:
            from machine import mem32  # only here: CPython imports this module fine

            if fast is None:
                fast = True
        self._m = mem32
        self.mtu = mtu
        self.tx_timeout_ms = tx_timeout_ms
        self.reset_timeout_ms = reset_timeout_ms
        # Register addresses, computed once: base + offset is 2**30 or more, a heap int on a
        # 32-bit board, so the data path only loads these attributes.
        self._base = base
        self._rx_data = base + _RX_DATA_FIFO
        self._tx_data = base + _TX_DATA_FIFO
        self._rx_status = base + _RX_STATUS_FIFO
        self._tx_status = base + _TX_STATUS_FIFO
        self._rx_inf = base + _RX_FIFO_INF
        self._tx_inf = base + _TX_FIFO_INF
        self._kernels = None
        if fast:
            try:
                from . import _lan9118_viper as k

                if k.FAST:
                    self._kernels = (k.rx_copy, k.rx_skip, k.tx_copy)
            except (ImportError, SyntaxError):  # pragma: no cover - no native emitter
                pass
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.rx_errors = 0
        self.rx_too_long = 0
        self.rx_runts = 0
        self.rx_resyncs = 0
        self.tx_full = 0
        self.tx_too_long = 0
        self.tx_errors = 0
        self.chip = 0  # ID_REV after reset: 0x0118xxxx LAN9118, 0x9220xxxx LAN9220, ...
        self._mac_cr = _MAC_CR_RXEN | _MAC_CR_TXEN | _MAC_CR_FDPX | (
            _MAC_CR_PRMS if promiscuous else _MAC_CR_MCPAS)
        self.reset()
        if mac is None:
            mac = self.chip_mac()
            if mac is None:
                # No usable address from the chip (no EEPROM): locally administered, unicast.
                mac = b"\x02" + bytes(port.urandom(5))
        mac = bytes(mac)
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError("mac must be 6 bytes, unicast (first byte even)")
        self.mac = mac
        self._set_mac(mac)
        self._mac_write(_MAC_CR, self._mac_cr)

    # ---- registers ---------------------------------------------------------------------------

    def _rd(self, off):
        return self._m[self._base + off]

    def _wr(self, off, value):
        self._m[self._base + off] = value

    def _csr_wait(self):
        start = port.ticks_ms()
        while self._rd(_MAC_CSR_CMD) & _CSR_BUSY:
            if port.ticks_diff(port.ticks_ms(), start) > self.reset_timeout_ms:
                raise OSError("LAN9118 MAC_CSR_CMD stays busy")

    def _mac_read(self, index):
        # DS 5.4: write CSR_BUSY | R/nW | index, wait for BUSY to clear, read MAC_CSR_DATA.
        self._csr_wait()
        self._wr(_MAC_CSR_CMD, _CSR_BUSY | _CSR_READ | index)
        self._csr_wait()
        return self._rd(_MAC_CSR_DATA) & 0xFFFFFFFF

    def _mac_write(self, index, value):
        # DS 5.4: data first, then CSR_BUSY | index; BUSY clears when the MAC has it.
        self._csr_wait()
        self._wr(_MAC_CSR_DATA, value)
        self._wr(_MAC_CSR_CMD, _CSR_BUSY | index)
        self._csr_wait()

    def _mii_wait(self):
        start = port.ticks_ms()
        while self._mac_read(_MII_ACC) & _MII_BUSY:
            if port.ticks_diff(port.ticks_ms(), start) > self.reset_timeout_ms:
                raise OSError("LAN9118 MII_ACC stays busy")

    def phy_read(self, reg):
        """A PHY register (MII management through MII_ACC/MII_DATA, DS 5.4.6-7)."""
        self._mii_wait()
        self._mac_write(_MII_ACC, (_PHY_ADDR << 11) | (reg << 6) | _MII_BUSY)
        self._mii_wait()
        return self._mac_read(_MII_DATA) & 0xFFFF

    def phy_write(self, reg, value):
        self._mii_wait()
        self._mac_write(_MII_DATA, value)
        self._mac_write(_MII_ACC, (_PHY_ADDR << 11) | (reg << 6) | _MII_WRITE | _MII_BUSY)
        self._mii_wait()

    # ---- set-up (DS 3.11 reset, 6.4 initialisation as the Linux smsc911x driver does it) ----

    def reset(self):
        """Check the chip, soft-reset it, start the PHY, flush the FIFOs, enable TX."""
        bt = self._rd(_BYTE_TEST) & 0xFFFFFFFF
        if bt != _BYTE_TEST_VALUE:
            raise OSError("LAN9118 not found: BYTE_TEST read 0x%08x, expected 0x87654321 "
                          "(wrong base address, or the bus swaps bytes)" % bt)
        self._wait_ready()
        self._wr(_HW_CFG, _HW_CFG_SRST)
        start = port.ticks_ms()
        while self._rd(_HW_CFG) & _HW_CFG_SRST:
            if port.ticks_diff(port.ticks_ms(), start) > self.reset_timeout_ms:
                raise OSError("LAN9118 soft reset did not finish (HW_CFG.SRST stays set)")
        self._wait_ready()
        self.chip = self._rd(_ID_REV) & 0xFFFFFFFF
        self._wr(_HW_CFG, _HW_CFG_TX_FIF_5K | _HW_CFG_MBO)
        self._wr(_INT_EN, 0)  # polled: no interrupts
        self._wr(_INT_STS, -1)  # clear everything latched (write 1 to clear; mem32 truncates)
        self._wr(_IRQ_CFG, 0)
        # PHY: reset, advertise 10/100 half/full, auto-negotiate (QEMU's completes at once).
        self.phy_write(_PHY_BCR, _PHY_BCR_RESET)
        start = port.ticks_ms()
        while self.phy_read(_PHY_BCR) & _PHY_BCR_RESET:
            if port.ticks_diff(port.ticks_ms(), start) > self.reset_timeout_ms:
                raise OSError("LAN9118 PHY reset did not finish")
        self.phy_write(_PHY_ANAR, _PHY_ANAR_ALL)
        self.phy_write(_PHY_BCR, _PHY_BCR_ANEG)
        # FIFOs: no RX offset or end padding; flush both RX FIFOs; TX on, status may overflow.
        self._wr(_RX_CFG, _RX_CFG_RX_DUMP)
        self._wr(_RX_CFG, 0)
        self._wr(_TX_CFG, _TX_CFG_TX_ON | _TX_CFG_TXSAO)

    def _wait_ready(self):
        start = port.ticks_ms()
        while not self._rd(_PMT_CTRL) & _PMT_READY:
            if port.ticks_diff(port.ticks_ms(), start) > self.reset_timeout_ms:
                raise OSError("LAN9118 not ready (PMT_CTRL.READY stays 0)")

    def chip_mac(self):
        """The address in ADDRH/ADDRL (loaded from the EEPROM), or None if unusable."""
        lo = self._mac_read(_ADDRL)
        hi = self._mac_read(_ADDRH)
        mac = bytes((lo & 0xFF, (lo >> 8) & 0xFF, (lo >> 16) & 0xFF, (lo >> 24) & 0xFF,
                     hi & 0xFF, (hi >> 8) & 0xFF))
        if mac[0] & 1 or mac == b"\x00" * 6:  # all ones (no EEPROM), multicast, or zero
            return None
        return mac

    def _set_mac(self, mac):
        self._mac_write(_ADDRL, mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24))
        self._mac_write(_ADDRH, mac[4] | (mac[5] << 8))

    def link_up(self):
        """True when the PHY reports a link (basic status register, bit 2)."""
        # The bit latches low (IEEE 802.3 22.2.4.2.13): read twice for the current state.
        self.phy_read(_PHY_BSR)
        return bool(self.phy_read(_PHY_BSR) & _PHY_BSR_LINK)

    def close(self):
        """Stop receiving and sending."""
        self._mac_write(_MAC_CR, 0)
        self._wr(_TX_CFG, 0)

    # ---- receive -------------------------------------------------------------------------------

    def recv_into(self, buf):
        """One Ethernet frame (no FCS) into buf; its length, or 0 if none is waiting."""
        m = self._m
        for _ in range(_DROP_LOOPS):
            inf = m[self._rx_inf]
            if not (inf >> 16) & 0xFF:
                return 0  # no status word: no complete frame
            status = m[self._rx_status]
            length = (status >> 16) & 0x3FFF  # the frame and its 4 FCS bytes
            words = (length + 3) >> 2
            if words > (inf & 0xFFFF) >> 2 or words > _MAX_RX_WORDS:
                # More data claimed than the data FIFO holds (or than any frame has): the
                # FIFOs are out of step. Flush both rather than read past the count.
                self._resync()
                return 0
            n = length - 4
            if status & _RXS_ES or (status >> 16) & _RXS_FILTER_FAIL_HI:
                self.rx_errors += 1
            elif n < _MIN_FRAME:
                self.rx_runts += 1
            elif n > _MAX_RX_FRAME or n > len(buf):
                self.rx_too_long += 1
            else:
                k = self._kernels
                if k is not None:
                    k[0](self._rx_data, buf, n, words)
                else:
                    self._rx_copy_plain(buf, n, words)
                self.rx_frames += 1
                self.rx_bytes += n
                return n
            self._skip(words)
        return 0

    def _rx_copy_plain(self, buf, n, words):
        # Byte stores from each word (signed or not: only the low 8 bits of each shift land).
        m = self._m
        a = self._rx_data
        i = 0
        for _ in range(words):
            v = m[a]
            if i + 4 <= n:
                buf[i] = v & 0xFF
                buf[i + 1] = (v >> 8) & 0xFF
                buf[i + 2] = (v >> 16) & 0xFF
                buf[i + 3] = (v >> 24) & 0xFF
            else:
                j = 0
                while i + j < n:
                    buf[i + j] = (v >> (8 * j)) & 0xFF
                    j += 1
            i += 4

    def _skip(self, words):
        k = self._kernels
        if k is not None:
            k[1](self._rx_data, words)
            return
        m = self._m
        a = self._rx_data
        for _ in range(words):
            m[a]

    def _resync(self):
        self.rx_resyncs += 1
        self._wr(_RX_CFG, _RX_CFG_RX_DUMP)
        self._wr(_RX_CFG, 0)

    def rx_dropped(self):
        """Frames the chip dropped since the last call (RX_DROP clears on read)."""
        return self._rd(_RX_DROP) & 0xFFFFFFFF

    # ---- transmit ------------------------------------------------------------------------------

    def send(self, buf):
        """Send one Ethernet frame (no FCS, at most 1514 bytes); drops are counted."""
        n = len(buf)
        if n > _MAX_FRAME:
            self.tx_too_long += 1
            return
        m = self._m
        need = ((n + 3) & ~3) + 8  # the data words and the two command words
        inf = m[self._tx_inf]
        if (inf & 0xFFFF) < need:
            start = port.ticks_ms()
            while True:
                self._pop_tx_status(inf)
                inf = m[self._tx_inf]
                if (inf & 0xFFFF) >= need:
                    break
                if port.ticks_diff(port.ticks_ms(), start) >= self.tx_timeout_ms:
                    self.tx_full += 1
                    return
        self._pop_tx_status(inf)
        a = self._tx_data
        m[a] = _TXA_FIRST | _TXA_LAST | n  # command A: one segment of n bytes
        m[a] = (n << 16) | n  # command B: tag (the length) and frame length
        k = self._kernels
        if k is not None:
            k[2](a, buf, n)
        else:
            i = 0
            while i + 4 <= n:
                m[a] = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)
                i += 4
            if i < n:
                v = 0
                s = 0
                while i < n:
                    v |= buf[i] << s
                    s += 8
                    i += 1
                m[a] = v
        self.tx_frames += 1
        self.tx_bytes += n

    def _pop_tx_status(self, inf):
        # TX status words (one per frame sent; TXSUSED of a TX_FIFO_INF reading): an error
        # summary bit means the frame was not sent (collisions, carrier loss...).
        m = self._m
        for _ in range((inf >> 16) & 0xFF):
            if m[self._tx_status] & _TXS_ES:
                self.tx_errors += 1

    @property
    def stats(self):
        """Every counter, as a dict (diagnostics; allocates)."""
        return {
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "rx_errors": self.rx_errors,
            "rx_too_long": self.rx_too_long,
            "rx_runts": self.rx_runts,
            "rx_resyncs": self.rx_resyncs,
            "tx_full": self.tx_full,
            "tx_too_long": self.tx_too_long,
            "tx_errors": self.tx_errors,
            "fast": self._kernels is not None,
        }

    def __repr__(self):
        return "<LAN9118 id=0x%08x mac=%s mtu=%d>" % (
            self.chip, ":".join("%02x" % b for b in self.mac), self.mtu)
