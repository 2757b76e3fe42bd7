# REPL debugging helpers (stack/debug.py): netstat, stats, trace, capture ring. MIT licence.
# A core test module: runs on CPython (pytest, run_tests.py) and on MicroPython unix and
# WebAssembly (listed in host_tests/__init__.py).

from pair import Pair

from stack import debug, port
from stack.debug import Capture

_HDR = 8  # debug.py's record header (a private const there)


def _got(sock, want):
    """A run_until() condition: sock has received `want` (b"" for EOF)."""
    got = bytearray()

    def cond():
        try:
            data = sock.recv(100)
        except OSError as e:
            if e.args[0] != port.EAGAIN:
                raise
            return False
        got.extend(data)
        return bytes(got) == want if want else not data

    return cond


def _lines(fn, *args, **kw):
    out = []
    fn(*args, out=out.append, **kw)
    return out


def _established(ethernet=False, jump=True):
    p = Pair(ethernet=ethernet, tw_slots=4, jump=jump)
    c, s, srv = p.connect(80)
    return p, c, s, srv


def _row(lines, state):
    for line in lines[2:]:
        if line.split()[2] == state:
            return line.split()
    raise AssertionError("no %s row in %r" % (state, lines))


def test_netstat_established_wire_sequence_numbers():
    p, c, s, srv = _established()
    c.send(b"hello")
    p.run_until(_got(s, b"hello"), what="data")
    tcb = c._tcb
    p.run_until(lambda: tcb.snd_una == tcb.snd_nxt, what="delayed ACK")
    lines = _lines(debug.netstat, p.a)
    # 8 TCBs on a host; fewer under the "board" fixture profile (sizing.py)
    assert lines[0].startswith("TCBs 1/%d in use, TIME-WAIT 0/4" % len(p.a.tcbs)), lines[0]
    row = _row(lines, "ESTABLISHED")
    assert row[0].startswith("10.0.0.1:") and row[1] == "10.0.0.2:80", row
    una = (tcb.snd_hi << 16 | tcb.snd_lo) + tcb.snd_una
    assert int(row[3]) == una & 0xFFFFFFFF
    assert int(row[4]) == int(row[3])  # all acknowledged
    assert int(row[5]) == ((tcb.rcv_hi << 16 | tcb.rcv_lo) + tcb.rcv_nxt) & 0xFFFFFFFF
    assert int(row[9]) == tcb.rto_ms
    # The server side shows its listener and its connection.
    lines = _lines(debug.netstat, p.b)
    assert _row(lines, "LISTEN")[0] == "0.0.0.0:80"
    srow = _row(lines, "ESTABLISHED")
    assert srow[3] == row[5] and srow[5] == row[3]  # each side's numbers, seen from the other


def test_netstat_shows_armed_timers_and_queues():
    p, c, s, srv = _established()
    c.send(b"x" * 100)
    p.a.poll()  # sent, not yet acknowledged: the retransmission timer runs
    row = _row(_lines(debug.netstat, p.a), "ESTABLISHED")
    assert row[10] == "100"  # sendq
    assert row[12].startswith("rexmit:"), row
    assert 0 < int(row[12].split(":")[1]) <= 1000


def test_netstat_time_wait_record():
    p, c, s, srv = _established(jump=False)  # 1 ms steps: never jump to the 2MSL expiry
    c.close()
    p.run_until(_got(s, b""), what="EOF")
    s.close()
    p.run_until(lambda: p.a.tw.used == 1, what="TIME-WAIT")
    lines = _lines(debug.netstat, p.a)
    assert "TIME-WAIT 1/4" in lines[0]
    row = _row(lines, "TIME-WAIT")
    assert row[1] == "10.0.0.2:80"
    assert row[12].startswith("2msl:") and 0 < int(row[12][5:]) <= 60000


def test_stats_nonzero_first_then_all():
    p, c, s, srv = _established()
    lines = _lines(debug.stats, p.a)
    names = [line.split()[0] for line in lines]
    assert "tcpActiveOpens" in names and "tcpPassiveOpens" not in names
    assert all(int(line.split()[1]) for line in lines)
    every = _lines(debug.stats, p.a, all=True)
    assert len(every) >= len(p.a.stats.items())
    assert every[:len(lines)] == lines  # non-zero first
    assert every[-1].split()[1] == "0"


def test_trace_on_and_off():
    p, c, s, srv = _established()
    rows = []
    debug.trace(p.b, out=rows.append)
    c.send(b"hey")
    p.run_until(_got(s, b"hey"), what="data")
    for _ in range(300):
        p.step()  # the delayed ACK goes out
    assert any("<DATA=3>" in r and "ESTABLISHED" in r for r in rows), rows
    debug.trace(p.b, False)
    n = len(rows)
    c.send(b"more")
    p.run_until(_got(s, b"more"), what="data")
    assert len(rows) == n and p.b.tracer is None


