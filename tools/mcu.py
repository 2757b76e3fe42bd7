# Bare-metal MicroPython on QEMU's Cortex-M boards: build the firmware, run the core tests.
# CPython only. MIT licence.
#
#   python3 tools/mcu.py build [VARIANT ...]          build (or reuse) firmware; print paths
#   python3 tools/mcu.py test [-v] [--variant V] [MODULE ...]
#                                                    core tests on the emulated board
#   python3 tools/mcu.py variants                     what each variant is
#
# Source: MICROPYTHON_SRC (an unpacked MicroPython tree) or the pinned tarball
# ../shared/third_party/micropython-1c3c2011.tar.gz, unpacked once under build/mcu/.
# Every variant freezes what a board gets (stack/, viper code compiled for armv6m, the RP2040's
# instruction set) plus asyncio (the port has no C _asyncio, so task.py is frozen too) and the
# core test modules (host_tests.MODULES, run_tests.py and the helpers they import).
#
# Firmware is cached by its inputs: build/mcu/fw/<variant>-<hash>.elf, where the hash covers
# the MicroPython source, the make variables, the generated manifest, the linker script, the
# compiler's version and every frozen file. A rerun with nothing changed builds nothing.
# Object files stay in build/mcu/obj/<variant>/, so a change to a frozen file only
# recompiles the frozen code and relinks (a few seconds).
#
# Running: one QEMU at a time (a lock file serialises runs, also across checkouts' pytest
# sessions on this machine), its UART on stdio, driven through the raw REPL; one test module
# per soft reset; QEMU is always killed at the end (an idle QEMU busy-polls its UART and keeps
# a host core at 100%). Facts and traps: ../shared/reference/MCU-EMULATION.md.

import argparse
import fcntl
import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_TESTS = os.path.join(ROOT, "host_tests")
OUT = os.path.join(ROOT, "build", "mcu")
TARBALL = os.path.normpath(os.path.join(
    ROOT, "..", "shared", "third_party", "micropython-1c3c2011.tar.gz"))
LOCK = os.path.join(OUT, "lock")

HEAP_TEST = 2 * 1024 * 1024  # as the unix port's default heap
HEAP_BOARD = 190 * 1024  # what an RP2040 running MicroPython leaves for Python

# name -> what it is. "sram" is the micro:bit machine's SRAM (QEMU's nrf51-soc.sram-size):
# 256 KiB by default in the port; the 2 MiB heap needs the 4 MiB linker script below.
VARIANTS = {
    "m0-test": dict(board="MICROBIT", heap=HEAP_TEST, sram=4 * 1024 * 1024,
                    what="micro:bit machine, Cortex-M0 (ARMv6-M), native emitter on, 2 MiB heap"),
    "m0-board": dict(board="MICROBIT", heap=HEAP_BOARD, sram=256 * 1024,
                     what="micro:bit machine, Cortex-M0 (ARMv6-M), native emitter on, "
                          "190 KiB heap (RP2040-sized)"),
    "m3-test": dict(board="MPS2_AN385", heap=HEAP_TEST,
                    what="mps2-an385, Cortex-M3 (ARMv7-M), 2 MiB heap"),
    "m3-board": dict(board="MPS2_AN385", heap=HEAP_BOARD,
                     what="mps2-an385, Cortex-M3 (ARMv7-M), 190 KiB heap"),
}
DEFAULT_VARIANTS = ("m0-test", "m0-board", "m3-test", "m3-board")

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
MODULE_TIMEOUT_S = 240  # one module on the emulated CPU (the slowest, test_fuzz, ~30 s)


class MCUError(Exception):
    """Something the user can act on: a missing tool or source, a failed build."""


class MissingError(MCUError):
    """A prerequisite (toolchain, QEMU, pinned source) is absent: tests skip on it."""


# --- source and build ------------------------------------------------------------------------

