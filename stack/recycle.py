# Making room in a full pool: the oldest half-open connection (SYN flood) or the oldest
# forgotten CLOSE-WAIT connection gives its TCB to a new one.
# SPDX-License-Identifier: MIT
#
# A module of its own, loaded the first time a backlog or the TCB pool is full (iface.py's
# process_listen, sock.py's connect): from .mpy files every module loaded keeps all its
# bytecode on the heap, and a server that never runs out of room never needs this.

from . import port
from .tcp import CLOSE_WAIT, CW_SINCE, IN_USE, STATE, SYN_RECEIVED, TX_COUNT


def embryonic(net, listener):
    """Make room for a new SYN: forget the oldest half-open connection (SYN-RECEIVED,
    our SYN,ACK unanswered) of listener, or of any listener if None. True if one went.

    A SYN flood fills backlogs and the TCB pool with connections from addresses that
    never answer; without this, four spoofed SYNs locked a tcbs=4 board's clients out
    for two minutes. A real client's handshake takes one round trip, so under a flood
    of N SYNs a second a backlog of B still lets clients through whose round trip is
    under B/N seconds. No RST: the source is most likely forged (a real client's late
    ACK gets one then, and it retries).
    """
    for lst in net.listeners if listener is None else (listener,):
        for tcb in lst._backlog:  # oldest first
            if tcb.v[STATE] == SYN_RECEIVED:
                net.stats.tcpSynFloodRecycled += 1
                tcb.drop_embryonic()
                return True
    return False


def close_wait(net, now):
    """Make room when the TCB pool is full: reset the connection longest in CLOSE-WAIT
    if the peer finished over close_wait_recycle_ms ago and nothing waits to be sent.
    True if one went.

    MicroPython sockets have no finaliser: an application that drops a socket without
    closing it (microdot 2.7.0 does, when a request read fails with an error it does
    not know, e.g. a TLS record cut by a FIN) would hold its block for ever, and a
    client could fill the pool that way. Its socket, if still used, raises ECONNABORTED.
    """
    limit = net.cfg.close_wait_recycle_ms
    if limit is None:
        return False
    oldest = None
    age = limit - 1
    for tcb in net.tcbs:
        v = tcb.v
        if (v[IN_USE] and v[STATE] == CLOSE_WAIT and not v[TX_COUNT]
                and v[CW_SINCE] >= 0 and port.ticks_diff(now, v[CW_SINCE]) > age):
            oldest = tcb
            age = port.ticks_diff(now, v[CW_SINCE])
    if oldest is None:
        return False
    net.stats.tcpCloseWaitRecycled += 1
    oldest.abort_with(now, port.ECONNABORTED)
    owner = oldest.owner
    if owner is not None:
        owner._lose(oldest)  # the socket lets go: the block is free for the new one
    return True