def _frames(cap):
    return [(ts, d, bytes(cap.buf[o:o + n])) for ts, d, o, n in cap.records()]


def test_capture_ring_keeps_newest_in_order():
    now = [1000]
    cap = Capture(200, 1, lambda: now[0])
    src = bytearray(40)
    for i in range(30):
        n = 5 + i % 17
        for j in range(n):
            src[j] = i
        now[0] += 1
        cap.record(i & 1, src, n)
        got = _frames(cap)
        assert got[-1] == (now[0], i & 1, bytes([i]) * n)
        # Oldest first, consecutive, none cut.
        firsts = [f[2][0] for f in got]
        assert firsts == list(range(i - len(got) + 1, i + 1)), firsts
        assert all(f[2] == bytes([f[2][0]]) * len(f[2]) for f in got)
        # Once full, the newest records kept fill at least size - 2 * (header + len(buf))
        # bytes, less one record cut at the edge (see Capture).
        if cap.lost:
            assert sum(_HDR + len(f[2]) for f in got) >= 200 - 2 * (_HDR + 40) - (_HDR + 21)
    assert cap.frames == 30 and cap.lost == 30 - cap.count and cap.skipped == 0


def test_capture_too_large_buffer_is_skipped():
    cap = Capture(64, 1, lambda: 0)
    cap.record(0, bytearray(100), 10)
    assert cap.count == 0 and cap.skipped == 1


def test_capture_records_both_directions_on_ethernet():
    p = Pair(ethernet=True)
    cap = debug.capture(p.a, size=16384)
    c, s, srv = p.connect(80)
    c.send(b"ping")
    p.run_until(_got(s, b"ping"), what="data")
    frames = _frames(cap)
    ins = [f for f in frames if f[1] == 0]
    outs = [f for f in frames if f[1] == 1]
    assert outs[0][2][12:14] == b"\x08\x06"  # our ARP request for 10.0.0.2 came first
    assert any(f[2][12:14] == b"\x08\x06" for f in ins)  # its reply
    syn = [f for f in outs if f[2][12:14] == b"\x08\x00" and f[2][14 + 20 + 13] == 0x02]
    assert len(syn) == 1
    assert any(b"ping" in f[2] for f in outs)
    # Text dump: header, one line per frame, END.
    lines = _lines(debug.dump, p.a)
    assert lines[0].startswith("CAPTURE linktype=1 ") and lines[-1] == "END"
    assert len(lines) == len(frames) + 2
    ts, direction, hexdata = lines[1].split()
    assert direction == "out" and hexdata.startswith("ffffffffffff")
    # Off: nothing more recorded, the ring stays for dump().
    debug.capture(p.a, False)
    k = cap.count
    c.send(b"more")
    p.run_until(_got(s, b"more"), what="data")
    assert cap.count == k and p.a.capture is None
    assert debug.capture(p.a, size=16384) is cap and cap.count == 0  # same ring, cleared


def test_capture_ip_only_link_linktype():
    p = Pair()
    debug.capture(p.b, size=4096)
    p.connect(80)
    lines = _lines(debug.dump, p.b)
    assert lines[0].startswith("CAPTURE linktype=228 ")
    assert lines[1].split()[1] == "in" and lines[1].split()[2].startswith("45")


def test_capture_allocates_nothing_per_frame():
    try:
        import micropython

        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    except (ImportError, AttributeError):
        return  # CPython or a port without heap_lock: nothing to measure
    cap = Capture(4096, 1, port.ticks_ms)
    buf = bytearray(1514)
    mv = memoryview(buf)[:60]
    cap.record(0, buf, 60)
    lock()
    try:
        for i in range(200):
            cap.record(i & 1, buf, 60 + i)
            cap.record(1, mv, 60)
    finally:
        unlock()
    assert cap.frames == 401


def test_netstat_shows_address_dhcp_state_and_udp():
    from stack import AF_INET, SOCK_DGRAM, Stack
    from stack.link.pipe import pipe

    _, end = pipe(mtu=1500, macs=(b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"))
    net = Stack(end, clock=lambda: 0, hostname="b7")
    net.active(True)  # no address: DHCP starts
    net.poll()
    u = net.socket(AF_INET, SOCK_DGRAM)
    u.bind(("0.0.0.0", 5005))
    lines = _lines(debug.netstat, net)
    assert lines[1] == "IPv4 0.0.0.0/24, DHCP SELECTING", lines[1]
    assert _row(lines, "UDP")[0] == "0.0.0.0:5005"
    assert [r.split()[0] for r in lines if "service" in r] == ["0.0.0.0:68", "0.0.0.0:5353"]
    net.active(False)
    net.set_address(b"\x0a\x00\x00\x07", 24)
    assert _lines(debug.netstat, net)[1] == "IPv4 10.0.0.7/24"
