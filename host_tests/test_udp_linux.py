# UDP against Linux, in namespaces the test creates and removes: datagrams up to 1472 bytes
# echoed by our stack to a Linux socket and to socat, and ICMP port unreachable as Linux
# reads it (ECONNREFUSED on a connected socket). MIT licence.

import socket
import subprocess

import netns
import pytest
from linux import OUR_IP, SETUPS, Setup

SIZES = (1, 2, 100, 999, 1024, 1400, 1471, 1472)


@pytest.fixture(params=SETUPS)
def setup(request):
    s = Setup(request.param)
    yield s
    s.close()


def _udp(setup):
    with netns.inside(setup.linux):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    return u


def test_udp_echo_up_to_1472_bytes(setup):
    n = 2 * len(SIZES)
    setup.agent.cmd("udp_bind 7")
    setup.agent.proc.stdin.write("udp_echo %d\n" % n)
    setup.agent.proc.stdin.flush()
    u = _udp(setup)
    for rnd in range(2):
        for size in SIZES:
            data = bytes((i * 7 + size + rnd) & 0xFF for i in range(size))
            u.sendto(data, (OUR_IP, 7))
            got, addr = u.recvfrom(2048)
            assert got == data and addr == (OUR_IP, 7), (size, len(got), addr)
    assert setup.agent._line(30) == "ok %d" % n
    u.close()
    stats = setup.agent.stats()
    assert stats["udpInDatagrams"] == n and stats["udpOutDatagrams"] == n, stats


def test_udp_echo_to_socat(setup):
    netns.require_tool("socat")
    setup.agent.cmd("udp_bind 9")
    setup.agent.proc.stdin.write("udp_echo 1\n")
    setup.agent.proc.stdin.flush()
    out = netns.run_in(setup.linux, ["socat", "-T", "3", "-", "UDP:%s:9" % OUR_IP],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    got, _ = out.communicate(b"hello over udp\n", timeout=15)
    assert got == b"hello over udp\n"
    assert setup.agent._line(30) == "ok 1"


def test_closed_udp_port_refused_as_linux_sees_it(setup):
    u = _udp(setup)
    u.connect((OUR_IP, 4444))
    u.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError):
        u.recv(100)  # Linux turns our ICMP port unreachable into ECONNREFUSED
    u.close()
    assert setup.agent.stats()["udpNoPorts"] == 1
