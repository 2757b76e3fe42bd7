# Board configuration, read by main.py at every reset (deployed as /config.py).
# SPDX-License-Identifier: MIT
#
# Edit, then `make deploy BOARD=... PORT=...` (BOARD, when given, overrides the line below).

BOARD = "w5500_evb_pico"  # a file in boards/: w5500_evb_pico, esp32_w5500, host_packet, ...
MAC = None  # 6 bytes, or None for the board's default (host_packet: a random local one)
IFACE = "veth0"  # host_packet only: the Linux interface it runs on

# Addressing: IP = None takes a lease by DHCP (address, mask, gateway, DNS servers) and the
# board prints it at boot; or a static address such as "192.168.0.50" with PREFIX and
# GATEWAY ("192.168.0.1" to reach other networks).
IP = None
PREFIX = 24
GATEWAY = None
HOSTNAME = "board"  # sent to the DHCP server, and answered as board.local (mDNS)

SERVICE = "http"  # echo, discard, chargen or http (stack/services.py)
PORT = None  # None: the service's usual port (7, 9, 19, 80)
# More Stack() keywords. These fit the stack loaded from .mpy files (as `make deploy` puts
# it) with the HTTP service on an RP2040's 190 KB heap: 4 connections with 2 KB rings, about
# 32 KB of pools. Stack()'s own defaults (8 connections, 4 KB rings: about 83 KB) are for
# frozen firmware or bigger heaps. README, "Memory (measured)".
STACK = {"tcbs": 4, "rx_buf": 2048, "tx_buf": 2048}

CAPTURE = 0  # bytes of packet-capture ring from boot (0: off; or debug.capture() later)
TRACE = False  # print every TCP segment as an RFC-figure row
