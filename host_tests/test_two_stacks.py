# Two stacks, many faults: 1 MiB each way through seeded loss, duplication, reordering and
# corruption, for every close mode; then every TCB and buffer is back in its pool.
# CPython only (hashlib.sha256 over MiBs is slow elsewhere). MIT licence.

import hashlib
import random

import pytest
from pair import Pair, Pump

from stack import SHUT_WR, port

FAULTS = {"loss": 0.03, "dup": 0.02, "reorder": 0.03, "corrupt": 0.02}
MIB = 1 << 20
MODES = ("active", "passive", "simultaneous", "half-close", "abort", "unread")


def _data(seed, n):
    return random.Random(seed).randbytes(n)


def _exchange(pair, c, s, n, seed):
    up = Pump(c, s, _data(seed, n))
    down = Pump(s, c, _data(seed + 1, n))
    pair.run_until(lambda: (up.move(), down.move(), up.done() and down.done())[-1],
                   max_steps=3_000_000, what="1 MiB each way")
    for p in (up, down):
        assert hashlib.sha256(p.got).digest() == hashlib.sha256(p.data).digest()
    return up, down


def _eof(sock):
    try:
        return sock.recv(100) == b""
    except OSError as e:
        return e.args[0] != port.EAGAIN


def _reset(sock):
    """True once sock reports ECONNRESET (sending a byte to provoke it if need be)."""
    for call in (lambda: sock.recv(100), lambda: sock.send(b"?")):
        try:
            call()
        except OSError as e:
            if e.args[0] == port.ECONNRESET:
                return True
    return False


def _settle(pair, msl_ms):
    pair.run_until(lambda: not pair.a.connections() and not [
        x for x in pair.b.connections() if x[4] != "LISTEN"], max_steps=200_000,
        what="every connection closed and TIME-WAIT expired")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed,ethernet", [(1, False), (2, False), (3, True)])
def test_transfer_and_close_under_faults(mode, seed, ethernet):
    msl = 500
    pair = Pair(seed=seed, faults=FAULTS, msl_ms=msl, rx_buf=8192, tx_buf=8192,
                ethernet=ethernet)
    c, s, srv = pair.connect()
    if mode == "half-close":
        # The client finishes sending and shuts down while the server is still sending.
        up = Pump(c, s, _data(seed, MIB))
        down = Pump(s, c, _data(seed + 1, MIB))
        pair.run_until(lambda: (up.move(), down.move(), up.sent == MIB)[-1],
                       max_steps=3_000_000, what="client sent")
        c.shutdown(SHUT_WR)
        pair.run_until(lambda: (up.move(), down.move(), up.eof and down.done())[-1],
                       max_steps=3_000_000, what="server got EOF, client all data")
        assert up.done() and hashlib.sha256(up.got).digest() == hashlib.sha256(
            up.data).digest()
        assert hashlib.sha256(down.got).digest() == hashlib.sha256(down.data).digest()
        assert c.state in ("FIN-WAIT-2", "FIN-WAIT-1")
        s.close()
        pair.run_until(lambda: _eof(c), what="client EOF")
        c.close()
    else:
        _exchange(pair, c, s, MIB, seed)
        if mode == "active":
            c.close()
            pair.run_until(lambda: _eof(s), what="server EOF")
            s.close()
        elif mode == "passive":
            s.close()
            pair.run_until(lambda: _eof(c), what="client EOF")
            c.close()
        elif mode == "simultaneous":
            c.close()
            s.close()
        elif mode == "abort":
            c.abort()
            pair.run_until(lambda: _reset(s), what="server sees ECONNRESET")
            s.close()
        elif mode == "unread":
            s.send(b"never read")
            pair.run_until(lambda: c.poll_flags() & 1, what="data waiting at the client")
            c.close()  # unread data: RST
            pair.run_until(lambda: _reset(s), what="server sees ECONNRESET")
            s.close()
            assert pair.a.stats.tcpRstsUnreadData == 1
    srv.close()
    _settle(pair, msl)
    assert pair.pools_full()
    for net in (pair.a, pair.b):
        assert net.tw.used == 0
        for tcb in net.tcbs:
            assert tcb.rx_count == 0 and tcb.tx_count == 0 and tcb.asm == 0
            # Fields live in tcb.v; an attribute written by mistake (tcb.state = ...) would
            # shadow the read-only name and silently go stale.
            assert set(vars(tcb)) == {"stack", "v", "rxb", "txb", "parent", "owner"}, (
                vars(tcb).keys())
            assert tcb.parent is None and tcb.owner is None  # back in the pool
    moved = pair.a.stats.tcpRetransSegs + pair.b.stats.tcpRetransSegs
    assert moved > 0, "faults were injected, so something must have been retransmitted"
    faults = sum(l.dropped + l.corrupted + l.duplicated + l.reordered for l in pair.links)
    assert faults > 50


def test_two_thousand_connections_small_time_wait_table():
    pair = Pair(tw_slots=4, msl_ms=30000, tcbs=4, jump=False)  # TIME-WAIT must last
    srv = pair.b.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", 7))
    srv.listen(2)
    for i in range(2000):
        c = pair.a.socket()
        c.setblocking(False)
        try:
            c.connect(("10.0.0.2", 7))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS
        box = []

        def accepted():
            try:
                box.append(srv.accept()[0])
                return True
            except OSError:
                return False

        pair.run_until(accepted, max_steps=100, what="accept %d" % i)
        s = box[0]
        s.setblocking(False)
        pair.run_until(lambda: c.state == "ESTABLISHED", max_steps=100, what="est %d" % i)
        c.send(b"ping %d" % i)
        pair.run_until(lambda: s.poll_flags() & 1, max_steps=100, what="data %d" % i)
        assert s.recv(100) == b"ping %d" % i
        c.close()  # the client closes first: TIME-WAIT on the client
        pair.run_until(lambda: _eof(s), max_steps=100, what="eof %d" % i)
        s.close()
        pair.run_until(lambda: pair.pools_full(), max_steps=100, what="pool %d" % i)
    assert pair.a.stats.tcpActiveOpens == 2000
    assert pair.b.stats.tcpPassiveOpens == 2000
    assert pair.a.tw.used == 4
    assert pair.a.stats.tcpTimeWaitRecycled == 2000 - 4
    assert pair.a.stats.tcpAttemptFails == 0
