# QEMU's mps2-an385 machine (Cortex-M3) with its emulated SMSC LAN9118: our emulated board.
# SPDX-License-Identifier: MIT
#
#   from boards.qemu_mps2 import link
#   net = Stack(link(), ip=None)                  # DHCP, as firmware/config.py's default
#
# The firmware is bare-metal MicroPython (ports/qemu) built by tools/emuboard.py with stack/
# and this file frozen (firmware/manifest.py). QEMU maps the LAN9118 at 0x40200000 (IRQ 13,
# not used: the link is polled); the real MPS2 board has a LAN9220, software compatible.
# QEMU gives the chip its MAC address (-nic ...,mac=; default 52:54:00:12:34:56) through
# the chip's EEPROM, so link() reads it from the chip unless config.MAC names one.
# See boards/README.md and tools/emuboard.py (run it, put it on a network, deploy to it).

from machine import mem32

from stack.link.lan9118 import LAN9118

NAME = "qemu_mps2"
LAN9118_BASE = 0x40200000


def link(mac=None):
    """A ready LAN9118 link: chip checked, soft reset, PHY up, MAC from the chip or `mac`."""
    return LAN9118(LAN9118_BASE, mac=mac, mem32=mem32, fast=True)
