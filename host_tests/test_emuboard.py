# The emulated board's firmware without a network: the LAN9118 link on QEMU's chip model
# (PHY loopback), the freeze path (firmware/manifest.py) and the ROMFS path (`make romfs`).
# CPython only (pytest); no root. MIT licence.
#
# tools/emuboard.py builds the firmware (cached) and runs QEMU (mps2-an385, Cortex-M3) with
# its UART on a pty; tools/rawrepl.py drives the board's raw REPL. One QEMU at a time, always
# killed. A clone without ../shared (no pinned MicroPython source) skips this module in one
# line, as test_mcu.py does.
import os
import re
import subprocess
import sys

import pytest

import mp

sys.path.insert(0, os.path.join(mp.ROOT, "tools"))
import emuboard  # noqa: E402
from rawrepl import Board  # noqa: E402

_problem = emuboard.prerequisites()
if _problem:
    pytest.skip("emulated board: " + _problem, allow_module_level=True)

ROOT = str(mp.ROOT)

# On the board: the LAN9118 in PHY loopback (QEMU hands each sent frame back to RX), frames
# of every length class sent and received through the link, compared byte for byte, heap
# allocated per send + receive measured with the GC off; with the viper kernels and with the
# plain mem32 loop.
LOOPBACK = r"""
import gc, time
from machine import mem32
from stack.link.lan9118 import LAN9118

def frame(l, n, seed):
    f = bytearray(n)
    for i in range(n):
        f[i] = (i * 151 + seed * 29 + 0xC3) & 0xFF
    f[0:6] = l.mac
    return f

def run(fast, rounds):
    l = LAN9118(0x40200000, mem32=mem32, fast=fast)
    l.phy_write(0, 0x4000)
    buf = bytearray(1600)
    for n in (14, 15, 16, 17, 60, 61, 62, 63, 590, 1513, 1514):
        f = frame(l, n, n)
        l.send(f)
        k = l.recv_into(buf)
        assert k == n and buf[:n] == f, (n, k)
    assert l.recv_into(buf) == 0
    for n in (60, 1514):
        f = frame(l, n, 7)
        l.send(f); l.recv_into(buf)
        gc.collect(); gc.disable()
        a0 = gc.mem_alloc(); t0 = time.ticks_us()
        for _ in range(rounds):
            l.send(f)
            k = l.recv_into(buf)
        t1 = time.ticks_us(); a1 = gc.mem_alloc()
        gc.enable()
        assert k == n and buf[:n] == f
        print("RESULT fast=%d n=%d alloc=%d us=%d" % (
            l.stats["fast"], n, (a1 - a0) // rounds, time.ticks_diff(t1, t0) // rounds))
    assert l.rx_errors == l.rx_too_long == l.rx_resyncs == l.tx_full == 0, l.stats

run(True, 20)
run(False, 3)
"""


def _results(text):
    out = {}
    for fast, n, alloc, us in re.findall(r"RESULT fast=(\d) n=(\d+) alloc=(\d+) us=(\d+)",
                                         text):
        out[(int(fast), int(n))] = (int(alloc), int(us))
    return out


def test_lan9118_link_on_the_emulated_chip_allocates_nothing_per_frame():
    with emuboard.EmuBoard("test") as eb, Board(eb.port, timeout_s=60) as b:
        b.enter_raw()
        out = b.exec(LOOPBACK).decode()
    res = _results(out)
    assert set(res) == {(1, 60), (1, 1514), (0, 60), (0, 1514)}, out
    # Viper kernels on the real mem32: nothing allocated per frame, either size.
    assert res[(1, 60)][0] == 0 and res[(1, 1514)][0] == 0, out
    # The plain loop is correct (checked above) but allocates: on a 32-bit board a FIFO word
    # of 2**30 or more is a heap int. That is why the kernels exist.
    assert res[(0, 1514)][0] > 1000, out
    print("emuboard LAN9118 send+recv per frame (bytes allocated, us of emulated time): "
          + ", ".join("%s %d B: %d B, %d us" % ("viper" if k[0] else "plain", k[1], *v)
                      for k, v in sorted(res.items(), reverse=True)))


def test_firmware_manifest_freezes_stack_and_the_board_file():
    # firmware/manifest.py (with STACK_BOARD=qemu_mps2) is what the firmware froze: the
    # filesystem is empty, yet stack and boards.qemu_mps2 import, from the frozen modules.
    code = ("import os, stack, boards.qemu_mps2 as b\n"
            "print('FILES', os.listdir('/'))\n"
            "print('FROM', stack.__file__, b.__file__)\n"
            "l = b.link(); print('LINK', l, l.stats['fast'])\n")
    with emuboard.EmuBoard("test") as eb, Board(eb.port, timeout_s=30) as b:
        b.enter_raw()
        out = b.exec(code).decode()
    assert "FILES []" in out, out
    # Frozen modules' __file__ is their path in the manifest (no filesystem has them).
    assert "FROM stack/__init__.py boards/qemu_mps2.py" in out, out
    assert "LINK <LAN9118 id=0x01180001 mac=52:54:00:12:34:56 mtu=1500> True" in out, out


def test_make_romfs_image_mounts_at_rom_and_the_stack_imports_from_it(tmp_path):
    img = str(tmp_path / "stack.romfs")
    proc = subprocess.run(["make", "-s", "romfs", "ROMFS=" + img], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.getsize(img) > 10000
    with open(img, "rb") as f:
        assert f.read(4)[:3] == b"\xd2\xcd\x31"  # ROMFS header: 0x80 | 'R', 'M', '1'
    # Frozen modules shadow /rom/lib: take them off the path to import the image's copy.
    code = ("import sys, os\nprint('PATH', sys.path)\n"
            "print('ROM', sorted(os.listdir('/rom/lib/stack'))[:3])\n"
            "sys.path.remove('.frozen')\n"
            "import stack, gc\nfrom stack.link.lan9118 import LAN9118\n"
            "from machine import mem32\n"
            "net = stack.Stack(LAN9118(0x40200000, mem32=mem32, fast=True), ip='10.0.0.2')\n"
            "print('FROM', stack.__file__, net.poll() is not None or True)\n")
    with emuboard.EmuBoard("test", romfs=img) as eb, Board(eb.port, timeout_s=30) as b:
        b.enter_raw()
        out = b.exec(code).decode()
    assert "'/rom/lib'" in out.split("PATH", 1)[1].splitlines()[0], out
    assert "ROM ['__init__.mpy'" in out, out
    assert "FROM /rom/lib/stack/__init__.mpy True" in out, out
