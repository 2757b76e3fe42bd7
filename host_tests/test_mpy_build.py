# `make mpy`: per-board .mpy files with the board's -march, their sizes and total; the freeze
# manifest names files that exist. CPython only. MIT licence.

import os
import re
import subprocess
import sys

import pytest

import mp

ROOT = str(mp.ROOT)
_ARCH = {"armv6m": 4, "xtensawin": 10}  # the arch field of an .mpy header (byte 2 >> 2)


def _make_mpy(board):
    mp.mpy_cross_cmd()  # skip (fail in CI) without it
    out = subprocess.run(["make", "-s", "mpy", "BOARD=" + board], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _table(text):
    rows = []
    total = None
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\s+(\S+)", line)
        if not m:
            continue
        if m.group(2) == "total,":
            total = int(m.group(1))
        else:
            rows.append((m.group(2), int(m.group(1))))
    return rows, total


@pytest.mark.parametrize("board,march", [("host_packet", None),
                                         ("w5500_evb_pico", "armv6m"),
                                         ("esp32_w5500", "xtensawin")])
def test_make_mpy_sizes_and_march(board, march):
    if not os.path.exists(os.path.join(ROOT, "boards", board + ".py")):
        # Board files come with the W5500 driver (issue 4); until then the core alone.
        mp.mpy_cross_cmd()
        out = subprocess.run([sys.executable,
                              "tools/mpy.py", "--board", "host_packet", "--march", march,
                              "--out", "build/test-" + march], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0 and "-march %s" % march in out.stdout, out.stderr
        with open(os.path.join(ROOT, "build", "test-" + march, "lib", "stack",
                               "_checksum_viper.mpy"), "rb") as f:
            assert f.read(4)[2] >> 2 == _ARCH[march]
        return
    text = _make_mpy(board)
    assert ("-march %s" % (march or "none (bytecode)")) in text.splitlines()[0], text
    rows, total = _table(text)
    out = os.path.join(ROOT, "build", board)
    assert rows and total == sum(n for _, n in rows), text
    paths = [p for p, _ in rows]
    for path, n in rows:
        assert os.path.getsize(os.path.join(out, path)) == n, path
    assert "lib/stack/iface.mpy" in paths and "lib/boards/%s.mpy" % board in paths
    assert "lib/stack/debug.mpy" in paths
    if march is None:
        # Viper needs a -march: a host board gets the source, compiled at import.
        assert "lib/stack/_checksum_viper.py" in paths and "source" in text
        assert "lib/stack/link/packet.mpy" in paths
    else:
        with open(os.path.join(out, "lib/stack/_checksum_viper.mpy"), "rb") as f:
            head = f.read(4)
        assert head[:2] == b"M\x06" and head[2] >> 2 == _ARCH[march], head
        # Host-only links stay off a board.
        assert "lib/stack/link/tun.mpy" not in paths
        assert "lib/stack/link/packet.mpy" not in paths
        assert "lib/stack/link/w5500.mpy" in paths


def test_make_mpy_unknown_board():
    mp.mpy_cross_cmd()
    out = subprocess.run(["make", "-s", "mpy", "BOARD=nonesuch"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "no board 'nonesuch': boards/ has" in out.stderr and "host_packet" in out.stderr


def test_manifest_names_existing_files():
    """Run firmware/manifest.py against a stand-in for MicroPython's manifest functions."""
    calls = []
    here = os.path.join(ROOT, "firmware")

    def include(path, **kw):
        assert path.startswith("$(PORT_DIR)") or os.path.exists(os.path.join(here, path))
        calls.append(("include", path))

    def package(name, files=None, base_path=".", opt=None):
        base = os.path.normpath(os.path.join(here, base_path, name))
        assert os.path.isdir(base), base
        for f in files or []:
            assert os.path.exists(os.path.join(base, f)), f
        calls.append(("package", name, tuple(files or ())))

    def module(name, base_path=".", opt=None):
        assert os.path.exists(os.path.join(here, base_path, name))
        calls.append(("module", name))

    for board in ("w5500_evb_pico", "host_packet"):
        if not os.path.exists(os.path.join(ROOT, "boards", board + ".py")):
            continue
        calls.clear()
        os.environ["STACK_BOARD"] = board
        try:
            with open(os.path.join(here, "manifest.py")) as f:
                exec(compile(f.read(), "manifest.py", "exec"),
                     {"include": include, "package": package, "module": module,
                      "require": lambda *a, **k: None, "freeze": lambda *a, **k: None})
        finally:
            del os.environ["STACK_BOARD"]
        assert ("package", "stack", ()) in calls
        assert ("package", "boards", (board + ".py",)) in calls
