# The emulated board: bare-metal MicroPython on QEMU's mps2-an385 (Cortex-M3) with its LAN9118
# Ethernet on a tap device and its UART on a pty, like a board on a LAN and a serial port.
# CPython only. MIT licence.
#
#   python3 tools/emuboard.py build [--size test|board]     build (or reuse) the firmware
#   python3 tools/emuboard.py run [--netns NS --tap TAP] [--romfs IMG] [--size ...]
#                        start it; prints PORT=/dev/pts/N; runs until Ctrl-C, then kills QEMU
#   python3 tools/emuboard.py romfs [-o IMG] [--board B]   a ROMFS image of stack/ and the
#                        board file, compiled for B (default qemu_mps2), with mpremote romfs
#
# The firmware (build/emuboard/fw/qemu_mps2-<size>-<hash>.elf, cached by its inputs like
# tools/mcu.py's) is ports/qemu for MPS2_AN385 from the pinned MicroPython source, with
# - firmware/manifest.py frozen (all of stack/, boards/qemu_mps2.py) through
#   tools/qemu_mps2/manifest.py, which adds asyncio and _boot.py; native code for armv6m
#   (the RP2040's instruction set; the M3 runs it);
# - littlefs (MICROPY_VFS_LFS2): _boot.py mounts a RAM disk at / (2 MiB of SSRAM at
#   0x20000000, outside the heap), the board's writable "flash": `make deploy` copies
#   boot.py, main.py, config.py (and lib/) onto it with mpremote, as onto a real board;
# - a small C module (tools/qemu_mps2/cmod/emuboard): boot.py then main.py after every reset,
#   and Ctrl-C that interrupts running code (the port alone does neither);
# - sizes: "test" = 2 MiB heap, "board" = 190 KiB (an RP2040's).
# A ROMFS image given with --romfs is loaded at 0x21000000 and mounted at /rom (/rom/lib on
# sys.path). One QEMU at a time on this machine (tools/mcu.py's lock); always killed.

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcu  # noqa: E402

ROOT = mcu.ROOT
OUT = os.path.join(ROOT, "build", "emuboard")
GLUE = os.path.join(ROOT, "tools", "qemu_mps2")
SIZES = {"test": mcu.HEAP_TEST, "board": mcu.HEAP_BOARD}
BOARD = "qemu_mps2"
LAN9118_MAC = "52:54:00:12:34:56"  # QEMU's default for the first NIC
ROMFS_ADDR = 0x21000000

MissingError = mcu.MissingError
MCUError = mcu.MCUError
prerequisites = mcu.prerequisites


def frozen_files():
    """Repo-relative paths of everything the firmware freezes from this repo."""
    out = mcu.stack_files() + ["boards/%s.py" % BOARD, "firmware/manifest.py"]
    for dirpath, dirnames, filenames in os.walk(GLUE):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        out += sorted(os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames)
    return out


def make_vars(size, src):
    return {
        "BOARD": "MPS2_AN385",
        "MICROPY_HEAP_SIZE": str(SIZES[size]),
        "MICROPY_VFS_LFS2": "1",
        "MPY_CROSS_FLAGS": "-march=armv6m",
        "CFLAGS_EXTRA": "-Dmp_hal_time_ns=mp_hal_ticks_ms",  # the port has no RTC (littlefs)
        "FROZEN_MANIFEST": os.path.join(GLUE, "manifest.py"),
        "MPY_LIB_DIR": os.path.join(OUT, "no-micropython-lib"),
        "USER_C_MODULES": os.path.join(GLUE, "cmod"),
        "BUILD": os.path.join(OUT, "obj-" + size),
    }


def _env():
    env = dict(os.environ)
    env.update(STACK_ROOT=ROOT, STACK_BOARD=BOARD, STACK_PORT_MANIFEST="0")
    return env


