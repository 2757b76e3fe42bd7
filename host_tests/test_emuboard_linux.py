# The emulated board on a network: bare-metal MicroPython on QEMU's mps2-an385 (Cortex-M3),
# our stack on its LAN9118, Linux on the other end of the wire. CPython only, root. MIT
# licence.
#
# tools/emuboard.py builds the firmware (stack/ and boards/qemu_mps2.py frozen through
# firmware/manifest.py; a RAM-disk littlefs as the board's flash) and runs QEMU with its UART
# on a pty and its LAN9118 on a tap device in a namespace made here, where Linux has
# LINUX_IP and dnsmasq hands out leases. The module then treats it as a user treats a board:
# `make deploy BOARD=qemu_mps2 PORT=<pty>` (the default config: DHCP), then from Linux:
# ping, curl, 1 MiB each way through an echo service, close modes checked with `ss`, and
# tools/netstat.py and tools/pcap_pull.py over the pty, the .pcap read by tshark.
#
# Needs qemu-system-arm and gcc-arm-none-eabi (tools/need.sh mcu) and the pinned MicroPython
# source in ../shared (a clone without it skips this module in one line, as test_mcu.py).
import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import mp
import netns

sys.path.insert(0, os.path.join(mp.ROOT, "tools"))
import emuboard  # noqa: E402

_problem = emuboard.prerequisites()
if _problem:
    pytest.skip("emulated board: " + _problem, allow_module_level=True)

ROOT = str(mp.ROOT)
PY = sys.executable
LINUX_IP = "10.9.6.1"
HOSTNAME = "emu1"
TOOL_TIMEOUT_S = 120
MIB = 1024 * 1024
CAPTURE = 8192  # bytes of capture ring (config.CAPTURE)
# The firmware's heap: "test" (2 MiB) and "board" (190 KiB, an RP2040's): the whole module
# runs on each (EMUBOARD_SIZES=test picks one).
SIZES = tuple(s for s in os.environ.get("EMUBOARD_SIZES", "test,board").split(",") if s)


def run(argv, timeout=TOOL_TIMEOUT_S):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


