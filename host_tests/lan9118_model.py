# A register model of the SMSC LAN9118 as machine.mem32 sees it, for the link's unit tests.
# MIT licence. Runs on CPython and MicroPython (core-test style: no pytest, no dataclasses).
#
#   chip = LAN9118Model(base=0x40200000, mac=b"\x52\x54\x00\x12\x34\x56")
#   link = LAN9118(chip.base, mem32=chip)        # chip[addr] / chip[addr] = v, as mem32
#   chip.receive(frame)                          # a frame arrives from the wire
#   chip.sent                                    # frames the driver transmitted
#   chip.misuse                                  # what a driver must never do, counted
#
# What it models (the datasheet's behaviour, as QEMU's hw/net/lan9118.c implements it):
# BYTE_TEST, ID_REV, PMT_CTRL.READY, HW_CFG.SRST (the reset takes `reset_reads` reads of
# HW_CFG to finish), MAC CSRs through MAC_CSR_CMD/DATA, the PHY through MII_ACC/MII_DATA,
# the RX data and status FIFOs (frame words little-endian, then the FCS word(s); status
# word = length with FCS << 16 | flags), RX_CFG.RX_DUMP, the TX data FIFO parsed as command
# A, command B, data words, TX status words (tag << 16), TX_FIFO_INF's TDFREE and TXSUSED.
# Reads return signed 32-bit values when signed=True, as MicroPython's mem32 does.
# Misuse is counted, not raised: a read of an empty RX FIFO, a write to a read-only or
# unknown register, a MAC CSR access while busy, an unknown MAC CSR, a TX data overflow,
# a TX command word with bits the driver should not set, access before READY.

ID_REV = 0x01180001


def _le_words(data):
    out = []
    n = len(data)
    for i in range(0, n, 4):
        v = 0
        for j in range(4):
            if i + j < n:
                v |= data[i + j] << (8 * j)
        out.append(v)
    return out


