# Firmware on the virtual board: `make deploy`, then curl, the netstat/stats tool and the
# pcap tool against it, from Linux in namespaces. CPython only, root. MIT licence.
#
# One virtual board (host_tests/vboard.py: the MicroPython unix port behind a pty) runs in
# namespace `ours` on a veth whose other end, in `linux`, has LINUX_IP. The module deploys
# to it once with `make deploy`; each test then talks to the board over its pty with the
# tools a user would use on a real board's serial port.

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

import mp
import netns
from vboard import VBoard

ROOT = mp.ROOT
PY = sys.executable
LINUX_IP = "10.9.5.1"
OUR_IP = "10.9.5.2"
TOOL_TIMEOUT_S = 120


class Rig:
    def __init__(self, tmp, dhcp=False):
        netns.require_root()
        netns.require_tool("curl")
        self.linux = netns.Netns().open()
        self.ours = None
        self.board = None
        try:
            self.ours = netns.Netns().open()
            va, self.iface = netns.veth(self.linux, self.ours, addr_a=LINUX_IP + "/24")
            if dhcp:
                # The firmware's default: no address in config.py, a lease from the LAN.
                netns.run_in(self.linux, [
                    netns.require_tool("dnsmasq"), "--keep-in-foreground",
                    "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
                    "--user=root", "--pid-file=", "--interface=" + va, "--bind-interfaces",
                    "--dhcp-range=10.9.5.50,10.9.5.60,255.255.255.0,2m",
                    "--dhcp-leasefile=" + os.path.join(tmp, "leases")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.board = VBoard(netns=self.ours.name)
            self.config = os.path.join(tmp, "config.py")
            with open(os.path.join(ROOT, "firmware", "config.py")) as f:
                text = f.read()
            text = re.sub(r"^IFACE = .*$", "IFACE = %r" % self.iface, text, flags=re.M)
            if not dhcp:
                text = re.sub(r"^IP = .*$", "IP = %r" % OUR_IP, text, flags=re.M)
            text = re.sub(r"^HOSTNAME = .*$", "HOSTNAME = 'board7'", text, flags=re.M)
            with open(self.config, "w") as f:
                f.write(text)
            self.deploy = run(["make", "-s", "deploy", "BOARD=host_packet",
                               "PORT=" + self.board.port, "CONFIG=" + self.config])
        except BaseException:
            self.close()
            raise

    def tool(self, name, *args):
        return run([PY, os.path.join(ROOT, "tools", name), "--port", self.board.port]
                   + list(args))

    def connect(self, port=80):
        with netns.inside(self.linux):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((OUR_IP, port))
        return s

    def why(self):
        b = self.board
        state = ""
        if b.pid():
            try:
                with open("/proc/%d/syscall" % b.pid()) as f:
                    state = f.read().strip()
                with open("/proc/%d/status" % b.pid()) as f:
                    state += " | " + " ".join(ln.strip() for ln in f if ln.startswith(
                        ("State", "SigBlk", "SigCgt", "SigPnd", "ShdPnd")))
            except OSError as e:
                state = str(e)
        return ("\n--- board: pid %s resets %d sigint deaths %d, now in: %s\n"
                "--- transcript (tail) ---\n%s" % (b.pid(), b.resets, b.sigint_deaths, state,
                                                   b.text()[-2500:]))

    def close(self):
        if self.board is not None:
            self.board.close()
        for ns in (self.ours, self.linux):
            if ns is not None:
                ns.close()


def run(argv, timeout=TOOL_TIMEOUT_S):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(str(tmp_path_factory.mktemp("vboard")))
    yield r
    r.close()


def test_make_deploy_then_the_board_serves_curl(rig):
    d = rig.deploy
    assert d.returncode == 0, d.stdout + d.stderr + rig.why()
    assert "READY http on %s:80" % OUR_IP in d.stdout, d.stdout
    assert re.search(r"copied \d+ files and boot.py, main.py, config.py", d.stdout)
    flash = rig.board.flash
    for rel in ("boot.py", "main.py", "config.py", "lib/stack/iface.mpy",
                "lib/stack/tcp.mpy", "lib/stack/link/packet.mpy", "lib/boards/host_packet.mpy",
                "lib/stack/_checksum_viper.py"):
        assert os.path.exists(os.path.join(flash, rel)), rel
    with open(os.path.join(flash, "config.py")) as f:
        assert "BOARD = 'host_packet'" in f.read()
    # Byte for byte what make mpy built.
    with open(os.path.join(ROOT, "build", "host_packet", "lib", "stack", "tcp.mpy"), "rb") as f:
        built = f.read()
    with open(os.path.join(flash, "lib", "stack", "tcp.mpy"), "rb") as f:
        assert f.read() == built
    out = rig.linux.exec(["curl", "-sS", "--max-time", "10", "http://%s/" % OUR_IP])
    assert out.returncode == 0, out.stderr + rig.why()
    assert "Hello from a TCP/IP stack in Python" in out.stdout


def _rows(text, state):
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == state:
            rows.append(parts)
    return rows


def test_netstat_tool_live_connection_then_time_wait(rig):
    s = rig.connect()
    try:
        lport = s.getsockname()[1]
        peer = "%s:%d" % (LINUX_IP, lport)
        out = rig.tool("netstat.py")
        assert out.returncode == 0, out.stdout + out.stderr + rig.why()
        est = [r for r in _rows(out.stdout, "ESTABLISHED") if r[1] == peer]
        assert est and est[0][0] == "%s:80" % OUR_IP, out.stdout
        # Wire numbers, all sent data acknowledged, an advertised window, an RTO.
        assert int(est[0][3]) == int(est[0][4]) and int(est[0][7]) > 0 and int(est[0][9]) > 0
        assert _rows(out.stdout, "LISTEN")[0][0] == "0.0.0.0:80"
        assert "== stats" in out.stdout
        stats = dict(line.split() for line in out.stdout.split("== stats")[1].splitlines()
                     if line.strip())
        assert int(stats["tcpPassiveOpens"]) >= 1 and int(stats["tcpCurrEstab"]) >= 1
        assert "tcpAttemptFails" not in stats  # zero counters only with --all
        # The board resumed: the same connection still works, and the server closes first.
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.0 200 OK") and data.endswith(b"</html>\n"), data
    finally:
        s.close()
    # Our side closed first: its end of the connection is in TIME-WAIT.
    for _ in range(20):
        out = rig.tool("netstat.py", "--netstat-only")
        assert out.returncode == 0, out.stdout + out.stderr + rig.why()
        tw = [r for r in _rows(out.stdout, "TIME-WAIT") if r[1] == peer]
        if tw:
            break
        time.sleep(0.2)
    assert tw, out.stdout
    assert tw[0][0] == "%s:80" % OUR_IP and tw[0][-1].startswith("2msl:")
    assert 0 < int(tw[0][-1][5:]) <= 60000
    assert not [r for r in _rows(out.stdout, "ESTABLISHED") if r[1] == peer]
    assert "== stats" not in out.stdout
    every = rig.tool("netstat.py", "--stats-only", "--all")
    assert "tcpAttemptFails" in every.stdout and "== netstat" not in every.stdout


def _tshark(path, *args):
    return run(["tshark", "-r", path, "-o", "tcp.check_checksum:TRUE", "-o",
                "ip.check_checksum:TRUE"] + list(args))


def _true(v):
    return v in ("1", "True", "true")


def test_pcap_tool_pulls_a_full_connection_tshark_reads_it(rig, tmp_path):
    netns.require_tool("tshark")
    out = rig.tool("pcap_pull.py", "--start", "--size", "32768")
    assert out.returncode == 0, out.stdout + out.stderr + rig.why()
    got = rig.linux.exec(["curl", "-sS", "--max-time", "10", "http://%s/" % OUR_IP])
    assert got.returncode == 0 and "Hello" in got.stdout, got.stderr
    time.sleep(0.3)  # the last ACK of the close reaches the board
    pcap = str(tmp_path / "board.pcap")
    out = rig.tool("pcap_pull.py", "--stop", "-o", pcap)
    assert out.returncode == 0, out.stdout + out.stderr + rig.why()
    assert re.search(r"\d+ frames to ", out.stdout), out.stdout
    with open(pcap, "rb") as f:
        assert f.read(4) == b"\xd4\xc3\xb2\xa1"  # classic pcap, little-endian
    fields = ["frame.number", "eth.type", "ip.src", "tcp.srcport", "tcp.dstport",
              "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset", "tcp.len",
              "tcp.checksum.status", "ip.checksum.status"]
    res = _tshark(pcap, "-T", "fields", "-E", "separator=,",
                  *sum([["-e", f] for f in fields], []))
    assert res.returncode == 0, res.stderr
    rows = [dict(zip(fields, line.split(","))) for line in res.stdout.splitlines()]
    tcp = [r for r in rows if r["tcp.srcport"]]
    assert tcp, res.stdout
    syn = [r for r in tcp if _true(r["tcp.flags.syn"]) and not _true(r["tcp.flags.ack"])]
    synack = [r for r in tcp if _true(r["tcp.flags.syn"]) and _true(r["tcp.flags.ack"])]
    data_in = [r for r in tcp if r["ip.src"] == LINUX_IP and int(r["tcp.len"] or 0) > 0]
    data_out = [r for r in tcp if r["ip.src"] == OUR_IP and int(r["tcp.len"] or 0) > 0]
    fin_out = [r for r in tcp if r["ip.src"] == OUR_IP and _true(r["tcp.flags.fin"])]
    fin_in = [r for r in tcp if r["ip.src"] == LINUX_IP and _true(r["tcp.flags.fin"])]
    acks = [r for r in tcp if _true(r["tcp.flags.ack"]) and not _true(r["tcp.flags.syn"])
            and not _true(r["tcp.flags.fin"]) and int(r["tcp.len"] or 0) == 0]
    assert syn and synack and data_in and data_out and fin_out and fin_in and acks, res.stdout
    assert not [r for r in tcp if _true(r["tcp.flags.reset"])], res.stdout
    # Every checksum verified good (status 1 = good, 0 = bad, 2 = unverified).
    assert all(r["tcp.checksum.status"] == "1" for r in tcp), res.stdout
    ip_rows = [r for r in rows if r["ip.src"]]
    assert all(r["ip.checksum.status"] == "1" for r in ip_rows), res.stdout
    bad = _tshark(pcap, "-Y", "tcp.checksum.status == 0 || ip.checksum.status == 0 || "
                  "_ws.expert.severity == error")
    assert bad.returncode == 0 and bad.stdout.strip() == "", bad.stdout
    # Ethernet link type, wire order: the connection starts with the SYN.
    assert all(r["eth.type"] in ("0x0800", "0x0806") for r in rows), res.stdout
    assert tcp[0] is syn[0], res.stdout
    summary = _tshark(pcap)
    assert "HTTP/1.0 200 OK" in summary.stdout and "GET / HTTP/1.1" in summary.stdout


def test_deploy_errors_missing_port():
    out = run(["make", "-s", "deploy", "BOARD=host_packet", "PORT=/dev/ttyNOPE9"])
    assert out.returncode != 0
    assert "/dev/ttyNOPE9 does not exist" in out.stderr, out.stderr
    out = run(["make", "-s", "deploy", "BOARD=host_packet"])
    assert out.returncode != 0 and "no port given" in out.stderr, out.stderr
    out = run(["make", "-s", "repl", "PORT=/dev/ttyNOPE9"])
    assert out.returncode != 0 and "does not exist" in out.stderr, out.stderr


def test_deploy_errors_busy_port():
    import serial

    with VBoard() as board:
        held = serial.Serial(board.port, exclusive=True)
        try:
            out = run(["make", "-s", "deploy", "BOARD=host_packet", "PORT=" + board.port])
            assert out.returncode != 0
            assert "is busy: another program has it open" in out.stderr, out.stderr
            out = run(["make", "-s", "repl", "PORT=" + board.port])
            assert out.returncode != 0 and "is busy" in out.stderr, out.stderr
        finally:
            held.close()


def test_deploy_errors_not_micropython():
    import pty
    import threading
    import tty

    # A pty with nothing behind it: silence.
    master, slave = pty.openpty()
    try:
        tty.setraw(slave)
        out = run(["make", "-s", "deploy", "BOARD=host_packet", "PORT=" + os.ttyname(slave)],
                  timeout=60)
        assert out.returncode != 0
        assert "nothing answered Ctrl-C, Ctrl-A: no MicroPython there" in out.stderr, out.stderr
    finally:
        os.close(master)
        os.close(slave)
    # Something that answers every line with "?" (a modem, a GPS...), but is no MicroPython.
    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def other_device():
        import select

        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    os.read(master, 1024)
                    os.write(master, b"?\r\n")
                except OSError:
                    return

    t = threading.Thread(target=other_device, daemon=True)
    t.start()
    try:
        out = run(["make", "-s", "deploy", "BOARD=host_packet", "PORT=" + os.ttyname(slave)],
                  timeout=60)
        assert out.returncode != 0
        assert "answers, but not as MicroPython does" in out.stderr, out.stderr
    finally:
        stop.set()
        t.join(5)
        os.close(master)
        os.close(slave)


def test_tools_say_what_the_board_lacks():
    """A board without the stack, or without our main.py running: clear errors."""
    with VBoard() as board:
        for tool in ("netstat.py", "pcap_pull.py"):
            out = run([PY, os.path.join(ROOT, "tools", tool), "--port", board.port])
            assert out.returncode == 2
            assert "the board has no stack/ on its path: deploy it first" in out.stderr, (
                out.stderr)
    build = os.path.join(ROOT, "build", "host_packet", "lib")
    if not os.path.isdir(build):
        assert run(["make", "-s", "mpy", "BOARD=host_packet"]).returncode == 0
    with VBoard() as board:
        shutil.copytree(build, os.path.join(board.flash, "lib"))
        out = run([PY, os.path.join(ROOT, "tools", "netstat.py"), "--port", board.port])
        assert out.returncode == 2
        assert "no `net` at the board's REPL: is firmware/main.py running" in out.stderr, (
            out.stderr)
        out = run([PY, os.path.join(ROOT, "tools", "netstat.py"), "--port", board.port,
                   "--net", "mynet"])
        assert "no `mynet` at the board's REPL" in out.stderr, out.stderr
        assert board.sigint_deaths == 0


@pytest.fixture(scope="module")
def dhcp_rig(tmp_path_factory):
    r = Rig(str(tmp_path_factory.mktemp("vboard-dhcp")), dhcp=True)
    yield r
    r.close()


def test_default_config_takes_a_lease_and_answers_by_name(dhcp_rig):
    """config.IP = None (the default): the board prints its lease and name at boot, serves
    on the leased address, and answers board7.local (mDNS) from Linux."""
    rig = dhcp_rig
    d = rig.deploy
    assert d.returncode == 0, d.stdout + d.stderr + rig.why()
    m = re.search(r"DHCP: (10\.9\.5\.(5\d|60)) mask 255\.255\.255\.0", d.stdout)
    assert m, d.stdout
    ip = m.group(1)
    assert "name: board7.local" in d.stdout and "READY http on %s:80" % ip in d.stdout, d.stdout
    out = rig.linux.exec(["curl", "-sS", "--max-time", "10", "http://%s/" % ip])
    assert "Hello from a TCP/IP stack in Python" in out.stdout, out.stdout + out.stderr
    dig = rig.linux.exec([netns.require_tool("dig"), "+short", "+tries=3", "+time=2",
                          "-p", "5353", "@" + ip, "board7.local"])
    assert dig.stdout.split() == [ip], dig.stdout + dig.stderr
