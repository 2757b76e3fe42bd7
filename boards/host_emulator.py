# A "board" for host runs: the W5500 emulator (tools/w5500emu.py) instead of machine, so
# code written for boards runs unchanged on a PC. SPDX-License-Identifier: MIT
#
#   from boards.host_emulator import link
#   net = Stack(link(), ip="10.0.0.2")                # the emulated chip, its wire in memory
#   net = Stack(link(ifname="veth1"), ip="10.0.0.2")  # its wire bridged to a veth (root)
#
# link() returns the driver itself (a W5500) with the emulated chip as link.emu;
# link(ifname=...) returns a tools.w5500emu.EmulatedW5500Link (.driver, .emu, .bridge).

from stack.link.w5500 import W5500

SPI_HZ = 20_000_000  # notional: the emulator has no clock


def link(mac=None, ifname=None, seed=1):
    """A ready W5500 link on an emulated chip (bridged to interface ifname if given)."""
    from tools.w5500emu import EmulatedW5500Link, W5500Emulator

    if ifname is not None:
        return EmulatedW5500Link(ifname, mac=mac, seed=seed)
    emu = W5500Emulator(seed=seed)
    drv = W5500(emu, emu.cs, rst=emu.rst, int_pin=emu.int, mac=mac)
    drv.emu = emu
    return drv
