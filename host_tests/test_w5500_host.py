# The W5500 driver beyond the core tests (CPython, pytest): test_w5500.py under MicroPython,
# the board files on a fake `machine`, the SPI cost table, and the stack over driver +
# emulator against Linux (ping, lossy 8 MiB, in-process throughput). MIT licence.

import hashlib
import importlib
import socket
import sys
import threading
import time
import types

import mp
import netns
import pytest
from linux import OUR_IP, Setup, linux_xfer, pattern_sha
from test_w5500 import spi_cost

from tools.w5500emu import SHAR, W5500Emulator


def test_driver_tests_under_micropython_unix():
    """The same driver-against-emulator tests on the MicroPython unix port."""
    proc = mp.run_unix("host_tests/run_tests.py", "test_w5500")
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0 and last.endswith(" 0 failed"), proc.stdout + proc.stderr


# On the emulated Cortex-M0 (tools/mcu.py's m0-test: ARMv6-M, 32-bit, 2 MiB heap, stack/
# frozen): test_w5500 and test_w5500_int are not in host_tests.MODULES (tools/ is not
# frozen), so the emulator and the test module are sent as source and built into modules on
# the board.
_ON_BOARD = """
import sys, gc
class _Mod:
    pass
def _mk(name, src, fname):
    g = {'__name__': name}
    exec(compile(src, fname, 'exec'), g)
    m = _Mod()
    for k in g:
        setattr(m, k, g[k])
    return m
_m = _mk('tools.w5500emu', %r, 'w5500emu.py')
_t = _Mod()
_t.w5500emu = _m
sys.modules['tools'] = _t
sys.modules['tools.w5500emu'] = _m
sys.modules[%r] = _mk(%r, %r, 'test.py')
gc.collect()
import run_tests
_p, _f = run_tests.run([%r], True)
print('%%d passed, %%d failed' %% (_p, _f))
"""


@pytest.mark.parametrize("module", ["test_w5500", "test_w5500_int"])
def test_driver_tests_on_the_emulated_cortex_m0(module):
    """The driver-against-emulator tests (and the INT pin waking bare-metal asyncio) on a
    32-bit ARMv6-M, the RP2040's architecture: it found RSTn pulses shorter than T_RC."""
    sys.path.insert(0, str(mp.ROOT / "tools"))
    import mcu

    problem = mcu.prerequisites()
    if problem:
        pytest.skip("emulated Cortex-M0: " + problem)
    with open(mp.ROOT / "tools" / "w5500emu.py") as f:
        emu_src = f.read()
    with open(mp.ROOT / "host_tests" / (module + ".py")) as f:
        test_src = f.read()
    fw = mcu.build("m0-test", quiet=True)
    with mcu.Qemu("m0-test", fw) as q:
        out, err = q.exec(_ON_BOARD % (emu_src, module, module, test_src, module),
                          timeout_s=900)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    assert not err and last.endswith(" 0 failed") and not last.startswith("0 "), out + err


def test_int_pin_wake_under_micropython_unix():
    """The INT pin waking the asyncio driver (ThreadSafeFlag: MicroPython only)."""
    proc = mp.run_unix("host_tests/run_tests.py", "test_w5500_int")
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0 and last.endswith(" 0 failed"), proc.stdout + proc.stderr


def test_spi_cost_table(capsys):
    """SPI transactions and bytes per frame (they bound a board at a given SPI clock)."""
    rows = []
    for use_int in (False, True):
        cost = spi_cost(use_int)
        for key in sorted(cost):
            t, b = cost[key]
            rows.append("%-7s %-6s %4d B  %5.2f transactions  %7.1f SPI bytes"
                        % ("INT" if use_int else "no INT", key[0], key[1], t, b))
    with capsys.disabled():
        print("\nW5500 SPI cost per frame (recv8: one RX_RSR reading found 8 frames)")
        for r in rows:
            print("  " + r)
    assert len(rows) == 12


# ---- board files on a fake machine module -------------------------------------------------

