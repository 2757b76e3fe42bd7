# Link specs for host runs: "tun:NAME[@NETNS]", "tap:NAME[@NETNS]", "packet:IFACE",
# "w5500emu:IFACE" -> an open link. Shared by tools/host.py and host_tests/agent.py.
# SPDX-License-Identifier: MIT

SPECS = "tun:NAME[@NETNS], tap:NAME[@NETNS], packet:IFACE or w5500emu:IFACE"


def make_link(spec):
    """Open the link a spec names; the drivers are imported only when asked for (TUN and
    TAP need CPython, so a MicroPython run never imports them)."""
    kind, _, rest = spec.partition(":")
    name, _, netns = rest.partition("@")
    if kind == "tun":
        from stack.link.tun import Tun

        return Tun(name, netns=netns or None)
    if kind == "tap":
        from stack.link.tap import Tap

        return Tap(name, netns=netns or None)
    if kind == "packet":
        from stack.link.packet import Packet

        return Packet(name)
    if kind == "w5500emu":
        # Our W5500 driver on the register-level emulator, bridged to AF_PACKET on IFACE.
        from tools.w5500emu import EmulatedW5500Link

        return EmulatedW5500Link(name)
    raise ValueError("unknown link %r: use %s" % (spec, SPECS))
