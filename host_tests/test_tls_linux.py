# TLS over our TCP with MicroPython's own, unmodified `tls`/`ssl` (issue 12): on the
# MicroPython unix port, our stack on AF_PACKET in a namespace, stack.install(net), then
# tls.SSLContext / ssl.wrap_socket / asyncio's ssl= / select.poll over our sockets, against
# `openssl s_server` and CPython's ssl in another namespace. The board side is tls_board.py.
# MIT licence. CPython pytest; needs root and openssl.
#
# Certificates: a test CA (EC P-256) signs server.lan (Linux's servers) and board.lan (our
# server); a second CA signs nothing the peers use. The board gets DER files.
#
# Without stack.install the board's `socket` is the unix port's own, which sees only our
# namespace's veth end without an address: every test here then fails.

import hashlib
import os
import socket
import ssl
import struct
import subprocess
import sys
import time

import mp
import netns
import pytest
import tlscerts
from linux import Agent

LINUX_IP = "10.9.8.1"
OUR_IP = "10.9.8.2"
REV_PORT = 4433  # openssl s_server -rev
WWW_PORT = 4434  # openssl s_server -WWW
SILENT_PORT = 4435  # accepts, never writes
LINES = 256  # rev: 256 lines of 129 bytes = 33 KB each way
WWW_SIZE = 200 * 1024
POLLIN, POLLERR, POLLHUP = 0x01, 0x08, 0x10

# Accepts, reads, never writes; closes after the client's FIN (so no FIN-WAIT-2 orphan
# of ours waits for a peer that never closes).
SILENT_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
while True:
    c, _ = s.accept()
    while c.recv(4096):
        pass
    c.close()
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A directory with ca, other_ca, server (CN server.lan) and board (CN board.lan)."""
    d = tmp_path_factory.mktemp("tls")
    tlscerts.ca(d, "ca")
    tlscerts.ca(d, "other_ca")
    tlscerts.leaf(d, "server", "server.lan", "ca")
    tlscerts.leaf(d, "board", "board.lan", "ca")
    (d / "www.bin").write_bytes(os.urandom(WWW_SIZE))
    return d


class Env:
    def __init__(self, linux, board, certs):
        self.linux = linux
        self.board = board
        self.certs = certs

    def socket(self, kind=socket.SOCK_STREAM):
        """A CPython socket living in the Linux namespace."""
        with netns.inside(self.linux):
            return socket.socket(socket.AF_INET, kind)

    def send(self, line):
        self.board.proc.stdin.write(line + "\n")
        self.board.proc.stdin.flush()

    def reply(self, timeout=15):
        return self.board._line(timeout)

    def server_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certs / "server.pem"), str(self.certs / "server_key.pem"))
        ctx.num_tickets = 0  # TLS 1.3: no NewSessionTicket after the handshake
        return ctx

    def client_ctx(self):
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        return ctx  # CERT_REQUIRED, check_hostname

    def tcbs_all_free(self):
        free, total = map(int, self.board.cmd("tcbs").split()[1:])
        assert free == total, "%d of %d TCBs free" % (free, total)


@pytest.fixture
def env(certs):
    netns.require_root()
    openssl = netns.require_tool("openssl")
    linux = netns.Netns().open()
    ours = netns.Netns().open()
    board = None
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
        pem = ["-cert", str(certs / "server.pem"), "-key", str(certs / "server_key.pem")]
        linux.run([openssl, "s_server", "-quiet", "-rev", "-accept", str(REV_PORT)] + pem,
                  **quiet)
        linux.run([openssl, "s_server", "-quiet", "-WWW", "-accept", str(WWW_PORT)] + pem,
                  cwd=str(certs), **quiet)
        linux.run([sys.executable, "-c", SILENT_SERVER, LINUX_IP, str(SILENT_PORT)], **quiet)
        for p in (REV_PORT, WWW_PORT, SILENT_PORT):
            linux.wait_listening(p)
        argv = [mp.micropython_cmd(), "-X", "heapsize=16M",
                str(mp.HOST_TESTS / "tls_board.py"), "packet:" + vb, OUR_IP, LINUX_IP,
                str(certs)]
        board = Agent(argv, ns=ours)
        yield Env(linux, board, certs)
    finally:
        if board is not None:
            board.close()
        ours.close()
        linux.close()


def _line(i):
    a = hashlib.sha256(b"line %d" % i).hexdigest()
    b = hashlib.sha256(b"more %d" % i).hexdigest()
    return (a + b).encode()


def _rev_sha(n):
    """SHA-256 of what s_server -rev answers to tls_board's n lines: each line reversed."""
    return hashlib.sha256(b"".join(_line(i)[::-1] + b"\n" for i in range(n))).hexdigest()


