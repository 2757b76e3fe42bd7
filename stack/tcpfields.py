# The names of a TCB's fields: tcb.snd_una at the REPL, tcp.FIELDS for tests and debugging.
# SPDX-License-Identifier: MIT
#
# tcp.py packs a TCB's fields into one array, tcb.v, indexed by constants; the stack itself
# only indexes it. This table is a module of its own, loaded the first time a field is read
# by name (TCB.__getattr__: the REPL, debug.py, trace.py, tests) or tcp.FIELDS is asked for:
# from .mpy files every module loaded keeps its bytecode and constants on the heap.

# Field names by index (STATE is "state"); host_tests/test_units.py checks them against tcp.py.
FIELDS = (
    "state", "in_use", "orphan", "rip_hi", "rip_lo", "lport", "rport", "snd_hi",
    "snd_lo", "rcv_hi", "rcv_lo", "snd_una", "snd_nxt", "snd_max", "snd_wnd", "max_snd_wnd",
    "snd_wl1", "snd_wl2", "snd_mss", "fin_seq", "rcv_nxt", "rcv_adv", "rx_fin", "rd_shut",
    "rx_unacked", "ack_now", "ended", "so_error", "rexmit_at", "persist_at", "ack_at",
    "fin2_at", "keepalive_at", "retries", "persist_shift", "keepalive_sent", "rto_ms",
    "srtt_ms", "rttvar_ms", "rtt_at", "rtt_seq", "cwnd", "ssthresh", "dupacks", "recover",
    "in_recovery", "nodelay", "keepalive", "rx_head", "rx_count", "rx_size", "tx_head",
    "tx_count", "tx_size", "soft_err", "orphan_at", "cw_since", "index", "asm",
)


def field(tcb, name):
    """tcb.<name>: the field of that name, read-only; AttributeError if there is none."""
    try:
        x = tcb.v[FIELDS.index(name)]
    except ValueError:
        raise AttributeError(name) from None
    # A timer that is off (tcp.OFF) reads None, as "no deadline" does everywhere else.
    return None if x < 0 and (name.endswith("_at") or name == "cw_since") else x
