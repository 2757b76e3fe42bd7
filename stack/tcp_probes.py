# Zero-window persist probes and keepalive probes: the TCB timers (tcp.py's on_timer()) that
# a connection whose peer keeps its window open and talks now and then never fires.
# SPDX-License-Identifier: MIT
#
# A module of its own, loaded when the persist timer (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17
# and 4.2.3.4) or the keepalive timer (RFC 1122 4.2.3.6; off by default) first comes due:
# from .mpy files every module loaded keeps its bytecode on the heap.

from . import port
from .tcp import (CLOSE_WAIT, ESTABLISHED, KEEPALIVE_AT, KEEPALIVE_SENT, OFF, PERSIST_AT,
                  PERSIST_SHIFT, RETRIES, RTO_MS, SND_UNA, SND_WND, SOFT_ERR, STATE)
from .tcpseg import ACK


def on_persist(tcb, now):
    """The persist timer of tcb came due (TCB._on_persist)."""
    v = tcb.v
    st = tcb.stack
    v[PERSIST_AT] = OFF
    if v[SND_WND]:
        # A window too small for sender SWS avoidance, and nothing moved for an RTO:
        # send what fits now (the override timer, RFC 1122 4.2.3.4). The segment is
        # data in flight: the retransmission timer takes over.
        tcb.output(now, True)
        return
    if v[RETRIES] >= st.cfg.retries:
        # Unanswered zero-window probes count as retransmissions: the peer is gone.
        st.stats.tcpPersistAborts += 1
        tcb._give_up()
        return
    v[RETRIES] += 1
    # Zero-window probe: an old sequence number (snd_una - 1), no data, which any TCP
    # answers with an ACK carrying its current window (as Linux's tcp_xmit_probe_skb).
    st.stats.tcpPersistProbes += 1
    tcb._emit(ACK, v[SND_UNA] - 1, 0)
    v[PERSIST_SHIFT] += 1
    wait = v[RTO_MS] << v[PERSIST_SHIFT] if v[PERSIST_SHIFT] < 7 else 1 << 30
    cap = st.cfg.rto_max_ms
    v[PERSIST_AT] = port.ticks_add(now, wait if wait < cap else cap)


def on_keepalive(tcb, now):
    """The keepalive timer of tcb came due (TCB._on_keepalive)."""
    v = tcb.v
    cfg = tcb.stack.cfg
    if v[STATE] != ESTABLISHED and v[STATE] != CLOSE_WAIT:
        v[KEEPALIVE_AT] = OFF
        return
    if v[KEEPALIVE_SENT] >= cfg.keepalive_probes:
        tcb.stack.stats.tcpKeepaliveDrops += 1
        tcb.stack.stats.tcpEstabResets += 1
        tcb._drop(v[SOFT_ERR] or port.ETIMEDOUT)
        return
    v[KEEPALIVE_SENT] += 1
    tcb._emit(ACK, v[SND_UNA] - 1, 0)
    v[KEEPALIVE_AT] = port.ticks_add(now, cfg.keepalive_intvl_ms)
