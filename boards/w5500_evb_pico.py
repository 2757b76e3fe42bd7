# WIZnet W5500-EVB-Pico (RP2040; the W5500-EVB-Pico2/RP2350 has the same pins): our W5500
# link on its on-board chip. SPDX-License-Identifier: MIT
#
#   from boards.w5500_evb_pico import link
#   net = Stack(link(), ip="192.168.1.50", gateway="192.168.1.1")
#
# Pins from MicroPython's ports/rp2/boards/W5500_EVB_PICO/mpconfigboard.h (WIZnet's docs
# agree); see boards/README.md. The rp2 port's SPI clock is at most clk_peri / 2, and
# clk_peri is 48 MHz by default, so a 20 MHz request gives 12 MHz: print(spi) shows the
# real rate; machine.freq(f, f) sets clk_peri = clk_sys and lifts that limit (W5500.md 5).
# INTn is wired: recv_into() skips the SPI bus while it is high, and stack/aio.py's driver
# sleeps until it falls (link.irq(): Pin.irq sets a ThreadSafeFlag) instead of polling.

from machine import SPI, Pin, unique_id

from stack.link.w5500 import W5500

SPI_ID = 0
SCK = 18
MOSI = 19
MISO = 16
CS = 17
RST = 20
INT = 21
LED = 25
SPI_HZ = 20_000_000  # what MicroPython's own W5500-EVB-Pico build requests


def default_mac():
    """A locally administered MAC that stays the same across boots: 02 + unique_id[-5:]."""
    return b"\x02" + bytes(unique_id()[-5:])


def spi():
    # Mode 0, MSB first (DS p.13). rp2 uses DMA for transfers of 32 bytes or more.
    return SPI(SPI_ID, baudrate=SPI_HZ, polarity=0, phase=0, bits=8, sck=Pin(SCK),
               mosi=Pin(MOSI), miso=Pin(MISO))


def link(mac=None, wait_link_ms=3000):
    """A ready W5500 link: reset, version checked, socket 0 open in MACRAW mode.

    Waits up to wait_link_ms for the PHY to report a link (autonegotiation takes a while
    after reset), then returns anyway; link.link_up() tells later."""
    return W5500(spi(), Pin(CS, Pin.OUT, value=1), rst=Pin(RST, Pin.OUT, value=1),
                 int_pin=Pin(INT, Pin.IN, Pin.PULL_UP), mac=mac or default_mac(),
                 wait_link_ms=wait_link_ms)