class LAN9118Model:
    def __init__(self, base=0x40200000, mac=b"\x52\x54\x00\x12\x34\x56", signed=False,
                 eeprom=True, reset_reads=2):
        self.base = base
        self.signed = signed
        self.eeprom_mac = bytes(mac) if eeprom else b"\xff" * 6
        self.reset_reads = reset_reads
        self.misuse = {}
        self.sent = []
        self.reads = 0
        self.writes = 0
        self.tx_drain = True  # False: frames stay in the TX FIFO (TDFREE falls)
        self.tx_status_flags = 0  # OR'ed into each TX status word (e.g. 0x8000: ES)
        self.pmt_ready = True
        self._power_on()

    def _power_on(self):
        self.hw_cfg = 0x00050000
        self.srst_left = 0
        self.rx_cfg = 0
        self.tx_cfg = 0
        self.int_sts = 0
        self.int_en = 0
        self.irq_cfg = 0
        self.mac_cr = 0x00040000  # PRMS after reset (QEMU)
        self.mac = self.eeprom_mac
        self.csr_cmd = 0
        self.csr_data = 0
        self.mii_acc = 0
        self.mii_data = 0
        self.phy = {0: 0x3000, 1: 0x782D, 4: 0x01E1}
        self.rx_data = []
        self.rx_status = []
        self.tx_words = []  # words of the frame being written
        self.tx_state = 0  # 0: want command A, 1: want B, 2: data
        self.tx_left = 0
        self.tx_len = 0
        self.tx_fifo_bytes = 0  # undrained frames' bytes (tx_drain False)
        self.tx_status = []
        self.rx_drop = 0

    def _bad(self, what):
        self.misuse[what] = self.misuse.get(what, 0) + 1

    def clean(self):
        return not self.misuse

    # ---- the wire --------------------------------------------------------------------------

    def receive(self, frame, flags=0, length=None, fcs=b"\x11\x22\x33\x44"):
        """Queue a frame as the chip would after taking it off the wire (length: override
        the status word's length field, which counts the 4 FCS bytes)."""
        data = bytes(frame) + fcs
        words = _le_words(data)
        if self.rx_cfg & 0x8000 or not self.mac_cr & 0x04:
            return False
        self.rx_data.extend(words)
        n = len(data) if length is None else length
        self.rx_status.append(((n & 0x3FFF) << 16) | flags)
        return True

    # ---- mem32 -----------------------------------------------------------------------------

    def _out(self, v):
        v &= 0xFFFFFFFF
        if self.signed and v & 0x80000000:
            return v - 0x100000000
        return v

    def __getitem__(self, addr):
        self.reads += 1
        off = addr - self.base
        if off == 0x64:
            return self._out(0x87654321)
        if off == 0x84:
            return 1 if self.pmt_ready else 0
        if not self.pmt_ready:
            self._bad("access before READY")
        if 0 <= off < 0x20:
            if not self.rx_data:
                self._bad("RX data FIFO read while empty")
                return 0
            return self._out(self.rx_data.pop(0))
        if off == 0x40:
            if not self.rx_status:
                self._bad("RX status FIFO read while empty")
                return 0
            return self._out(self.rx_status.pop(0))
        if off == 0x48:
            if not self.tx_status:
                self._bad("TX status FIFO read while empty")
                return 0
            return self._out(self.tx_status.pop(0))
        if off == 0x50:
            return ID_REV
        if off == 0x74:
            if self.srst_left:
                self.srst_left -= 1
                if not self.srst_left:
                    self._power_on()
                    return self.hw_cfg
                return self.hw_cfg | 1
            return self.hw_cfg
        if off == 0x7C:
            return (len(self.rx_status) << 16) | (len(self.rx_data) * 4)
        if off == 0x80:
            free = 4608 - self.tx_fifo_bytes - 4 * len(self.tx_words)
            return (min(len(self.tx_status), 255) << 16) | max(free, 0)
        if off == 0xA0:
            v, self.rx_drop = self.rx_drop, 0
            return v
        if off == 0xA4:
            return self._out(self.csr_cmd)
        if off == 0xA8:
            return self._out(self.csr_data)
        regs = {0x54: self.irq_cfg, 0x58: self.int_sts, 0x5C: self.int_en,
                0x6C: self.rx_cfg, 0x70: self.tx_cfg}
        if off in regs:
            return self._out(regs[off])
        self._bad("read of unknown register 0x%02x" % off)
        return 0

    def __setitem__(self, addr, value):
        self.writes += 1
        off = addr - self.base
        v = value & 0xFFFFFFFF
        if not self.pmt_ready:
            self._bad("access before READY")
        if 0x20 <= off < 0x40:
            self._tx_push(v)
        elif off == 0x74:
            if v & 1:
                self.srst_left = self.reset_reads
                if not self.srst_left:
                    self._power_on()
            else:
                if not v & 0x00100000:
                    self._bad("HW_CFG written without MBO")
                self.hw_cfg = v & 0x003F3000 | 0x00100000
        elif off == 0x6C:
            if v & 0x8000:
                self.rx_data = []
                self.rx_status = []
            self.rx_cfg = v & 0xCFFF1FF0 & ~0x8000
        elif off == 0x70:
            if v & 0x8000:
                self.tx_status = []
            self.tx_cfg = v & 6
        elif off == 0x58:
            self.int_sts &= ~v
        elif off == 0x5C:
            self.int_en = v
        elif off == 0x54:
            self.irq_cfg = v & 0x111
        elif off == 0xA4:
            self._csr(v)
        elif off == 0xA8:
            self.csr_data = v
        else:
            self._bad("write to 0x%02x" % off)

    # ---- MAC CSRs and the PHY ----------------------------------------------------------------

    def _csr(self, v):
        if not v & 0x80000000:
            self.csr_cmd = v
            return
        index = v & 0xFF
        self.csr_cmd = v & 0x400000FF  # busy clears at once
        if v & 0x40000000:
            if index == 1:
                self.csr_data = self.mac_cr
            elif index == 2:
                self.csr_data = self.mac[4] | (self.mac[5] << 8)
            elif index == 3:
                m = self.mac
                self.csr_data = m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)
            elif index == 6:
                self.csr_data = self.mii_acc
            elif index == 7:
                self.csr_data = self.mii_data
            else:
                self._bad("read of MAC CSR %d" % index)
            return
        d = self.csr_data
        if index == 1:
            self.mac_cr = d
        elif index == 2:
            self.mac = self.mac[:4] + bytes((d & 0xFF, (d >> 8) & 0xFF))
        elif index == 3:
            self.mac = bytes((d & 0xFF, (d >> 8) & 0xFF, (d >> 16) & 0xFF,
                              (d >> 24) & 0xFF)) + self.mac[4:]
        elif index == 6:
            self.mii_acc = d & 0xFFC2
            reg = (d >> 6) & 0x1F
            if (d >> 11) & 0x1F != 1:
                self._bad("MII access to PHY address %d" % ((d >> 11) & 0x1F))
            if d & 2:
                if reg == 0 and self.mii_data & 0x8000:
                    self.phy = {0: 0x3000, 1: 0x782D, 4: 0x01E1}
                elif reg in (0, 4):
                    self.phy[reg] = self.mii_data
                else:
                    self._bad("PHY write to register %d" % reg)
            else:
                self.mii_data = self.phy.get(reg, 0)
        elif index == 7:
            self.mii_data = d & 0xFFFF
        else:
            self._bad("write of MAC CSR %d" % index)

    # ---- TX FIFO ---------------------------------------------------------------------------

    def _tx_push(self, v):
        if not self.tx_cfg & 2:
            self._bad("TX data written with TX_ON off")
        if self.tx_fifo_bytes + 4 * (len(self.tx_words) + 1) > 4608:
            self._bad("TX data FIFO overflow")
            return
        if self.tx_state == 0:
            if v & ~0x831F37FF or (v & 0x3000) != 0x3000:
                self._bad("TX command A 0x%08x" % v)
            self.tx_left = v & 0x7FF
            self.tx_words = [v]
            self.tx_state = 1
        elif self.tx_state == 1:
            self.tx_len = v & 0x7FF
            if self.tx_len != self.tx_left:
                self._bad("TX command B length %d, A says %d" % (self.tx_len, self.tx_left))
            self.tx_words.append(v)
            self.tx_b = v
            self.tx_state = 2
            if not self.tx_left:
                self._tx_done()
        else:
            self.tx_words.append(v)
            self.tx_left -= 4
            if self.tx_left <= 0:
                self._tx_done()

    def _tx_done(self):
        out = bytearray()
        for w in self.tx_words[2:]:
            out += bytes((w & 0xFF, (w >> 8) & 0xFF, (w >> 16) & 0xFF, (w >> 24) & 0xFF))
        frame = bytes(out[:self.tx_len])
        if self.tx_drain:
            self.sent.append(frame)
        else:
            self.tx_fifo_bytes += 4 * len(self.tx_words)
            self.held = getattr(self, "held", []) + [frame]
        self.tx_words = []
        self.tx_state = 0
        self.tx_status.append((self.tx_b & 0xFFFF0000) | self.tx_status_flags)

    def drain(self):
        """Frames held in the TX FIFO (tx_drain False) go out now."""
        self.sent.extend(getattr(self, "held", []))
        self.held = []
        self.tx_fifo_bytes = 0