# ---- 1. blocking client ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ctx", "sslctx", "legacy"])
def test_blocking_client_round_trip_verified(env, mode):
    reply = env.board.cmd("rev port=%d host=server.lan lines=%d mode=%s"
                          % (REV_PORT, LINES, mode), timeout=30)
    _, cipher, version, sha, ms = reply.split()
    assert sha == _rev_sha(LINES), reply  # 33 KB up, reversed 33 KB down
    assert "ECDSA" in cipher and version.startswith("TLSv1."), reply
    stats = env.board.stats()
    assert stats["tcpActiveOpens"] == 1 and stats["tcpInSegs"] > LINES * 129 // 1460, stats
    env.tcbs_all_free()


def test_blocking_client_https_body_verified(env):
    want = hashlib.sha256((env.certs / "www.bin").read_bytes()).hexdigest()
    reply = env.board.cmd("www port=%d host=server.lan path=www.bin" % WWW_PORT, timeout=30)
    assert reply == "ok %d %s" % (WWW_SIZE, want)


# ---- 2. blocking server ------------------------------------------------------------------

def _linux_tls_echo(env, port, n, timeout=15, chunk=8192):
    """CPython ssl in the Linux namespace: connect to our server (board.lan, verified against
    the CA), send n random bytes a chunk at a time, each chunk's echo read back before the
    next is sent (one thread: an OpenSSL connection is not to be read and written from two
    threads at once); returns (sent, got, TLS version)."""
    data = os.urandom(n)
    deadline = time.monotonic() + timeout
    for _ in range(100):  # until the board listens
        s = env.socket()
        s.settimeout(timeout)
        try:
            s.connect((OUR_IP, port))
            break
        except ConnectionRefusedError:
            s.close()
            time.sleep(0.05)
    t = env.client_ctx().wrap_socket(s, server_hostname="board.lan")
    got = bytearray()
    for off in range(0, n, chunk):
        t.sendall(data[off:off + chunk])
        want = min(n, off + chunk)
        while len(got) < want and time.monotonic() < deadline:
            more = t.recv(65536)
            if not more:
                break
            got += more
        if len(got) < want:
            break
    version = t.version()
    t.close()
    return data, bytes(got), version


def test_blocking_server_echoes_linux_client(env):
    env.send("serve port=4443 n=2")
    assert env.reply() == "SERVING"
    for n in (64 * 1024, 4096):
        sent, got, version = _linux_tls_echo(env, 4443, n)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(sent).hexdigest(), (
            len(got), n)
    assert env.reply(20) == "ok served 2 %d" % (64 * 1024 + 4096)
    env.tcbs_all_free()


# ---- 3. certificate errors ---------------------------------------------------------------

def test_wrong_ca_raises_cert_error_and_frees_tcb(env):
    reply = env.board.cmd("rev port=%d host=server.lan lines=1 ca=other_ca.der"
                          % REV_PORT, ok=False, timeout=20)
    # mbedTLS's verify result, raised by tls as ValueError (MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)
    assert reply.startswith("err ValueError ("), reply
    assert "not correctly signed by the trusted CA" in reply, reply
    env.tcbs_all_free()  # the caller closed the socket: our TCB is back in the pool
    assert env.board.stats()["tcpActiveOpens"] == 1


def test_hostname_mismatch_raises_cert_error(env):
    reply = env.board.cmd("rev port=%d host=other.lan lines=1" % REV_PORT, ok=False,
                          timeout=20)
    assert reply.startswith("err ValueError ("), reply
    assert "Common Name" in reply or "CN" in reply, reply
    assert "not correctly signed" not in reply, reply  # the CA was right: only the name
    env.tcbs_all_free()


# ---- 4. handshake timeout ----------------------------------------------------------------

