# ESP32 + W5500 module on HSPI (and the ESP32-S3 variant): our W5500 link.
# SPDX-License-Identifier: MIT
#
#   from boards.esp32_w5500 import link
#   net = Stack(link(), ip="192.168.1.50", gateway="192.168.1.1")
#   net = Stack(link(variant="esp32s3", rst=None), ...)        # ESP32-S3 wiring
#
# ESP32 wiring: SPI(1) = HSPI on its IO_MUX pins (so up to 80 MHz is possible): SCLK 14,
# MOSI 13, MISO 12, CS 15, INT 4 (ESP-IDF's ethernet_init Kconfig defaults) and RST 5
# (Arduino-ESP32's ETH_W5500_Arduino_SPI). ESP32-S3: the MicroPython docs' example, SPI(1)
# SCK 12, MOSI 13, MISO 14, CS 10, INT 11; it names no RST pin, so RST is a parameter.
# See boards/README.md. Do not also create network.LAN(phy_type=PHY_W5500) on this chip:
# that is ESP-IDF's own MACRAW driver.
# INTn is wired: recv_into() skips the SPI bus while it is high, and stack/aio.py's driver
# sleeps until it falls (link.irq(): Pin.irq sets a ThreadSafeFlag) instead of polling.

from machine import SPI, Pin, unique_id

from stack.link.w5500 import W5500

SPI_ID = 1  # HSPI on the ESP32, SPI2 on the S3
SPI_HZ = 20_000_000  # MicroPython's network.LAN default; ESP-IDF's example uses 16 MHz
# variant: (sck, mosi, miso, cs, int, rst)
PINS = {
    "esp32": (14, 13, 12, 15, 4, 5),
    "esp32s3": (12, 13, 14, 10, 11, None),
}


def default_mac():
    """A locally administered MAC that stays the same across boots: 02 + unique_id[-5:]."""
    return b"\x02" + bytes(unique_id()[-5:])


def link(mac=None, variant="esp32", rst=-1, spi_hz=SPI_HZ, wait_link_ms=3000):
    """A ready W5500 link. rst: a GPIO number for RSTn, None if not wired, -1 the default."""
    sck, mosi, miso, cs, intn, rst_default = PINS[variant]
    if rst == -1:
        rst = rst_default
    spi = SPI(SPI_ID, baudrate=spi_hz, polarity=0, phase=0, bits=8, sck=Pin(sck),
              mosi=Pin(mosi), miso=Pin(miso))
    return W5500(spi, Pin(cs, Pin.OUT, value=1),
                 rst=None if rst is None else Pin(rst, Pin.OUT, value=1),
                 int_pin=Pin(intn, Pin.IN, Pin.PULL_UP), mac=mac or default_mac(),
                 wait_link_ms=wait_link_ms)
