# Unmodified MicroPython libraries over our stack (issue 12, "How it must be shown"): on the
# MicroPython unix port, our stack on AF_PACKET in a namespace, stack.install(net), then
# the frozen `requests` and micropython-lib's `ntptime` against Linux servers in another
# namespace, names from dnsmasq. The board side is libs_board.py.
# MIT licence. CPython pytest; needs root, dnsmasq and openssl.
#
# Without stack.install the libraries get the unix port's own socket module, which sees
# only our namespace's veth end without an address: every test here then fails.

import hashlib
import os
import subprocess
import sys
import time

import mp
import netns
import pytest
from linux import Agent

LINUX_IP = "10.9.6.1"
OUR_IP = "10.9.6.2"
HTTP_PORT = 8080
HTTPS_PORT = 8443
SIZE = 1 << 20
LIBDIR = mp.ROOT.parent / "shared" / "third_party" / "micropython-lib"

# The NTP responder's transmit time: 2031-05-17 12:34:56 UTC, far from any real clock.
NTP_UNIX = 1968496496
NTP_DELTA = 2208988800  # 1900 -> 1970

NTP_RESPONDER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 123))
print("up", flush=True)
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 48 or q[0] & 7 != 3:  # mode 3 (client) only
        continue
    secs = int(sys.argv[2])
    r = bytearray(48)
    r[0] = (q[0] & 0x38) | 4  # LI 0, the client's version, mode 4 (server)
    r[1] = 1  # stratum 1
    r[12:16] = b"TEST"  # reference id
    r[16:24] = struct.pack("!II", secs, 0)  # reference
    r[24:32] = q[40:48]  # originate = the client's transmit
    r[32:40] = struct.pack("!II", secs, 0)  # receive
    r[40:48] = struct.pack("!II", secs, 0x80000000)  # transmit
    s.sendto(bytes(r), peer)
"""


@pytest.fixture
def files(tmp_path):
    """tmp_path with blob.bin (1 MB of random bytes) and a self-signed cert.pem/key.pem."""
    blob = os.urandom(SIZE)
    (tmp_path / "blob.bin").write_bytes(blob)
    subprocess.run([netns.require_tool("openssl"), "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=files.lan", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True, timeout=30)
    return tmp_path, hashlib.sha256(blob).hexdigest()


@pytest.fixture
def board(files):
    netns.require_root()
    netns.require_tool("dnsmasq")
    openssl = netns.require_tool("openssl")
    if not (LIBDIR / "ntptime.py").is_file():
        pytest.skip("%s/ntptime.py missing" % LIBDIR)
    d, sha = files
    linux = netns.Netns().open()
    ours = netns.Netns().open()
    agent = None
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
        linux.run([netns.require_tool("dnsmasq"), "--keep-in-foreground",
                   "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
                   "--listen-address=" + LINUX_IP, "--port=53", "--user=root",
                   "--pid-file=", "--address=/files.lan/" + LINUX_IP,
                   "--address=/ntp.lan/" + LINUX_IP, "--local-ttl=60"], **quiet)
        linux.run([sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", LINUX_IP,
                   "--directory", str(d)], **quiet)
        linux.run([openssl, "s_server", "-quiet", "-WWW", "-accept", str(HTTPS_PORT),
                   "-cert", str(d / "cert.pem"), "-key", str(d / "key.pem")],
                  cwd=str(d), **quiet)
        linux.run([sys.executable, "-c", NTP_RESPONDER, LINUX_IP,
                   str(NTP_UNIX + NTP_DELTA)], **quiet)
        linux.wait_listening(53, "udp")
        linux.wait_listening(123, "udp")
        linux.wait_listening(HTTP_PORT, "tcp")
        linux.wait_listening(HTTPS_PORT, "tcp")
        argv = [mp.micropython_cmd(), "-X", "heapsize=32M",
                str(mp.HOST_TESTS / "libs_board.py"), "packet:" + vb, OUR_IP, LINUX_IP,
                LINUX_IP, str(LIBDIR)]
        agent = Agent(argv, ns=ours)
        yield agent, sha
    finally:
        if agent is not None:
            agent.close()
        ours.close()
        linux.close()


def _carried_by_us(agent, tcp):
    """The name came from dnsmasq through our DNS client, the bytes through our TCP."""
    stats = agent.stats()
    assert stats["dnsOutQueries"] == 1 and stats["dnsInReplies"] == 1, stats
    if tcp:
        assert stats["tcpActiveOpens"] == 1 and stats["tcpInSegs"] > SIZE // 1460, stats
        assert stats["tcpEstabResets"] == 0, stats
    return stats


def test_requests_get_http_by_name(board):
    agent, sha = board
    t0 = time.monotonic()
    reply = agent.cmd("get http://files.lan:%d/blob.bin" % HTTP_PORT, timeout=20)
    assert reply == "ok 200 %d %s" % (SIZE, sha), reply
    assert time.monotonic() - t0 < 20
    _carried_by_us(agent, tcp=True)


def test_requests_get_https_by_name(board):
    # requests does tls.SSLContext(PROTOCOL_TLS_CLIENT) with verify_mode = CERT_NONE itself:
    # the self-signed certificate is not checked (the library has no option to check it).
    agent, sha = board
    reply = agent.cmd("get https://files.lan:%d/blob.bin" % HTTPS_PORT, timeout=20)
    assert reply == "ok 200 %d %s" % (SIZE, sha), reply
    _carried_by_us(agent, tcp=True)


def test_ntptime_by_name(board):
    agent, _ = board
    assert agent.cmd("ntp ntp.lan", timeout=10) == "ok %d" % NTP_UNIX
    stats = _carried_by_us(agent, tcp=False)
    # DNS is UDP too: one query and its reply, then the NTP query and its reply
    assert stats["udpOutDatagrams"] >= 2 and stats["udpInDatagrams"] >= 2, stats
