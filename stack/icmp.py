# ICMP (RFC 792, RFC 1122 3.2.2): echo replies, and destination unreachable for TCP.
# SPDX-License-Identifier: MIT

from micropython import const

ECHO_REPLY = const(0)
DEST_UNREACH = const(3)
ECHO_REQUEST = const(8)
CODE_PROTO_UNREACH = const(2)
CODE_PORT_UNREACH = const(3)