def build(size="test", quiet=False):
    """The firmware path for size, built only if its inputs changed."""
    mcu.check_tools()
    src, src_id = mcu.source()
    with mcu._locked(mcu.LOCK):
        mv = make_vars(size, src)
        h = hashlib.sha256()
        for k in sorted(mv):
            if k != "BUILD":
                h.update(("%s=%s\n" % (k, mv[k])).encode())
        h.update(src_id.encode())
        h.update(mcu._compiler_id().encode())
        for rel in frozen_files():
            h.update(rel.encode())
            with open(os.path.join(ROOT, rel), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        fw = os.path.join(OUT, "fw", "%s-%s-%s.elf" % (BOARD, size, h.hexdigest()[:16]))
        if os.path.exists(fw):
            return fw
        t0 = time.monotonic()
        os.makedirs(os.path.join(OUT, "fw"), exist_ok=True)
        os.makedirs(mv["MPY_LIB_DIR"], exist_ok=True)
        with open(os.path.join(mv["MPY_LIB_DIR"], "README.md"), "w") as f:
            f.write("Not micropython-lib: the manifest requires nothing from it.\n")
        if not os.path.exists(os.path.join(src, "mpy-cross", "build", "mpy-cross")):
            mcu._run_make(["-C", os.path.join(src, "mpy-cross")],
                          os.path.join(OUT, "mpy-cross.log"), "building mpy-cross")
        log = os.path.join(OUT, "build-%s.log" % size)
        cmd = ["nice", "-n", "10", "make", "-j2", "-C", os.path.join(src, "ports", "qemu")]
        cmd += ["%s=%s" % kv for kv in sorted(mv.items())]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", env=_env())
        with open(log, "w") as f:
            f.write(" ".join(cmd) + "\n" + proc.stdout)
        if proc.returncode != 0:
            raise MCUError("building the emulated board (%s) failed (log: %s):\n%s" % (
                size, os.path.relpath(log, ROOT), "\n".join(proc.stdout.splitlines()[-25:])))
        tmp = fw + ".tmp"
        shutil.copyfile(os.path.join(mv["BUILD"], "firmware.elf"), tmp)
        os.replace(tmp, fw)
        for old in os.listdir(os.path.join(OUT, "fw")):
            if old.startswith("%s-%s-" % (BOARD, size)) and old != os.path.basename(fw):
                os.remove(os.path.join(OUT, "fw", old))
        if not quiet:
            print("emuboard: built %s in %.1f s: %s" % (size, time.monotonic() - t0,
                                                        os.path.relpath(fw, ROOT)))
        return fw


def romfs(out, src_dir=None, board=BOARD):
    """A ROMFS image (mpremote romfs build) of src_dir; by default lib/ as `make mpy
    BOARD=board` compiles it (stack/ and the board file as .mpy for the board's -march), so
    on a board that mounts the image at /rom, /rom/lib/stack imports."""
    mpremote = mcu_tool("mpremote")
    if src_dir is None:
        import mpy

        try:
            mpy.build(board)  # build/<board>/lib/{stack,boards}/...
        except mpy.BuildError as e:
            raise MCUError(str(e))
        src_dir = os.path.join(ROOT, "build", board, "romfs")
        shutil.rmtree(src_dir, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, "build", board, "lib"),
                        os.path.join(src_dir, "lib"))
    proc = subprocess.run([mpremote, "romfs", "--no-mpy", "-o", out, "build", src_dir],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not os.path.isfile(out):
        raise MCUError("mpremote romfs build failed: %s" % (proc.stderr or proc.stdout))
    return out


def mcu_tool(name):
    for c in (os.path.join(ROOT, ".venv", "bin", name), shutil.which(name)):
        if c and os.access(c, os.X_OK):
            return c
    raise MissingError("%s not found: run `make .venv`" % name)


class EmuBoard:
    """The emulated board running: QEMU with its UART on a pty (self.port) and, given a tap
    device in a network namespace, its LAN9118 on that tap. Use as a context manager: QEMU
    is killed on exit, whatever happened."""

    def __init__(self, size="test", netns=None, tap=None, mac=LAN9118_MAC, romfs=None,
                 fw=None, log=None):
        self.fw = fw or build(size, quiet=True)
        self.netns = netns
        self.tap = tap
        self.mac = mac
        self.romfs = romfs
        self.proc = None
        self.port = None
        self._lock = None
        self.log = log or os.path.join(OUT, "qemu.log")

    def cmd(self):
        cmd = ["qemu-system-arm", "-machine", "mps2-an385", "-nographic", "-monitor", "null",
               "-semihosting", "-serial", "pty", "-kernel", self.fw]
        if self.tap:
            cmd += ["-nic", "tap,ifname=%s,script=no,downscript=no,model=lan9118,mac=%s"
                    % (self.tap, self.mac)]
        else:
            cmd += ["-nic", "none"]
        if self.romfs:
            cmd += ["-device", "loader,file=%s,addr=0x%x,force-raw=on"
                    % (self.romfs, ROMFS_ADDR)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self, timeout_s=20):
        self._lock = mcu._locked(os.path.join(mcu.OUT, "qemu.lock"))
        os.makedirs(os.path.dirname(self.log), exist_ok=True)
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                text = f.read().decode(errors="replace")
            m = re.search(r"char device redirected to (/dev/pts/\d+)", text)
            if m:
                self.port = m.group(1)
                return self.port
            if self.proc.poll() is not None:
                self.close()
                raise MCUError("QEMU exited (%s): %s" % (self.proc.returncode, text[-500:]))
            time.sleep(0.05)
        self.close()
        raise MCUError("QEMU gave no pty within %d s" % timeout_s)

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
        if getattr(self, "_logf", None) is not None:
            self._logf.close()
            self._logf = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def main(argv):
    ap = argparse.ArgumentParser(description="The emulated board (see the header)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--size", default="test", choices=sorted(SIZES))
    r = sub.add_parser("run")
    r.add_argument("--size", default="test", choices=sorted(SIZES))
    r.add_argument("--netns", help="network namespace QEMU runs in (where --tap is)")
    r.add_argument("--tap", help="tap device for the LAN9118 (QEMU opens it by name)")
    r.add_argument("--mac", default=LAN9118_MAC)
    r.add_argument("--romfs", help="a ROMFS image, loaded at 0x21000000 (/rom)")
    f = sub.add_parser("romfs")
    f.add_argument("-o", "--output", default=os.path.join(ROOT, "build", "stack.romfs"))
    f.add_argument("--board", default=BOARD)
    f.add_argument("dir", nargs="?", help="folder to pack (default: lib/ of make mpy "
                   "BOARD=<board>)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(os.path.relpath(build(args.size), ROOT))
        elif args.cmd == "romfs":
            out = romfs(args.output, args.dir, args.board)
            print("romfs: %s (%d bytes)" % (os.path.relpath(out, ROOT), os.path.getsize(out)))
        else:
            with EmuBoard(args.size, args.netns, args.tap, args.mac, args.romfs) as board:
                print("PORT=%s" % board.port, flush=True)
                try:
                    while board.proc.poll() is None:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    pass
    except MissingError as e:
        print("emuboard: %s" % e, file=sys.stderr)
        return 2
    except MCUError as e:
        print("emuboard: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
