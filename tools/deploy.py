# Put the stack on a board with mpremote, as `make deploy` does; or open its REPL. MIT licence.
#
#   python3 tools/deploy.py --board w5500_evb_pico --port /dev/ttyACM0 [--config my.py]
#   python3 tools/deploy.py repl --port /dev/ttyACM0
#
# deploy: checks the port (it exists, nobody else has it open, MicroPython answers on it),
# compiles stack/ and the board file (tools/mpy.py), copies them to the board's /lib with
# mpremote, copies firmware/boot.py, main.py and the config (as config.py; --board
# overrides its BOARD line), then soft-resets the board from its friendly REPL so boot.py
# and main.py run, and shows what main.py prints until its READY line (--wait).
# Paths on the board are relative to its working directory, "/" on a board (the virtual
# board's is its flash folder), never absolute.

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mpy  # noqa: E402
from rawrepl import Board, BoardError  # noqa: E402

ROOT = mpy.ROOT
SCRIPTS = ("boot.py", "main.py")


def mpremote():
    for c in (os.path.join(ROOT, ".venv", "bin", "mpremote"), shutil.which("mpremote")):
        if c and os.access(c, os.X_OK):
            return c
    raise BoardError("mpremote not found: run `make .venv`")


def check_port(port):
    """Missing, busy, or not MicroPython: a BoardError saying which."""
    with Board(port, timeout_s=5.0) as b:
        b.enter_raw()
        out = b.exec("import sys\nprint(sys.implementation.name, sys.platform)")
        b.exit_raw()
    name = out.decode(errors="replace").split()
    if not name or name[0] != "micropython":
        raise BoardError("%s runs %r, not MicroPython" % (port, out))
    return " ".join(name)


def stage(board, config):
    """build/<board>/: lib/ from tools/mpy.py plus boot.py, main.py, config.py."""
    rows, march = mpy.build(board)
    out = os.path.join(ROOT, "build", board)
    for name in SCRIPTS:
        shutil.copyfile(os.path.join(ROOT, "firmware", name), os.path.join(out, name))
    with open(config) as f:
        text = f.read()
    text, n = re.subn(r"^BOARD\s*=.*$", "BOARD = %r" % board, text, count=1, flags=re.M)
    if not n:
        text = "BOARD = %r\n" % board + text
    with open(os.path.join(out, "config.py"), "w") as f:
        f.write(text)
    return out, rows, march


def copy_commands(out, rows):
    """mpremote arguments: make the folders, then one `fs cp SRC :DEST` per file."""
    dirs = []
    for rel, _, _ in rows:
        d = os.path.dirname(rel)
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in dirs:
                dirs.append(p)
    mkdirs = ("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
              % (dirs,))
    args = ["exec", mkdirs]
    for rel, _, _ in rows:
        args += ["+", "fs", "cp", os.path.join(out, rel), ":" + rel]
    for name in SCRIPTS + ("config.py",):
        args += ["+", "fs", "cp", os.path.join(out, name), ":" + name]
    return args


def deploy(board, port, config, wait_s, reset=True):
    who = check_port(port)
    print("deploy: %s on %s" % (who, port))
    out, rows, march = stage(board, config)
    print(mpy.report(board, rows, march))
    cmd = [mpremote(), "connect", port] + copy_commands(out, rows)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise BoardError("mpremote failed (%d): %s" % (proc.returncode,
                                                      (proc.stderr or proc.stdout).strip()))
    print("deploy: copied %d files and %s, config.py" % (len(rows), ", ".join(SCRIPTS)))
    if not reset:
        return
    with Board(port) as b:
        text = b.soft_reset(wait_for=b"READY" if wait_s else None, timeout_s=wait_s or 20)
    print("deploy: soft reset; the board says:")
    for line in text.decode(errors="replace").splitlines():
        if line.strip():
            print("  " + line.rstrip())


def repl(port):
    Board(port).close()  # missing or busy: say so before mpremote does
    os.execv(mpremote(), [mpremote(), "connect", port, "repl"])


def main(argv):
    if argv and argv[0] == "repl":
        ap = argparse.ArgumentParser(prog="deploy.py repl")
        ap.add_argument("--port", default=os.environ.get("PORT", ""))
        args = ap.parse_args(argv[1:])
        try:
            repl(args.port)
        except BoardError as e:
            print("repl: %s" % e, file=sys.stderr)
            return 2
        return 0
    ap = argparse.ArgumentParser(description="Deploy the stack and firmware to a board.")
    ap.add_argument("--board", default=None, help="a file in boards/ (default: config's)")
    ap.add_argument("--port", default=os.environ.get("PORT", ""))
    ap.add_argument("--config", default=os.path.join(ROOT, "firmware", "config.py"))
    ap.add_argument("--wait", type=float, default=20.0,
                    help="seconds to wait for main.py's READY line (0: do not wait)")
    ap.add_argument("--no-reset", action="store_true", help="copy only, no soft reset")
    args = ap.parse_args(argv)
    board = args.board or mpy.default_board(args.config)
    try:
        deploy(board, args.port, args.config, args.wait, reset=not args.no_reset)
    except (BoardError, mpy.BuildError, OSError, subprocess.TimeoutExpired) as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
