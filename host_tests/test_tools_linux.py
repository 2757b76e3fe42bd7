# Real tools on the Linux side against tools/host.py's services: curl, socat, ping.
# MIT licence. Namespaces and devices are made and removed by linux.Setup.

import os
import subprocess
import tempfile

import pytest
from linux import OUR_IP, SETUPS, Setup

import netns


def _host(kind, service, port=None):
    args = ["--service", service] + (["--port", str(port)] if port else [])
    return Setup(kind, agent_args=args, program="host")


@pytest.fixture(params=SETUPS)
def kind(request):
    return request.param


def test_curl_fetches_the_page(kind):
    s = _host(kind, "http")
    try:
        out = s.linux.exec(["curl", "-sS", "--max-time", "10", "http://%s/" % OUR_IP])
        assert out.returncode == 0, out.stderr
        assert "Hello from a TCP/IP stack in Python" in out.stdout
        out = s.linux.exec(["curl", "-sS", "--max-time", "10", "http://%s/stats" % OUR_IP])
        assert "tcpPassiveOpens 2" in out.stdout, out.stdout
    finally:
        s.close()


def test_curl_gets_whole_response_although_body_unread(kind):
    """The server never reads the 300 KB body; lingering close keeps the response."""
    s = _host(kind, "http")
    body = tempfile.NamedTemporaryFile(delete=False)
    try:
        body.write(os.urandom(300_000))
        body.close()
        for _ in range(3):
            out = s.linux.exec(["curl", "-sS", "--max-time", "20", "-H", "Expect:",
                                "--data-binary", "@" + body.name, "http://%s/" % OUR_IP])
            assert out.returncode == 0, out.stderr
            assert out.stdout.endswith("</html>\n"), out.stdout[-200:]
    finally:
        os.unlink(body.name)
        s.close()


def test_socat_echo_with_half_close(kind):
    """socat sends, shuts down its send side at EOF (-t waits), and gets every byte back."""
    s = _host(kind, "echo")
    try:
        data = os.urandom(200_000).hex().encode()  # 400 KB of text
        out = subprocess.run(["ip", "netns", "exec", s.linux.name, "socat", "-t", "5", "-",
                              "TCP:%s:7" % OUR_IP], input=data, capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == data
    finally:
        s.close()


@pytest.mark.parametrize("rings", [[], ["--rx", "4096", "--tx", "8192"]])
def test_socat_bulk_echo_with_ring_sizes(rings):
    """1 MB through the echo service with host.py's 32 KiB rings, and with --rx/--tx."""
    s = Setup("packet-cpython", agent_args=["--service", "echo"] + rings, program="host")
    try:
        data = os.urandom(500_000).hex().encode()
        out = subprocess.run(["ip", "netns", "exec", s.linux.name, "socat", "-t", "5", "-",
                              "TCP:%s:7" % OUR_IP], input=data, capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == data
    finally:
        s.close()


def test_host_ring_options():
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    import host

    _, opts = host.parse(["packet:x", "10.0.0.2/24"])
    assert opts["--rx"] == opts["--tx"] == 32 * 1024
    _, opts = host.parse(["packet:x", "10.0.0.2/24", "--rx", "4096", "--tx", "8192"])
    assert (opts["--rx"], opts["--tx"]) == (4096, 8192)
    with pytest.raises(ValueError):
        host.parse(["packet:x", "10.0.0.2/24", "--rx", "0"])


def test_socat_chargen_and_discard(kind):
    s = _host(kind, "chargen")
    try:
        out = subprocess.run(["ip", "netns", "exec", s.linux.name, "sh", "-c",
                              "socat -u TCP:%s:19 - | head -c 74000" % OUR_IP],
                             capture_output=True, timeout=60)
        lines = out.stdout.split(b"\r\n")
        assert len(lines) > 900 and all(len(x) == 72 for x in lines[:-1]), out.stderr
        assert lines[1][0] == lines[0][1]  # each line starts one character later
    finally:
        s.close()


@pytest.mark.parametrize("kind_", ["packet-cpython", "packet-micropython", "tun-cpython"])
def test_ping_and_arp(kind_):
    s = _host(kind_, "discard")
    try:
        out = s.linux.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", OUR_IP])
        assert out.returncode == 0 and " 0% packet loss" in out.stdout, out.stdout
        if kind_.startswith("packet"):
            neigh = s.linux.ip("neigh", "show", OUR_IP)
            assert "lladdr 02:" in neigh and ("REACHABLE" in neigh or "STALE" in neigh
                                              or "DELAY" in neigh), neigh
    finally:
        s.close()
