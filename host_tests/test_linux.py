# Our stack against the Linux kernel's TCP, in namespaces the tests create and remove:
# connections both ways, 8 MiB each way with SHA-256, every close mode, resets, TIME-WAIT
# on either side, 500 short connections. See linux.py for the setups. MIT licence.

import socket
import struct
import time

import pytest
from linux import OUR_IP, SETUPS, LINUX_IP, Setup, linux_xfer, pattern_sha, wait_for

MIB8 = 8 << 20


@pytest.fixture(params=SETUPS)
def setup(request):
    s = Setup(request.param)
    yield s
    s.close()


def _accepted(setup, port=80):
    setup.agent.cmd("listen %d" % port)
    lin = setup.connect(port)
    setup.agent.cmd("accept")
    return lin


def test_8mib_each_way_linux_connects_we_close_first(setup):
    """Linux client, our server; our active close: TIME-WAIT here, CLOSED at Linux."""
    lin = _accepted(setup)
    setup.agent.proc.stdin.write("xfer %d\n" % MIB8)
    setup.agent.proc.stdin.flush()
    got = linux_xfer(lin, MIB8)
    reply = setup.agent._line(180)
    assert reply == "ok " + pattern_sha(MIB8), reply  # what we received is intact
    assert got == pattern_sha(MIB8)  # what Linux received is intact
    setup.agent.cmd("close")
    assert lin.recv(10) == b""  # Linux sees EOF
    lin.close()
    setup.agent.cmd("wait_conns TIME-WAIT 5000")
    wait_for(lambda: setup.ss(80) == [], what="Linux CLOSED")
    start = time.monotonic()
    setup.agent.cmd("wait_conns - 5000")  # msl 1000 ms: TIME-WAIT lasts 2 s
    assert 1.0 < time.monotonic() - start < 3.5


def test_8mib_each_way_we_connect_linux_closes_first(setup):
    """Our client, Linux server; Linux closes first: TIME-WAIT at Linux, ours CLOSED."""
    srv = setup.listen(5001)
    setup.agent.cmd("connect %s 5001" % LINUX_IP)
    lin, _ = srv.accept()
    setup.agent.proc.stdin.write("xfer %d\n" % MIB8)
    setup.agent.proc.stdin.flush()
    got = linux_xfer(lin, MIB8)
    assert setup.agent._line(180) == "ok " + pattern_sha(MIB8)
    assert got == pattern_sha(MIB8)
    lin.close()
    assert setup.agent.cmd("recv") == "ok eof"
    setup.agent.cmd("close")
    setup.agent.cmd("wait_conns - 5000")  # LAST-ACK, then CLOSED: no TIME-WAIT here
    wait_for(lambda: setup.ss(5001) == ["TIME-WAIT"], what="Linux TIME-WAIT")
    srv.close()


def test_connect_refused(setup):
    reply = setup.agent.cmd("connect %s 5999" % LINUX_IP, ok=False)
    assert reply == "err ECONNREFUSED", reply


def test_simultaneous_close(setup):
    lin = _accepted(setup)
    setup.agent.cmd("hold")  # our stack stops reading the link
    lin.shutdown(socket.SHUT_WR)  # Linux's FIN waits, unread, on our link
    time.sleep(0.2)
    setup.agent.cmd("close")  # ours leaves before we see theirs: the FINs cross
    setup.agent.cmd("wait_conns TIME-WAIT 5000")
    assert lin.recv(10) == b""
    wait_for(lambda: setup.ss(80) in (["TIME-WAIT"], []), what="Linux TIME-WAIT")
    st = setup.agent.stats()
    assert st["tcpOutSegs"] > 0
    lin.close()


def test_three_way_close_we_answer_fin_with_fin_ack(setup):
    lin = _accepted(setup)
    before = setup.agent.stats()["tcpOutSegs"]
    setup.agent.cmd("close_on_eof")
    lin.shutdown(socket.SHUT_WR)
    assert lin.recv(10) == b""
    setup.agent.cmd("wait_conns - 5000")  # LAST-ACK ended by Linux's ACK
    wait_for(lambda: setup.ss(80) == ["TIME-WAIT"], what="Linux TIME-WAIT")
    # One segment answered Linux's FIN: our FIN carrying the ACK (no separate bare ACK).
    assert setup.agent.stats()["tcpOutSegs"] - before == 1
    lin.close()