def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def source():
    """(path of the MicroPython tree, an id of its contents for the cache key)."""
    env = os.environ.get("MICROPYTHON_SRC")
    if env:
        src = os.path.abspath(env)
        if not os.path.isfile(os.path.join(src, "ports", "qemu", "Makefile")):
            raise MissingError("MICROPYTHON_SRC=%s has no ports/qemu/Makefile" % env)
        # A tree can change under us: key it by every file's path, size and mtime.
        h = hashlib.sha256(src.encode())
        for d in ("py", "extmod", "shared", "lib", "ports/qemu", "mpy-cross", "tools"):
            for dirpath, dirnames, filenames in os.walk(os.path.join(src, d)):
                dirnames[:] = sorted(x for x in dirnames if not x.startswith("build"))
                for fn in sorted(filenames):
                    st = os.stat(os.path.join(dirpath, fn))
                    h.update(("%s/%s %d %d\n" % (dirpath, fn, st.st_size, st.st_mtime_ns))
                             .encode())
        return src, "tree:" + h.hexdigest()
    if not os.path.isfile(TARBALL):
        raise MissingError("no MicroPython source: %s is missing (a clone without ../shared); "
                           "set MICROPYTHON_SRC= to an unpacked MicroPython tree"
                           % os.path.relpath(TARBALL, ROOT))
    digest = _sha256_file(TARBALL)
    dest = os.path.join(OUT, "src-" + digest[:12])
    src = os.path.join(dest, "micropython")
    stamp = os.path.join(dest, ".unpacked")
    if not os.path.exists(stamp):
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        with tarfile.open(TARBALL) as t:
            t.extractall(dest, filter="data")
        if not os.path.isdir(src):
            raise MCUError("%s did not unpack to micropython/" % TARBALL)
        open(stamp, "w").close()
    return src, "tarball:" + digest


def check_tools():
    """Raise MissingError naming what is missing (tools/need.sh mcu installs it)."""
    gone = [c for c in ("arm-none-eabi-gcc", "qemu-system-arm", "make")
            if shutil.which(c) is None]
    if gone:
        raise MissingError("missing %s: run `tools/need.sh mcu` as root (Debian packages "
                           "qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi)"
                           % ", ".join(gone))


def prerequisites():
    """None when firmware can be built here, else one line saying what is missing."""
    try:
        check_tools()
    except MissingError as e:
        return str(e)
    env = os.environ.get("MICROPYTHON_SRC")
    if env and not os.path.isfile(os.path.join(env, "ports", "qemu", "Makefile")):
        return "MICROPYTHON_SRC=%s has no ports/qemu/Makefile" % env
    if not env and not os.path.isfile(TARBALL):
        return ("no MicroPython source: %s is missing (a clone without ../shared); set "
                "MICROPYTHON_SRC= to an unpacked MicroPython tree"
                % os.path.relpath(TARBALL, ROOT))
    return None


_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.M)


def test_files():
    """host_tests files the core modules need: MODULES, run_tests.py and what they import."""
    sys.path.insert(0, ROOT)
    try:
        from host_tests import MODULES
    finally:
        sys.path.remove(ROOT)
    todo = ["run_tests"] + list(MODULES)
    seen = []
    while todo:
        name = todo.pop()
        if name in seen or not os.path.isfile(os.path.join(HOST_TESTS, name + ".py")):
            continue
        seen.append(name)
        with open(os.path.join(HOST_TESTS, name + ".py")) as f:
            todo.extend(_IMPORT.findall(f.read()))
    return sorted(n + ".py" for n in seen)


def stack_files():
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "stack")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        out += sorted(os.path.relpath(os.path.join(dirpath, f), ROOT)
                      for f in filenames if f.endswith(".py"))
    return out


def manifest_text(src):
    # All of stack/ as firmware/manifest.py freezes it; asyncio with task.py (the port lacks
    # _asyncio); the test modules at the top level, where run_tests.py imports them by name.
    lines = [
        "# Generated by tools/mcu.py: what the emulated boards freeze.",
        "package('asyncio', base_path=%r, opt=3)" % os.path.join(src, "extmod"),
        "package('stack', base_path=%r)" % ROOT,
    ]
    lines += ["module(%r, base_path=%r)" % (f, HOST_TESTS) for f in test_files()]
    return "\n".join(lines) + "\n"