class _FakeMachine:
    """A `machine` whose SPI is the emulator and whose Pins for CS/RST/INT are the chip's."""

    def __init__(self, cs, rst, intn):
        self.emu = W5500Emulator(seed=4)
        self.pins = {cs: self.emu.cs, intn: self.emu.int}
        if rst is not None:
            self.pins[rst] = self.emu.rst
        self.spi_args = None
        self.module = types.ModuleType("machine")

        def spi(spi_id, **kw):
            return self._spi(spi_id, **kw)

        def pin(pin_id, mode=-1, pull=-1, value=None):
            return self._pin(pin_id, mode, pull, value)

        spi.MSB = 0
        pin.OUT, pin.IN, pin.PULL_UP = 1, 0, 1
        self.module.SPI = spi
        self.module.Pin = pin
        self.module.unique_id = lambda: b"\xe6\x61\x10\x20\x30\x40\x50\x60"

    def _spi(self, spi_id, **kw):
        self.spi_args = dict(kw, id=spi_id)
        return self.emu

    def _pin(self, pin_id, mode=-1, pull=-1, value=None):
        pin = self.pins.get(pin_id)
        if pin is None:
            return ("pin", pin_id)  # a bus pin, handed to SPI()
        if value is not None:
            pin.value(value)
        return pin


def _board(name, fake, monkeypatch):
    monkeypatch.setitem(sys.modules, "machine", fake.module)
    sys.modules.pop("boards." + name, None)
    return importlib.import_module("boards." + name)


def test_board_w5500_evb_pico(monkeypatch):
    fake = _FakeMachine(cs=17, rst=20, intn=21)
    board = _board("w5500_evb_pico", fake, monkeypatch)
    link = board.link(wait_link_ms=100)
    a = fake.spi_args
    assert (a["id"], a["baudrate"], a["polarity"], a["phase"]) == (0, 20_000_000, 0, 0)
    assert (a["sck"], a["mosi"], a["miso"]) == (("pin", 18), ("pin", 19), ("pin", 16))
    assert link.mac == b"\x02\x20\x30\x40\x50\x60"
    assert bytes(fake.emu.common[SHAR:SHAR + 6]) == link.mac
    assert fake.emu.hard_resets == 1 and link.link_up()


@pytest.mark.parametrize("variant,pins,spi_pins", [
    ("esp32", (15, 5, 4), (14, 13, 12)),
    ("esp32s3", (10, None, 11), (12, 13, 14)),
])
def test_board_esp32_w5500(monkeypatch, variant, pins, spi_pins):
    fake = _FakeMachine(*pins)
    board = _board("esp32_w5500", fake, monkeypatch)
    link = board.link(variant=variant, wait_link_ms=100)
    a = fake.spi_args
    assert (a["id"], a["baudrate"]) == (1, 20_000_000)
    assert (a["sck"], a["mosi"], a["miso"]) == tuple(("pin", p) for p in spi_pins)
    assert fake.emu.hard_resets == (1 if pins[1] is not None else 0)
    assert fake.emu.soft_resets == 1
    assert fake.emu.sock[0][0x03] == 0x42


def test_board_host_emulator():
    from boards.host_emulator import link

    drv = link(mac=b"\x02\x00\x00\x00\x00\x07")
    frame = b"\x02\x00\x00\x00\x00\x07" + b"\x02\x00\x00\x00\x00\x08" + b"\x08\x00" + bytes(50)
    drv.emu.receive(frame)
    buf = bytearray(1514)
    assert bytes(buf[:drv.recv_into(buf)]) == frame


# ---- the stack over driver + emulator against Linux ------------------------------------------

def test_ping_and_arp_over_w5500():
    s = Setup("w5500-cpython", agent_args=["--service", "discard"], program="host")
    try:
        out = s.linux.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", OUR_IP])
        assert out.returncode == 0 and " 0% packet loss" in out.stdout, out.stdout
        neigh = s.linux.ip("neigh", "show", OUR_IP)
        assert "lladdr 02:" in neigh, neigh
    finally:
        s.close()


def test_8mib_through_lossy_link_over_w5500():
    s = Setup("w5500-cpython", agent_args=["--lossy", "7"])
    try:
        s.agent.cmd("listen 80")
        lin = s.connect(80)
        s.agent.cmd("accept")
        n = 8 << 20
        s.agent.proc.stdin.write("xfer %d\n" % n)
        s.agent.proc.stdin.flush()
        got = linux_xfer(lin, n, timeout=300)
        assert s.agent._line(300) == "ok " + pattern_sha(n)
        assert got == pattern_sha(n)
        st = s.agent.stats()
        assert st["tcpRetransSegs"] > 0 and st["lossy_dropped"] > 0, st
        s.agent.cmd("close")
        assert lin.recv(10) == b""
        lin.close()
    finally:
        s.close()


