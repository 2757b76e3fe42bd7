# Unmodified MicroPython libraries over our stack (issue 12, "How it must be shown"):
# umqtt.simple and umqtt.robust (../shared/third_party/micropython-lib) against Debian's
# mosquitto, and a microdot app (PyPI, pinned in requirements.txt) answering curl, over HTTP
# and over HTTPS (MicroPython's tls.SSLContext(PROTOCOL_TLS_SERVER) with test_libs_linux's
# self-signed certificate, which curl verifies), and staying up with every TCB back in the
# pool after clients that reset (RST) mid-request and mid-response.
# MIT licence. CPython pytest; the board side is host_tests/mqtt_board.py on the MicroPython
# unix port in one namespace, on AF_PACKET over a veth pair with a static address; mosquitto,
# mosquitto_sub/mosquitto_pub and curl run in the other namespace.

import hashlib
import os
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import mp
import netns
import pytest
from linux import Agent
from test_libs_linux import files  # noqa: F401 (a fixture: the self-signed certificate)

LINUX_IP = "10.9.7.1"
OUR_IP = "10.9.7.2"
MQTT_PORT = 1883
HTTP_PORT = 8081
MP_LIB = mp.ROOT.parent / "shared" / "third_party" / "micropython-lib"


def _microdot_dir(tmp_path):
    """A directory holding (a link to) the installed microdot package, unmodified."""
    try:
        import microdot
    except ImportError:
        mp.missing("microdot not installed (pip install -r requirements.txt)")
    d = tmp_path / "mpy-lib"
    d.mkdir()
    os.symlink(Path(microdot.__file__).parent, d / "microdot")
    return d


def _board(ns, vb, extra_path):
    """mqtt_board.py on MicroPython unix, with umqtt and microdot on MICROPYPATH (Agent sets
    its own MICROPYPATH: `env` puts ours in front of the interpreter)."""
    path = os.pathsep.join([".frozen", str(mp.ROOT), str(mp.HOST_TESTS)]
                           + [str(p) for p in extra_path])
    argv = ["env", "MICROPYPATH=" + path, mp.micropython_cmd(),
            str(mp.HOST_TESTS / "mqtt_board.py"), "packet:" + vb, OUR_IP, LINUX_IP]
    return Agent(argv, ns=ns)


