# Every capacity and default timing in one place (DESIGN.md section 4 gives the keywords).
# SPDX-License-Identifier: MIT

from micropython import const

# Pools, sized once by Stack(...).
TCBS = const(8)
RX_BUF = const(4096)
TX_BUF = const(4096)
TW_SLOTS = const(8)
ASSEMBLER_RANGES = const(4)  # out-of-order ranges held per connection, as smoltcp
MAX_BACKLOG = const(16)
UDP_SOCKETS = const(2)  # UDP sockets for the application (DHCP, DNS, mDNS need none)
UDP_QUEUE = const(2048)  # bytes of datagrams queued per UDP socket (8 a datagram more)

# ARP: cache slots, frames held while resolving (one per entry at most), timers.
ARP_ENTRIES = const(8)
ARP_QUEUE = const(2)
ARP_TIMEOUT_MS = const(300_000)  # a resolved entry is trusted this long (lwIP: 5 min)
ARP_RETRY_MS = const(1000)
ARP_RETRIES = const(3)

# Timing: RFC 6298 / RFC 1122, and Linux where the RFCs leave a choice.
MSL_MS = const(30_000)  # TIME-WAIT lasts 2 x MSL = 60 s, as on Linux
RTO_INITIAL_MS = const(1000)
RTO_MIN_MS = const(1000)
RTO_MAX_MS = const(60_000)
ACK_DELAY_MS = const(200)
FIN_TIMEOUT_MS = const(60_000)  # orphaned FIN-WAIT-2, like tcp_fin_timeout
# Everything an orphan (closed by the application) may still take, from close() on: its
# last data, FIN and FIN-WAIT-2 together. Linux bounds orphans by tcp_orphan_retries.
ORPHAN_TIMEOUT_MS = const(120_000)
# A connection the peer has finished (CLOSE-WAIT) with nothing left to send, this long,
# may be reset when the TCB pool is full and a new connection needs a block: the
# application may have dropped its socket unclosed (MicroPython sockets have no finaliser).
CLOSE_WAIT_RECYCLE_MS = const(60_000)
SYN_RETRIES = const(6)
RETRIES = const(15)  # data/FIN retransmissions before ETIMEDOUT, like tcp_retries2
KEEPALIVE_INTVL_MS = const(75_000)
KEEPALIVE_PROBES = const(9)
CHALLENGE_ACKS_PER_S = const(10)  # RFC 5961 section 7 rate limit, stack-wide

# Work done by one poll(): frames read before timers run (keeps poll() latency bounded).
FRAMES_PER_POLL = const(32)

EPHEMERAL_LOW = const(49152)
EPHEMERAL_HIGH = const(65535)