def test_8mib_each_way_under_micropython_over_w5500():
    """The agent, the driver and the emulator all on the MicroPython unix port (not in
    linux.SETUPS, to keep test time down; Setup() builds it from the name)."""
    s = Setup("w5500-micropython")
    try:
        s.agent.cmd("listen 80")
        lin = s.connect(80)
        s.agent.cmd("accept")
        n = 8 << 20
        s.agent.proc.stdin.write("xfer %d\n" % n)
        s.agent.proc.stdin.flush()
        got = linux_xfer(lin, n)
        assert s.agent._line(180) == "ok " + pattern_sha(n)
        assert got == pattern_sha(n)
        s.agent.cmd("close")
        assert lin.recv(10) == b""
        lin.close()
        s.agent.cmd("wait_conns TIME-WAIT 5000")
    finally:
        s.close()


def test_8mib_each_way_in_process_throughput_and_spi_cost(capsys):
    """Our stack on driver + emulator + veth in this process: integrity, Mbit/s, SPI/frame."""
    netns.require_root()
    from stack import Stack

    from tools.w5500emu import EmulatedW5500Link

    n = 8 << 20
    block = bytes(range(256)) * 256  # 64 KiB; sends stay aligned to it
    want = hashlib.sha256(block * (n // len(block))).hexdigest()
    with netns.Netns() as lin_ns, netns.Netns() as our_ns:
        _, vb = netns.veth(lin_ns, our_ns, addr_a="10.9.6.1/24")
        with netns.inside(our_ns):
            link = EmulatedW5500Link(vb)
        try:
            net = Stack(link, ip="10.9.6.2", prefix=24, rx_buf=16384, tx_buf=16384)
            lst = net.socket()
            lst.setblocking(False)
            lst.bind(("0.0.0.0", 80))
            lst.listen(1)
            result = {}

            def linux_side():
                with netns.inside(lin_ns):
                    s = socket.socket()
                s.settimeout(60)
                s.connect(("10.9.6.2", 80))
                t = threading.Thread(target=s.sendall, args=(block * (n // len(block)),))
                t.start()
                h = hashlib.sha256()
                got = 0
                while got < n:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    h.update(chunk)
                    got += len(chunk)
                t.join(60)
                result["sha"] = h.hexdigest()
                s.close()

            th = threading.Thread(target=linux_side, daemon=True)
            th.start()
            conn = None
            deadline = time.monotonic() + 120
            while conn is None and time.monotonic() < deadline:
                net.poll()
                try:
                    conn, _ = lst.accept()
                except OSError:
                    net.wait(5)
            assert conn is not None
            conn.setblocking(False)
            drv = link.driver
            s0 = drv.stats
            start = time.monotonic()
            sent = got = 0
            h = hashlib.sha256()
            buf = bytearray(16384)
            mv = memoryview(block)
            while (sent < n or got < n) and time.monotonic() < deadline:
                net.poll()
                if sent < n:
                    off = sent % len(block)
                    try:
                        sent += conn.send(mv[off:off + min(len(block) - off, n - sent)])
                    except OSError:
                        pass
                while got < n:
                    try:
                        k = conn.recv_into(buf)
                    except OSError:
                        break
                    h.update(memoryview(buf)[:k])
                    got += k
                net.wait(1)
            elapsed = time.monotonic() - start
            conn.close()  # the send ring may still hold data: keep polling until Linux has it
            while th.is_alive() and time.monotonic() < deadline:
                net.poll()
                net.wait(1)
            elapsed_linux = time.monotonic() - start
            assert (sent, got) == (n, n)
            assert h.hexdigest() == want and result.get("sha") == want
            s1 = drv.stats
            d = dict((k, s1[k] - s0[k]) for k in s1)
            frames = d["rx_frames"] + d["tx_frames"]
            with capsys.disabled():
                print("\n8 MiB each way over driver + emulator + veth (CPython): %.2f s "
                      "(%.2f s until Linux had it all), %.0f Mbit/s each way; %d frames in, "
                      "%d out; %.2f SPI transactions and %.0f SPI bytes per frame; emulator "
                      "overruns %d, driver %s"
                      % (elapsed, elapsed_linux, n * 8 / elapsed_linux / 1e6, d["rx_frames"],
                         d["tx_frames"],
                         d["spi_transactions"] / frames, d["spi_bytes"] / frames,
                         link.emu.rx_overruns, dict((k, v) for k, v in d.items()
                                                    if v and k.startswith(("rx_o", "tx_f",
                                                                           "rx_r", "reo")))))
            errs = link.emu.errors()
            assert not any(errs.values()), errs
        finally:
            link.close()