def _ldscript(variant):
    # The port's nRF51 script with RAM raised to the SRAM the QEMU machine is given.
    sram = VARIANTS[variant].get("sram")
    if not sram or sram == 256 * 1024:
        return None, ""
    return "nrf51_%dk.ld" % (sram // 1024), (
        "/* Generated by tools/mcu.py: the port's mcu/arm/nrf51.ld with %d KiB of RAM. */\n"
        "MEMORY\n{\n    ROM : ORIGIN = 0x00000000, LENGTH = 1M\n"
        "    RAM : ORIGIN = 0x20000000, LENGTH = %dK\n}\n"
        "REGION_ALIAS(\"ISR\", ROM)\nREGION_ALIAS(\"TEXT\", ROM)\n"
        "REGION_ALIAS(\"DATA\", RAM)\nREGION_ALIAS(\"BSS\", RAM)\n"
        "_estack = ORIGIN(RAM) + LENGTH(RAM);\n"
        "INCLUDE \"mcu/arm/cortex-m.ld\"\n" % (sram // 1024, sram // 1024))


def make_vars(variant, src):
    v = VARIANTS[variant]
    cflags = ["-Dmp_hal_time_ns=mp_hal_ticks_ms"]  # the port has no RTC (needed by littlefs)
    if v["board"] == "MICROBIT":
        # QEMU's nRF51 SysTick runs at 16 MHz (the port assumes 25); the port switches the
        # native emitter off for this machine, and the RP2040-like core is why we want it.
        cflags += ["-DCPU_FREQ_HZ=16000000u", "-DMICROPY_EMIT_THUMB=1"]
    mv = {
        "BOARD": v["board"],
        "MICROPY_HEAP_SIZE": str(v["heap"]),
        "MPY_CROSS_FLAGS": "-march=armv6m",
        "CFLAGS_EXTRA": " ".join(cflags),
        "FROZEN_MANIFEST": os.path.join(OUT, "manifest.py"),
        # The manifest require()s nothing; this folder only satisfies the port's check that
        # micropython-lib is present.
        "MPY_LIB_DIR": os.path.join(OUT, "no-micropython-lib"),
        # One object folder per board and source tree: the test and board sizes differ only
        # in main.c (the heap array) and the link, so build() recompiles just that when
        # switching; another source tree (MICROPYTHON_SRC=) gets folders of its own.
        "BUILD": os.path.join(OUT, "obj", "%s-%s" % (
            v["board"], hashlib.sha256(src.encode()).hexdigest()[:8])),
    }
    ld_name, _ = _ldscript(variant)
    if ld_name:
        mv["LDSCRIPT"] = os.path.join(OUT, ld_name)
    return mv


def _compiler_id():
    try:
        return subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def cache_key(variant, src, src_id):
    h = hashlib.sha256()
    mv = make_vars(variant, src)
    for k in sorted(mv):
        if k != "BUILD":
            h.update(("%s=%s\n" % (k, mv[k])).encode())
    h.update(src_id.encode())
    h.update(_compiler_id().encode())
    h.update(manifest_text(src).encode())
    h.update(_ldscript(variant)[1].encode())
    for rel in stack_files() + ["host_tests/" + f for f in test_files()]:
        h.update(rel.encode())
        with open(os.path.join(ROOT, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def firmware_path(variant, key):
    return os.path.join(OUT, "fw", "%s-%s.elf" % (variant, key))


def _run_make(args, log, what):
    cmd = ["nice", "-n", "10", "make", "-j2"] + args
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace")
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n" + proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise MCUError("%s failed (full log: %s):\n%s" % (what, os.path.relpath(log, ROOT),
                                                         tail))


def _switch_size(mv):
    # make does not track command-line variables: when this board's folder last built another
    # heap size or linker script, drop what depends on them (main.o holds the heap array).
    stamp = os.path.join(mv["BUILD"], ".size")
    want = "%s %s\n" % (mv["MICROPY_HEAP_SIZE"], mv.get("LDSCRIPT", "-"))
    try:
        with open(stamp) as f:
            have = f.read()
    except OSError:
        have = None
    if have != want:
        for name in ("main.o", "firmware.elf", "firmware.bin"):
            try:
                os.remove(os.path.join(mv["BUILD"], name))
            except OSError:
                pass
        os.makedirs(mv["BUILD"], exist_ok=True)
        with open(stamp, "w") as f:
            f.write(want)


def build(variant, quiet=False):
    """Return the firmware path for variant, building it only if its inputs changed."""
    check_tools()
    src, src_id = source()
    with _locked(LOCK):
        key = cache_key(variant, src, src_id)
        fw = firmware_path(variant, key)
        if os.path.exists(fw):
            return fw
        t0 = time.monotonic()
        os.makedirs(os.path.join(OUT, "fw"), exist_ok=True)
        os.makedirs(os.path.join(OUT, "no-micropython-lib"), exist_ok=True)
        with open(os.path.join(OUT, "no-micropython-lib", "README.md"), "w") as f:
            f.write("Not micropython-lib: the generated manifest requires nothing from it.\n")
        with open(os.path.join(OUT, "manifest.py"), "w") as f:
            f.write(manifest_text(src))
        ld_name, ld_text = _ldscript(variant)
        if ld_name:
            with open(os.path.join(OUT, ld_name), "w") as f:
                f.write(ld_text)
        # mpy-cross first: the port's own sub-make would inherit BUILD= and CFLAGS_EXTRA=.
        if not os.path.exists(os.path.join(src, "mpy-cross", "build", "mpy-cross")):
            _run_make(["-C", os.path.join(src, "mpy-cross")],
                      os.path.join(OUT, "mpy-cross.log"), "building mpy-cross")
        mv = make_vars(variant, src)
        _switch_size(mv)
        _run_make(["-C", os.path.join(src, "ports", "qemu")]
                  + ["%s=%s" % kv for kv in sorted(mv.items())],
                  os.path.join(OUT, "build-%s.log" % variant), "building %s" % variant)
        tmp = fw + ".tmp"
        shutil.copyfile(os.path.join(mv["BUILD"], "firmware.elf"), tmp)
        os.replace(tmp, fw)
        # Older firmware of this variant is stale now.
        for old in os.listdir(os.path.join(OUT, "fw")):
            if old.startswith(variant + "-") and old != os.path.basename(fw):
                os.remove(os.path.join(OUT, "fw", old))
        if not quiet:
            print("mcu: built %s in %.1f s: %s" % (variant, time.monotonic() - t0,
                                                    os.path.relpath(fw, ROOT)))
        return fw


# --- running ---------------------------------------------------------------------------------

def qemu_cmd(variant, fw, extra_args=()):
    """QEMU's command line; extra_args (e.g. ("-icount", "shift=0")) go before -kernel."""
    v = VARIANTS[variant]
    cmd = ["qemu-system-arm", "-nographic", "-monitor", "null", "-semihosting",
           "-serial", "stdio"]
    if v["board"] == "MICROBIT":
        cmd += ["-machine", "microbit", "-global", "nrf51-soc.flash-size=1048576",
                "-global", "nrf51-soc.sram-size=%d" % v["sram"]]
    else:
        cmd += ["-machine", "mps2-an385"]
    return cmd + list(extra_args) + ["-kernel", fw]


def _die_with_parent():
    # In the child before exec: SIGKILL QEMU if we die first (a CI timeout, kill -9), so no
    # orphan spins a core. Linux only; elsewhere the context manager still stops it.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover
        pass


class BoardTimeout(MCUError):
    pass


class Qemu:
    """One emulated board, driven through its raw REPL on QEMU's stdio. Use as a context
    manager: QEMU is killed on exit, whatever happened."""

    def __init__(self, variant, fw, extra_args=()):
        self.variant = variant
        self.cmd = qemu_cmd(variant, fw, extra_args)
        self.proc = None
        self.buf = b""
        self._lock = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._lock = self._lock or _locked(os.path.join(OUT, "qemu.lock"))
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.buf = b""
        self.enter_raw()

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                f.close()
            self.proc = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def restart(self):
        lock, self._lock = self._lock, None
        self.stop()
        self._lock = lock
        self.start()

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_until(self, marker, timeout_s):
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardTimeout("%s: no %r after %.0f s; last output: %r"
                                   % (self.variant, marker, timeout_s, self.buf[-300:]))
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise MCUError("%s: QEMU exited (%s); last output: %r"
                                   % (self.variant, self.proc.wait(), self.buf[-300:]))
                self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def enter_raw(self, timeout_s=30):
        self.write(b"\r\x03\x03\x01")
        self.read_until(RAW_PROMPT, timeout_s)

    def soft_reset(self, timeout_s=30):
        """Ctrl-D at the raw prompt: MicroPython frees its heap and comes back raw."""
        self.write(b"\x04")
        self.read_until(RAW_PROMPT, timeout_s)

    def exec(self, code, timeout_s=MODULE_TIMEOUT_S):
        """Run code; return (stdout, stderr) as text (stderr holds an uncaught traceback)."""
        self.buf = b""
        self.write(code.encode() + b"\x04")
        self.read_until(b"OK", 10)
        out = self.read_until(b"\x04", timeout_s)[:-1]
        err = self.read_until(b"\x04", 30)[:-1]
        self.read_until(b">", 10)
        return (out.decode(errors="replace").replace("\r\n", "\n"),
                err.decode(errors="replace").replace("\r\n", "\n"))


# What runs on the board for one module. Not sys.exit(): SystemExit leaves the raw REPL.
RUN_MODULE = """\
import gc, run_tests
_p, _f = run_tests.run([%r], %r)
gc.collect()
print('heap: %%d free, %%d allocated' %% (gc.mem_free(), gc.mem_alloc()))
print('%%d passed, %%d failed' %% (_p, _f))
"""


# What runs on the board for one test of a module (ISOLATED below).
RUN_ONE = """\
import gc, run_tests
_p, _f = run_tests.run([%r], %r, None, %r)
print('%%d passed, %%d failed' %% (_p, _f))
"""
LIST_TESTS = "import run_tests\nfor _l in run_tests.labels(%r): print(_l)\n"

# Modules whose tests each get a fresh heap on the board-sized builds: the fuzz campaigns
# hold a scenario's stack, frames and history, and test_aio two stacks, an asyncio run and
# payloads of several KiB; both fragment 190 KiB enough that what the module's earlier tests
# left behind decides whether a large block is still free.
ISOLATED = {"test_fuzz", "test_aio"}


def _exec(q, code):
    try:
        out, err = q.exec(code)
        return out + err
    except MCUError as e:
        out = "%s\n%s\n" % (q.buf.decode(errors="replace"), e)
        q.restart()
        return out


def _run_isolated(q, m, verbose):
    # One soft reset per test; the outputs joined, with one summary line at the end.
    listing = _exec(q, LIST_TESTS % m)
    labels = [x.strip() for x in listing.splitlines() if x.startswith(m + ".")]
    if not labels:
        return listing
    outs = []
    passed = failed = 0
    for label in labels:
        try:
            q.soft_reset()
        except MCUError:
            q.restart()
        out = _exec(q, RUN_ONE % (m, verbose, label))
        res = parse_result(out)
        if res is None:
            failed += 1
            outs.append("FAIL %s (no result)\n%s" % (label, out))
            continue
        passed += res[0]
        failed += res[1]
        outs.append("\n".join(out.strip().splitlines()[:-1]))
    body = "\n".join(o for o in outs if o)
    return "%s\n%d passed, %d failed\n" % (body, passed, failed)


def run_modules(variant, modules, verbose=False, fw=None, log=None):
    """Run each module after a soft reset; yield (module, stdout, seconds). A timeout or a
    crash restarts QEMU for the next module and yields its output with the error."""
    fw = fw or build(variant)
    small = VARIANTS[variant]["heap"] < HEAP_TEST
    with Qemu(variant, fw) as q:
        for i, m in enumerate(modules):
            t0 = time.monotonic()
            if i:
                try:
                    q.soft_reset()
                except MCUError:
                    q.restart()
            if small and m in ISOLATED:
                out = _run_isolated(q, m, verbose)
            else:
                out = _exec(q, RUN_MODULE % (m, verbose))
            yield m, out, time.monotonic() - t0


def parse_result(out):
    """(passed, failed) from a module's output, or None when the summary line is missing."""
    lines = out.strip().splitlines()
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1].strip()) if lines else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def main(argv):
    ap = argparse.ArgumentParser(description="Bare-metal MicroPython on QEMU (see the header)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS))
    t = sub.add_parser("test")
    t.add_argument("--variant", default="m0-test", choices=sorted(VARIANTS))
    t.add_argument("-v", action="store_true", help="print every test's name")
    t.add_argument("modules", nargs="*")
    sub.add_parser("variants")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "variants":
            for name in DEFAULT_VARIANTS:
                print("%-9s %s" % (name, VARIANTS[name]["what"]))
        elif args.cmd == "build":
            for v in args.variants:
                if v not in VARIANTS:
                    raise MCUError("unknown variant %r (%s)" % (v, ", ".join(VARIANTS)))
                print(os.path.relpath(build(v), ROOT))
        else:
            sys.path.insert(0, ROOT)
            from host_tests import MODULES

            bad = 0
            for m, out, dt in run_modules(args.variant, args.modules or MODULES, args.v):
                res = parse_result(out)
                ok = res is not None and res[1] == 0 and res[0] > 0
                bad += not ok
                if args.v or not ok:
                    print(out.rstrip())
                print("%-22s %-8s %5.1f s  %s" % (m, "ok" if ok else "FAILED", dt,
                                                  "%d passed, %d failed" % res if res else
                                                  "no result"))
            return 1 if bad else 0
    except MissingError as e:
        print("mcu: %s" % e, file=sys.stderr)
        return 2
    except MCUError as e:
        print("mcu: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