def test_half_close_linux_shuts_down_we_keep_sending(setup):
    lin = _accepted(setup)
    lin.sendall(b"request")
    lin.shutdown(socket.SHUT_WR)
    assert setup.agent.cmd("recv") == "ok request"
    assert setup.agent.cmd("recv") == "ok eof"
    for word in ("still", "sending"):
        setup.agent.cmd("send " + word)
    setup.agent.cmd("close")
    got = b""
    while True:
        chunk = lin.recv(100)
        if not chunk:
            break
        got += chunk
    assert got == b"stillsending"
    lin.close()


def test_half_close_we_shut_down_linux_keeps_sending(setup):
    lin = _accepted(setup)
    setup.agent.cmd("shutdown")
    assert lin.recv(10) == b""
    lin.sendall(b"more data")
    assert setup.agent.cmd("recv") == "ok more data"
    setup.agent.cmd("state")
    lin.close()
    assert setup.agent.cmd("recv") == "ok eof"
    setup.agent.cmd("wait_conns TIME-WAIT 5000")


def test_linux_so_linger_zero_is_econnreset_here(setup):
    lin = _accepted(setup)
    lin.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    lin.close()  # RST
    assert setup.agent.cmd("recv", ok=False) == "err ECONNRESET"
    assert setup.agent.stats()["tcpEstabResets"] == 1


def test_our_abort_is_econnreset_at_linux(setup):
    lin = _accepted(setup)
    setup.agent.cmd("abort")
    with pytest.raises(ConnectionResetError):
        lin.recv(10)
    lin.close()


def test_our_close_with_unread_data_resets_linux(setup):
    lin = _accepted(setup)
    lin.sendall(b"you will not read this")
    setup.agent.cmd("pump 200")
    setup.agent.cmd("close")
    with pytest.raises(ConnectionResetError):
        for _ in range(3):
            lin.recv(10)
            lin.sendall(b"x")
            time.sleep(0.1)
    assert setup.agent.stats()["tcpRstsUnreadData"] == 1
    lin.close()


def test_500_short_connections_small_time_wait_table(setup):
    setup.agent.cmd("listen 80 8")
    setup.agent.proc.stdin.write("serve 500\n")
    setup.agent.proc.stdin.flush()
    for i in range(500):
        lin = setup.connect(80)
        lin.sendall(b"GET %d" % i)
        got = b""
        while True:
            chunk = lin.recv(1000)
            if not chunk:
                break
            got += chunk
        assert got == b"r" * 100, (i, got)
        lin.close()
    assert setup.agent._line(60) == "ok 500"
    st = setup.agent.stats()
    assert st["tcpPassiveOpens"] == 500
    assert st["tcpTimeWaitRecycled"] > 0  # 8 slots for 500 TIME-WAITs
    assert st["tcpOutRsts"] == 0


@pytest.mark.parametrize("kind", ["tun-cpython", "packet-micropython"])
def test_8mib_through_lossy_link(kind):
    s = Setup(kind, agent_args=["--lossy", "7"])
    try:
        lin = _accepted(s)
        s.agent.proc.stdin.write("xfer %d\n" % MIB8)
        s.agent.proc.stdin.flush()
        got = linux_xfer(lin, MIB8, timeout=300)
        assert s.agent._line(300) == "ok " + pattern_sha(MIB8)
        assert got == pattern_sha(MIB8)
        st = s.agent.stats()
        # Frames we sent were lost, corrupted (Linux dropped them), duplicated, reordered,
        # and our retransmissions repaired it.
        assert st["tcpRetransSegs"] > 0
        assert min(st["lossy_dropped"], st["lossy_corrupted"], st["lossy_duplicated"],
                   st["lossy_reordered"]) > 0, st
        s.agent.cmd("close")
        assert lin.recv(10) == b""
        lin.close()
    finally:
        s.close()
