# Virtual board: the stack on an AF_PACKET link to a Linux interface (MicroPython unix port).
# SPDX-License-Identifier: MIT
#
#     from boards import host_packet
#     link = host_packet.link()        # the interface config.IFACE names (default "veth0")
#
# The host stand-in for a W5500 board: firmware/main.py runs unchanged on it, so deploy,
# the REPL tools and the packet capture are tested without hardware (host_tests/vboard.py
# runs it in a network namespace, on a veth whose other end Linux uses). Needs root or
# CAP_NET_RAW, and `ip netns exec` (which remounts /sys, where the port finds ifindex).
# Compiled without -march: its .mpy files are portable bytecode, viper code ships as source.

NAME = "host_packet"
IFACE = "veth0"  # when neither the caller nor config.py names one


def link(mac=None, iface=None):
    """An Ethernet link on `iface` (else config.IFACE, else IFACE); mac None: random."""
    if iface is None:
        try:
            import config

            iface = getattr(config, "IFACE", None)
        except ImportError:
            pass
    from stack.link.packet import Packet

    return Packet(iface or IFACE, mac=mac)