class Rig:
    def __init__(self, tmp, size):
        netns.require_root()
        netns.require_tun()  # QEMU's tap backend
        self.size = size
        netns.require_tool("curl")
        self.times = {}
        self.linux = netns.Netns().open()
        self.board = None
        try:
            t0 = time.monotonic()
            fw = emuboard.build(size, quiet=True)
            self.times["build"] = time.monotonic() - t0
            self.tap = netns.ifname("t")
            self.linux.ip("tuntap", "add", "dev", self.tap, "mode", "tap")
            self.linux.ip("addr", "add", LINUX_IP + "/24", "dev", self.tap)
            self.linux.ip("link", "set", self.tap, "up")
            netns.run_in(self.linux, [
                netns.require_tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--port=0", "--user=root", "--pid-file=",
                "--interface=" + self.tap, "--bind-interfaces",
                "--dhcp-range=10.9.6.50,10.9.6.60,255.255.255.0,2m",
                "--dhcp-leasefile=" + os.path.join(tmp, "leases")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.board = emuboard.EmuBoard(size, netns=self.linux.name, tap=self.tap, fw=fw,
                                           log=os.path.join(tmp, "qemu.log"))
            self.board.start()
            # The firmware's default config (IP = None: a lease at boot), our host name.
            self.config = os.path.join(tmp, "config.py")
            with open(os.path.join(ROOT, "firmware", "config.py")) as f:
                text = f.read()
            text = re.sub(r"^HOSTNAME = .*$", "HOSTNAME = %r" % HOSTNAME, text, flags=re.M)
            # The capture ring from boot, as a board with a small heap should have it: 8 KiB
            # in one block is not always free later on 190 KiB (pcap_pull --start then
            # reuses this ring: same size).
            text = re.sub(r"^CAPTURE = .*$", "CAPTURE = %d" % CAPTURE, text, flags=re.M)
            assert re.search(r"^IP = None", text, flags=re.M)
            with open(self.config, "w") as f:
                f.write(text)
            t0 = time.monotonic()
            self.deploy = run(["make", "-s", "deploy", "BOARD=qemu_mps2",
                               "PORT=" + self.board.port, "CONFIG=" + self.config])
            self.times["deploy"] = time.monotonic() - t0
            m = re.search(r"DHCP: (10\.9\.6\.(5\d|60)) mask", self.deploy.stdout)
            self.ip = m.group(1) if m else None
        except BaseException:
            self.close()
            raise

    def tool(self, name, *args):
        return run([PY, os.path.join(ROOT, "tools", name), "--port", self.board.port]
                   + list(args))

    def socket(self):
        with netns.inside(self.linux):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(20)
        return s

    def why(self):
        log = ""
        if self.board is not None and os.path.exists(self.board.log):
            with open(self.board.log, "rb") as f:
                log = f.read()[-1500:].decode(errors="replace")
        return "\n--- deploy ---\n%s%s\n--- qemu ---\n%s" % (
            self.deploy.stdout if hasattr(self, "deploy") else "",
            self.deploy.stderr if hasattr(self, "deploy") else "", log)

    def close(self):
        try:
            if self.board is not None:
                self.board.close()  # QEMU killed, always
        finally:
            self.linux.close()


@pytest.fixture(scope="module", params=SIZES)
def rig(request, tmp_path_factory):
    r = Rig(str(tmp_path_factory.mktemp("emuboard")), request.param)
    yield r
    r.close()


def test_deploy_with_dhcp_then_ping_and_curl(rig):
    d = rig.deploy
    assert d.returncode == 0, d.stdout + d.stderr + rig.why()
    assert rig.ip, d.stdout
    assert "READY http on %s:80" % rig.ip in d.stdout, d.stdout
    assert "name: %s.local" % HOSTNAME in d.stdout, d.stdout
    assert re.search(r"copied \d+ files and boot.py, main.py, config.py", d.stdout), d.stdout
    out = rig.linux.exec(["ping", "-c", "3", "-i", "0.2", "-W", "5", "-s", "1000", rig.ip])
    assert out.returncode == 0 and " 0% packet loss" in out.stdout, out.stdout + rig.why()
    out = rig.linux.exec(["curl", "-sS", "--max-time", "20", "http://%s/" % rig.ip])
    assert out.returncode == 0, out.stderr + rig.why()
    assert "Hello from a TCP/IP stack in Python" in out.stdout
    print("emuboard %s: build %.1f s, deploy (copy + reset + DHCP) %.1f s"
          % (rig.size, rig.times["build"], rig.times["deploy"]))


def _start_echo(rig):
    # The firmware serves one service (config.SERVICE, http here); add an echo server from
    # the REPL, as a user would: Ctrl-C, a task on main.py's loop, resume().
    from rawrepl import Board

    with Board(rig.board.port, timeout_s=20) as b:
        b.enter_raw()
        b.exec("import asyncio\nfrom stack import aio, services\n"
               "asyncio.create_task(aio.start_server(net, services.echo(net), '0.0.0.0', 7))")
        assert b.resume()
    rig.linux.exec(["true"])


def _echo_round(rig, size):
    data = os.urandom(size)
    s = rig.socket()
    s.connect((rig.ip, 7))
    got = []
    err = []

    def reader():
        try:
            for _ in range(size):  # bounded; each recv also times out (20 s)
                chunk = s.recv(65536)
                if not chunk:
                    break
                got.append(chunk)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=reader)
    t0 = time.monotonic()
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # client close: FIN after the data
    t.join(120)
    dt = time.monotonic() - t0
    s.close()
    assert not t.is_alive() and not err, err
    back = b"".join(got)
    return data, back, dt


def test_echo_one_mib_each_way_with_sha256(rig):
    _start_echo(rig)
    data, back, dt = _echo_round(rig, MIB)
    assert len(back) == MIB, len(back)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    print("emuboard %s: 1 MiB each way through echo in %.1f s (%.0f KiB/s each way)"
          % (rig.size, dt, 1024 / dt))


def _read_to_eof(s, limit=1 << 20):
    # Until the peer's FIN; bounded in bytes, and in time by the socket's timeout.
    data = b""
    while len(data) <= limit:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("more than %d bytes and no FIN" % limit)


def _ss(rig, port):
    return netns.ss_states(rig.linux, port)


def _wait_ss(rig, port, want, tries=100):
    for _ in range(tries):
        got = _ss(rig, port)
        if got == want:
            return got
        time.sleep(0.1)
    return got


def _board_rows(rig, peer_port):
    out = rig.tool("netstat.py", "--netstat-only")
    assert out.returncode == 0, out.stdout + out.stderr + rig.why()
    return [line.split() for line in out.stdout.splitlines()
            if len(line.split()) > 2 and line.split()[1] == "%s:%d" % (LINUX_IP, peer_port)]


def test_close_modes_seen_by_ss(rig):
    # Client close: Linux sends FIN first (after echoed data), the echo server closes on EOF:
    # Linux's end goes to TIME-WAIT.
    s = rig.socket()
    s.connect((rig.ip, 7))
    lport = s.getsockname()[1]
    s.sendall(b"x" * 1000)
    s.shutdown(socket.SHUT_WR)
    got = _read_to_eof(s)
    assert got == b"x" * 1000
    s.close()
    assert _wait_ss(rig, lport, ["TIME-WAIT"]) == ["TIME-WAIT"]
    # Server close: the HTTP service closes first (lingering close after its response):
    # Linux sees the FIN first and sits in CLOSE-WAIT until it closes; the board's end then
    # goes to TIME-WAIT (its netstat says so).
    s = rig.socket()
    s.connect((rig.ip, 80))
    lport = s.getsockname()[1]
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = _read_to_eof(s)
    assert data.startswith(b"HTTP/1.0 200 OK"), data
    assert _wait_ss(rig, lport, ["CLOSE-WAIT"]) == ["CLOSE-WAIT"]
    s.close()
    assert _wait_ss(rig, lport, []) == []
    rows = _board_rows(rig, lport)
    assert [r[2] for r in rows] == ["TIME-WAIT"], rows
    # RST: Linux aborts (SO_LINGER 0) a live connection: nothing left on either side.
    s = rig.socket()
    s.connect((rig.ip, 7))
    lport = s.getsockname()[1]
    s.sendall(b"hello")
    assert s.recv(16) == b"hello"
    assert _ss(rig, lport) == ["ESTABLISHED"]
    rows = _board_rows(rig, lport)
    assert [r[2] for r in rows] == ["ESTABLISHED"], rows
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert _wait_ss(rig, lport, []) == []
    for _ in range(20):
        rows = _board_rows(rig, lport)
        if not rows:
            break
        time.sleep(0.2)
    assert rows == [], rows
    # And the board refuses a port nobody listens on (RST to the SYN).
    s = rig.socket()
    try:
        s.connect((rig.ip, 5999))
        raise AssertionError("connected to a closed port")
    except ConnectionRefusedError:
        pass
    finally:
        s.close()


def test_netstat_tool_shows_a_live_connection(rig):
    s = rig.socket()
    s.connect((rig.ip, 80))
    try:
        lport = s.getsockname()[1]
        out = rig.tool("netstat.py")
        assert out.returncode == 0, out.stdout + out.stderr + rig.why()
        est = [r.split() for r in out.stdout.splitlines()
               if "%s:%d" % (LINUX_IP, lport) in r and "ESTABLISHED" in r]
        assert est and est[0][0] == "%s:80" % rig.ip, out.stdout
        assert "== stats" in out.stdout and "tcpPassiveOpens" in out.stdout
        # The board resumed serving: the same connection still answers.
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = _read_to_eof(s)
        assert data.startswith(b"HTTP/1.0 200 OK") and data.endswith(b"</html>\n"), data
    finally:
        s.close()


def _tshark(path, *args):
    return run(["tshark", "-r", path, "-o", "tcp.check_checksum:TRUE", "-o",
                "ip.check_checksum:TRUE"] + list(args))


def test_pcap_pulled_over_the_pty_reads_in_tshark(rig, tmp_path):
    netns.require_tool("tshark")
    out = rig.tool("pcap_pull.py", "--start", "--size", str(CAPTURE))  # config's ring
    assert out.returncode == 0, out.stdout + out.stderr + rig.why()
    got = rig.linux.exec(["curl", "-sS", "--max-time", "20", "http://%s/" % rig.ip])
    assert got.returncode == 0 and "Hello" in got.stdout, got.stderr
    time.sleep(0.5)  # the last ACK of the close reaches the board
    pcap = str(tmp_path / "emuboard.pcap")
    out = rig.tool("pcap_pull.py", "--stop", "-o", pcap)
    assert out.returncode == 0, out.stdout + out.stderr + rig.why()
    fields = ["ip.src", "tcp.flags.syn", "tcp.flags.fin", "tcp.flags.reset", "tcp.len",
              "tcp.checksum.status", "ip.checksum.status"]
    res = _tshark(pcap, "-Y", "tcp", "-T", "fields", "-E", "separator=,",
                  *sum([["-e", f] for f in fields], []))
    assert res.returncode == 0, res.stderr
    rows = [dict(zip(fields, line.split(","))) for line in res.stdout.splitlines()]
    assert rows, res.stdout
    on = ("1", "True", "true")
    assert rows[0]["ip.src"] == LINUX_IP and rows[0]["tcp.flags.syn"] in on, res.stdout
    assert [r for r in rows if r["ip.src"] == rig.ip and r["tcp.flags.fin"] in on]
    assert [r for r in rows if r["ip.src"] == rig.ip and int(r["tcp.len"] or 0) > 0]
    assert not [r for r in rows if r["tcp.flags.reset"] in on], res.stdout
    assert all(r["tcp.checksum.status"] == "1" and r["ip.checksum.status"] == "1"
               for r in rows), res.stdout
    summary = _tshark(pcap)
    assert "HTTP/1.0 200 OK" in summary.stdout and "GET / HTTP/1.1" in summary.stdout
