# Link drivers: objects with mtu, mac, recv_into(buf) -> int, send(buf) (DESIGN.md 4).
# SPDX-License-Identifier: MIT