def test_handshake_to_silent_peer_times_out(env):
    t0 = time.monotonic()
    reply = env.board.cmd("rev port=%d host=server.lan lines=1 timeout=2" % SILENT_PORT,
                          ok=False, timeout=15)  # hang guard, not a performance figure
    assert time.monotonic() - t0 < 15
    assert reply.startswith("err OSError (110,)"), reply  # ETIMEDOUT
    ms = int(reply.split()[-1])
    assert 1900 <= ms < 15000, reply  # the 2 s socket timeout, through mbedTLS's read
    env.tcbs_all_free()


def test_read_timeout_on_established_tls_then_usable(env):
    # our readinto's ETIMEDOUT passes through mbedTLS's read as it does through the handshake;
    # nothing was consumed, so the connection goes on
    reply = env.board.cmd("idle port=%d host=server.lan timeout=1" % REV_PORT, timeout=15)
    _, errno_, ms, sha = reply.split()
    assert errno_ == "110" and 900 <= int(ms) < 15000, reply
    assert sha == _rev_sha(1), reply
    env.tcbs_all_free()


# ---- 5. asyncio --------------------------------------------------------------------------

def test_asyncio_open_connection_ssl(env):
    reply = env.board.cmd("aclient port=%d host=server.lan lines=64" % REV_PORT, timeout=30)
    assert reply == "ok " + _rev_sha(64)
    env.tcbs_all_free()


def test_asyncio_start_server_ssl(env):
    env.send("aserve port=4444 n=2")
    assert env.reply() == "SERVING"
    lengths = []
    for n in (32 * 1024, 1000):
        sent, got, _ = _linux_tls_echo(env, 4444, n)
        lengths.append((len(got), n, got == sent))
    assert env.reply(20) == "ok served 2 %d" % (32 * 1024 + 1000), lengths
    assert lengths == [(32 * 1024, 32 * 1024, True), (1000, 1000, True)]
    env.tcbs_all_free()


# ---- 6. select.poll over a mix ------------------------------------------------------------

def _events(reply):
    """'ok name:flags:info ...' -> [(name, flags, info)]"""
    assert reply.startswith("ok"), reply
    out = []
    for word in reply.split()[1:]:
        name, flags, info = word.split(":", 2)
        out.append((name, int(flags), info))
    return out


def test_poll_mixed_sockets(env):
    tcp_l = env.socket()
    tls_l = env.socket()
    for s, p in ((tcp_l, 5001), (tls_l, 5002)):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(10)
        s.bind((LINUX_IP, p))
        s.listen(2)
    env.send("pollsetup lport=6001 tcpport=5001 tlsport=5002 uport=6002 host=server.lan")
    tcp, _ = tcp_l.accept()
    raw, _ = tls_l.accept()
    tls = env.server_ctx().wrap_socket(raw, server_side=True)  # handshake with the board
    assert env.reply() == "ok"
    nothing = env.board.cmd("pollnext ms=300")
    assert nothing == "ok", nothing  # no false readiness

    peer = env.socket()
    peer.settimeout(10)
    peer.connect((OUR_IP, 6001))
    assert _events(env.board.cmd("pollnext ms=5000")) == [
        ("listen", POLLIN, str(peer.getsockname()[1]))]
    tcp.sendall(b"tcp-data")
    assert _events(env.board.cmd("pollnext ms=5000")) == [("tcp", POLLIN, "tcp-data")]
    tls.sendall(b"tls-data")
    assert _events(env.board.cmd("pollnext ms=5000")) == [("tls", POLLIN, "tls-data")]
    udp = env.socket(socket.SOCK_DGRAM)
    udp.sendto(b"udp-data", (OUR_IP, 6002))
    assert _events(env.board.cmd("pollnext ms=5000")) == [("udp", POLLIN, "udp-data")]
    assert env.board.cmd("pollnext ms=300") == "ok"

    # a reset shows POLLERR|POLLHUP on the TCP socket and nothing else
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    tcp.close()
    ev = _events(env.board.cmd("pollnext ms=5000"))
    assert [(n, i) for n, _, i in ev] == [("tcp", "-")], ev
    assert ev[0][1] & POLLERR and ev[0][1] & POLLHUP, ev
    # the TLS peer closes (FIN): POLLIN on the TLS socket, and the read gives EOF
    tls.close()
    assert _events(env.board.cmd("pollnext ms=5000")) == [("tls", POLLIN, "")]
    for s in (peer, udp, tcp_l, tls_l):
        s.close()