class Broker:
    def __init__(self, linux, conf_dir):
        self.linux = linux
        self.conf = Path(conf_dir) / "mosquitto.conf"
        self.conf.write_text("listener %d %s\nallow_anonymous true\npersistence false\n"
                             "user root\nlog_type all\nlog_dest file %s\n" % (MQTT_PORT, LINUX_IP, Path(conf_dir) / "log"))
        self.proc = None

    def start(self):
        self.proc = self.linux.run([netns.require_tool("mosquitto"), "-c", str(self.conf)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.linux.wait_listening(MQTT_PORT)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


class Sub:
    """mosquitto_sub on the Linux side, subscribed (SUBACK seen) when constructed."""

    def __init__(self, linux, topic, qos, count):
        # stdbuf: line-buffered, so the SUBACK line comes when it happens, not at exit
        self.proc = linux.run(["stdbuf", "-oL", netns.require_tool("mosquitto_sub"), "-h", LINUX_IP, "-t",
                               topic, "-q", str(qos), "-C", str(count), "-W", "15", "-v",
                               "-d"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        self.topic = topic
        lines = []
        while True:
            line = self.proc.stdout.readline()
            assert line, "mosquitto_sub ended: %r" % lines
            lines.append(line)
            if "SUBACK" in line:
                return

    def messages(self):
        out, _ = self.proc.communicate(timeout=20)
        self.raw = out
        # -d adds "Client ..." and "Subscribed ..." lines; -v prints "TOPIC MSG"
        return [ln for ln in out.splitlines() if ln.startswith(self.topic + " ")]


def _pub(linux, topic, qos, msg):
    linux.exec([netns.require_tool("mosquitto_pub"), "-h", LINUX_IP, "-t", topic, "-q",
                str(qos), "-m", msg], check=True, timeout=10)


@pytest.fixture
def env(tmp_path):
    netns.require_root()
    netns.require_tool("mosquitto")
    if not (MP_LIB / "umqtt" / "simple.py").exists():
        mp.missing("%s missing" % MP_LIB)
    linux = netns.Netns().open()
    ours = netns.Netns().open()
    board = None
    try:
        va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
        broker = Broker(linux, tmp_path)
        broker.start()
        board = _board(ours, vb, [MP_LIB, _microdot_dir(tmp_path)])
        yield linux, broker, board
    finally:
        if board is not None:
            board.close()
        ours.close()
        linux.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_umqtt_simple_both_ways(env, qos):
    linux, broker, board = env
    board.cmd("connect simple board1")
    # board -> broker -> mosquitto_sub
    sub = Sub(linux, "up/%d" % qos, qos, 3)
    for i in range(3):
        board.cmd("pub up/%d %d hello%d" % (qos, qos, i))
    assert sub.messages() == ["up/%d hello%d" % (qos, i) for i in range(3)], sub.raw
    # mosquitto_pub -> broker -> board
    board.cmd("sub down/%d %d" % (qos, qos))
    for i in range(3):
        _pub(linux, "down/%d" % qos, qos, "msg%d" % i)
    assert board.cmd("recv 3", timeout=15) == "ok " + " ".join(
        "down/%d=msg%d" % (qos, i) for i in range(3))
    board.cmd("disconnect")


def test_umqtt_robust_reconnects_after_broker_restart(env):
    linux, broker, board = env
    board.cmd("connect robust board2")
    sub = Sub(linux, "r", 1, 1)
    board.cmd("pub r 1 before")
    assert sub.messages() == ["r before"]
    broker.stop()  # the broker closes our connection
    broker.start()
    # check_msg() reads the broker's FIN (EOF: OSError in umqtt.simple); umqtt.robust
    # connects again. (A QoS 1 publish on the dead connection would not do: robust's
    # wait_msg() reconnects inside simple.publish() and then waits for a PUBACK of a
    # message it never sends again, a umqtt.robust limitation.)
    board.cmd("check", timeout=15)
    assert "board2" in linux.exec(["cat", str(broker.conf.parent / "log")]).stdout.split(
        "starting")[-1], "no reconnection"
    sub = Sub(linux, "r", 1, 1)
    board.cmd("pub r 1 after", timeout=15)
    assert sub.messages() == ["r after"]
    board.cmd("disconnect")


def _serve(board, port_no, n, tls_files=()):
    """Start the board's microdot app (see mqtt_board.py); returns once it listens."""
    board.proc.stdin.write(" ".join(["serve", str(port_no), str(n)] + [str(f) for f in tls_files])
                           + "\n")
    board.proc.stdin.flush()
    assert board._line(20) == "SERVING"


def _reply(board, line, timeout=20):
    """One command to the serving board; its reply, skipping (and keeping in board.noise)
    lines microdot or asyncio print, such as tracebacks of muted errors."""
    board.proc.stdin.write(line + "\n")
    board.proc.stdin.flush()
    deadline = time.monotonic() + timeout
    while True:
        got = board._line(max(0.1, deadline - time.monotonic()))
        if got.startswith(("ok", "err")):
            return got
        board.noise = getattr(board, "noise", []) + [got]


def _stats(board):
    reply = _reply(board, "stats")
    return dict((k, int(v)) for k, v in (kv.split("=") for kv in reply.split()[1:]))


def _tcbs_in_use(board):
    reply = _reply(board, "tcbs")  # "ok used=U of=T tw=W"
    return int(reply.split()[1].split("=")[1])


def _wait_tcbs(board, want, timeout):
    """Poll the board's TCB count until `want(used)`; the last count."""
    deadline = time.monotonic() + timeout
    while True:
        used = _tcbs_in_use(board)
        if want(used) or time.monotonic() > deadline:
            return used
        time.sleep(0.1)


def _url(path, port_no=HTTP_PORT, https=False):
    if https:
        return "https://%s:%d%s" % (CERT_NAME, port_no, path)
    return "http://%s:%d%s" % (OUR_IP, port_no, path)


def _curl(linux, path, *extra, port_no=HTTP_PORT, cert=None):
    """curl in the Linux namespace; with cert, https by name, verified against cert."""
    tls_args = ([] if cert is None else
                ["--cacert", str(cert), "--resolve", "%s:%d:%s" % (CERT_NAME, port_no, OUR_IP)])
    return linux.exec(["curl", "-sS", "--max-time", "5"] + tls_args + list(extra)
                      + [_url(path, port_no, cert is not None)], timeout=10)


def test_microdot_answers_curl(env):
    linux, broker, board = env
    n = 200
    _serve(board, HTTP_PORT, n)
    got = _curl(linux, "/")
    assert got.stdout == "hello from microdot", got.stderr
    # 200 sequential requests in all, answered one after another on fresh connections
    for i in range(1, n):
        got = _curl(linux, "/n/%d" % i)
        assert got.returncode == 0, (i, got.stderr)
        assert got.stdout.replace(" ", "") == '{"i":%d,"double":%d}' % (i, 2 * i), got.stdout
    assert board._line(20) == "ok served %d" % n
    board.cmd("connect simple board3")  # and the stack is still usable afterwards


# ---- HTTPS, and clients that reset mid-request ---------------------------------------------

CERT_NAME = "files.lan"  # the CN of test_libs_linux's certificate; curl --resolve gives our IP
HTTPS_PORT = 8443
ECHO_SIZE = 12000  # under microdot's default max_body_length (16 KB)
BIG_SIZE = 256 * 1024  # GET /big/<n>: far more than our send ring holds


@pytest.fixture
def der(files):
    """test_libs_linux's self-signed EC certificate (PEM, for curl and CPython) and its key,
    as DER for the board (MicroPython's tls takes DER; it rejects this PEM key)."""
    d, _ = files
    openssl = netns.require_tool("openssl")
    for argv in (["x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der"],
                 ["pkey", "-in", "key.pem", "-outform", "DER", "-out", "key.der"]):
        subprocess.run([openssl] + argv, cwd=d, check=True, capture_output=True, timeout=30)
    return d


def test_microdot_https_answers_curl(env, der):
    linux, broker, board = env
    _serve(board, HTTPS_PORT, 0, [der / "cert.der", der / "key.der"])
    cert = der / "cert.pem"
    got = _curl(linux, "/", port_no=HTTPS_PORT, cert=cert)
    assert (got.returncode, got.stdout) == (0, "hello from microdot"), got.stderr
    body = os.urandom(ECHO_SIZE)
    (der / "body.bin").write_bytes(body)
    got = _curl(linux, "/echo", "--data-binary", "@%s" % (der / "body.bin"), "-H",
                "Content-Type: application/octet-stream", port_no=HTTPS_PORT, cert=cert)
    assert got.stdout == "%d %s" % (ECHO_SIZE, hashlib.sha256(body).hexdigest()), got.stderr
    n = 30  # sequential requests, a TLS handshake each
    for i in range(n):
        got = _curl(linux, "/n/%d" % i, port_no=HTTPS_PORT, cert=cert)
        assert got.returncode == 0, (i, got.stderr)
        assert got.stdout.replace(" ", "") == '{"i":%d,"double":%d}' % (i, 2 * i), got.stdout
    stats = _stats(board)
    assert stats["tcpPassiveOpens"] == n + 2 and stats["tcpEstabResets"] == 0, stats
    assert _reply(board, "stop") == "ok served %d" % (n + 2)


def _connect(linux, port_no, tls_ctx=None):
    """A Linux socket connected to our server, whose close() sends RST (SO_LINGER 1, 0);
    with tls_ctx, after a TLS handshake (the RST then comes without close_notify)."""
    with netns.inside(linux):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect((OUR_IP, port_no))
    if tls_ctx is not None:
        s = tls_ctx.wrap_socket(s, server_hostname=CERT_NAME)
    return s


def _reset_after(s, data, read=0):
    """Send data, read `read` bytes of the answer (if any), give the server time to take
    what came, then reset the connection."""
    s.sendall(data)
    got = 0
    deadline = time.monotonic() + 5
    while got < read and time.monotonic() < deadline:
        chunk = s.recv(16384)
        assert chunk, "EOF after %d bytes" % got
        got += len(chunk)
    assert got >= read, got
    time.sleep(0.15)
    s.close()  # RST


# What a resetting client sends before its RST: a request cut in the headers, a POST whose
# body stops at 3000 of 10000 bytes, and a GET of a large body reset after 32 KB of it.
HALF_REQUESTS = (
    (b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n", 0),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n" + b"x" * 3000, 0),
    (b"GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n" % BIG_SIZE, 32768),
)
ROUNDS = 3


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_microdot_survives_client_resets(env, der, https):
    linux, broker, board = env
    port_no = HTTPS_PORT if https else HTTP_PORT
    tls_files = [der / "cert.der", der / "key.der"] if https else []
    cert = der / "cert.pem" if https else None
    ctx = None
    if https:
        ctx = ssl.create_default_context(cafile=str(cert))
    _serve(board, port_no, 0, tls_files)
    got = _curl(linux, "/", port_no=port_no, cert=cert)
    assert (got.returncode, got.stdout) == (0, "hello from microdot"), got.stderr
    assert _wait_tcbs(board, lambda u: u == 0, 10) == 0
    before = _stats(board)

    # The count sees a connection the server holds: an idle client (over TLS: mid-handshake,
    # a record header of a ClientHello and no more) shows as a TCB in use; then it resets.
    s = _connect(linux, port_no)
    s.sendall(b"\x16\x03\x01\x02\x00" if https else b"GE")
    assert _wait_tcbs(board, lambda u: u >= 1, 5) >= 1
    _reset_after(s, b"")
    resets = 1
    for _ in range(ROUNDS):
        for data, read in HALF_REQUESTS:
            _reset_after(_connect(linux, port_no, ctx), data, read)
            resets += 1

    # still serving, correctly, over new connections
    got = _curl(linux, "/", port_no=port_no, cert=cert)
    assert (got.returncode, got.stdout) == (0, "hello from microdot"), got.stderr
    got = _curl(linux, "/big/%d" % BIG_SIZE, port_no=port_no, cert=cert)
    assert got.stdout == "0123456789abcdef" * (BIG_SIZE // 16), (len(got.stdout), got.stderr)
    # every TCB back in the pool (orphans and closes given a bounded time)
    used = _wait_tcbs(board, lambda u: u == 0, 15)
    after = _stats(board)
    assert used == 0, (used, _reply(board, "netstat"), getattr(board, "noise", []))
    # the resets reached our TCP on established connections, and new ones came after
    assert after["tcpEstabResets"] - before["tcpEstabResets"] == resets, (before, after)
    assert after["tcpPassiveOpens"] - before["tcpPassiveOpens"] == resets + 2, (before, after)
    assert _reply(board, "stop").startswith("ok served ")


def test_microdot_https_clients_that_fin_mid_record_do_not_fill_the_pool(env, der):
    # A client that sends part of a TLS record and then a FIN makes microdot 2.7.0's request
    # read fail with MBEDTLS_ERR_SSL_CONN_EOF, which it re-raises without closing: the
    # connection stays in CLOSE-WAIT, its socket dropped. (The garbage collector, finalising
    # the TLS socket, would close ours some time: it is held off here.) With every block so
    # held, a new client still gets in once they are older than close_wait_recycle_ms
    # (mqtt_board.py: 2 s): the stack resets the oldest (recycle.close_wait).
    linux, broker, board = env
    cert = der / "cert.pem"
    _serve(board, HTTPS_PORT, 0, [der / "cert.der", der / "key.der"])
    assert _reply(board, "gc off") == "ok"
    try:
        pool = int(_reply(board, "tcbs").split()[2].split("=")[1])  # "ok used=U of=T tw=W"
        for _ in range(pool):
            s = _connect(linux, HTTPS_PORT)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 0))
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello's record, cut short
            s.shutdown(socket.SHUT_WR)  # FIN
            s.close()
        assert _wait_tcbs(board, lambda u: u == pool, 10) == pool, _reply(board, "netstat")
        time.sleep(2.5)  # older than close_wait_recycle_ms
        got = _curl(linux, "/", port_no=HTTPS_PORT, cert=cert)
        assert (got.returncode, got.stdout) == (0, "hello from microdot"), got.stderr
        assert _stats(board)["tcpCloseWaitRecycled"] >= 1
    finally:
        assert _reply(board, "gc on") == "ok"
    assert _reply(board, "stop").startswith("ok served ")
