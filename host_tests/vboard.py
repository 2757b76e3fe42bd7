# A virtual board: the MicroPython unix port behind a pseudo-terminal, like a board on a
# serial port. CPython only. MIT licence.
#
#   board = VBoard(netns="st123n1")       # micropython runs in that network namespace
#   board.port                            # "/dev/pts/7": give it to mpremote, tools/*.py
#   board.flash                           # the folder that plays the board's flash (its cwd)
#   board.close()                         # process killed, pty closed, temp folders removed
#
#   python3 host_tests/vboard.py [--netns NS] [--flash DIR]    # prints PORT, runs until ^C
#
# What a board does and how it is played here:
# - Reset: boot.py, then main.py (from the flash folder), then the friendly REPL. The port
#   runs a small launcher (`micropython -i`) that executes them in __main__, so main.py's
#   globals (net, resume()) are there at the REPL after Ctrl-C, as on a board. sys.path is
#   a board's: '' (flash), .frozen, lib.
# - The serial line: the host side is a pty (PORT); micropython's stdin/stdout are pipes and
#   this relay copies bytes both ways. Why not give micropython the pty itself: the unix
#   port switches its terminal between raw and cooked mode with tcsetattr(TCSAFLUSH), which
#   throws away input that arrived early (mpremote sends Ctrl-C then Ctrl-A at once; the
#   Ctrl-A would be lost). A pipe loses nothing.
# - Ctrl-C: a board's UART interrupt turns it into KeyboardInterrupt while code runs and
#   passes it on as a character at the REPL prompt. Here: a \x03 from the host becomes
#   SIGINT while micropython runs code, and the byte itself when micropython waits at its
#   prompt (blocked in read(0) per /proc/PID/syscall with nothing unread in the pipe).
#   The unix port dies of a SIGINT that lands at its prompt, so the check matters; should
#   it die anyway, it is restarted like a soft reset (counted in `sigint_deaths`).
# - Soft reset (Ctrl-D at an empty prompt): the unix port exits; the relay prints
#   "MPY: soft reboot" and starts it again: in the friendly REPL with boot.py and main.py,
#   in the raw REPL (what mpremote does) with boot.py only and straight back into the raw
#   REPL, as a board's pyexec does.
# - Flow: output waits for a host that reads slowly (mpremote reads a pty one byte per call;
#   dropping it there would lose the \x04 that ends a command), and is dropped while no
#   program has the port open (as a board's USB serial drops it with no host attached).
# - Output is the unix port's: print() ends lines with "\n" (a board sends "\r\n"); the
#   REPL's own lines ("raw REPL; CTRL-B to exit\r\n", "soft reboot\r\n") match a board's.
import argparse
import fcntl
import os
import platform
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty

import mp

ROM = """\
# The virtual board's "firmware": what a board does at reset. Not on the flash.
import os
import sys

sys.path[:] = ["", ".frozen", "lib"]


def _vboard_run(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        with open(name) as f:
            code = compile(f.read(), name, "exec")
        exec(code, globals())
    except KeyboardInterrupt as e:
        sys.print_exception(e, sys.stdout)
    except Exception as e:
        sys.print_exception(e, sys.stdout)


_vboard_run("boot.py")
if os.getenv("VBOARD_MODE") == "friendly":
    _vboard_run("main.py")
del _vboard_run
"""

_READ_NR = {"x86_64": 0, "aarch64": 63, "armv7l": 3, "i686": 3, "riscv64": 63}.get(
    platform.machine())
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_MAX_RESTARTS = 50  # soft resets in one board's life: a main.py that exits in a loop stops
_TRANSCRIPT_MAX = 256 * 1024
_OUTQ_HIGH = 64 * 1024  # queued output for the host above which micropython's output waits
_OUTQ_MAX = 1024 * 1024


class VBoard:
    def __init__(self, netns=None, flash=None, keep_flash=False, micropython=None):
        self.netns = str(netns) if netns is not None else None
        self._own_flash = flash is None
        self.flash = flash or tempfile.mkdtemp(prefix="vboard-flash-")
        self.keep_flash = keep_flash
        self.rom = tempfile.mkdtemp(prefix="vboard-rom-")
        with open(os.path.join(self.rom, "vboard_rom.py"), "w") as f:
            f.write(ROM)
        self.micropython = micropython or mp.micropython_cmd()
        self.mode = "friendly"  # the REPL mode to come back to after a soft reset
        self.resets = 0
        self.sigint_deaths = 0
        self.dropped = 0  # output bytes dropped: no program had the port open
        self.transcript = bytearray()  # what went each way, for failing tests to show
        self.closed = False
        self._lock = threading.Lock()
        self._proc = None
        self._stdin_w = None
        self._stdout_r = None
        self._last_write = 0.0
        self._sigint_at = 0.0
        self._heard_since_sigint = True
        self._hide_until_raw = False  # after a raw soft reset: hide the friendly banner
        self._hidden = bytearray()
        # The serial port: the host opens the slave. Made raw once (no echo, no CR/LF
        # mangling; pyserial sets the same on open), then closed here: the master sees a
        # hang-up while no program has the port open, and output is then dropped, as a
        # board's USB serial drops it with no host attached. With a host attached, output
        # waits for it (up to _OUTQ_MAX), and micropython waits while _OUTQ_HIGH is queued.
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(slave)
        os.close(slave)
        self._outq = bytearray()
        self._start("friendly")
        self._thread = threading.Thread(target=self._relay, name="vboard", daemon=True)
        self._thread.start()

    # ---- the micropython process -----------------------------------------------------

    def _start(self, mode):
        r, w = os.pipe()
        out_r, out_w = os.pipe()
        env = dict(os.environ, MICROPYPATH=".frozen", VBOARD_MODE=mode)
        argv = [self.micropython, "-i", os.path.join(self.rom, "vboard_rom.py")]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv  # execs: same pid
        self._proc = subprocess.Popen(argv, stdin=r, stdout=out_w, stderr=out_w,
                                      cwd=self.flash, env=env, start_new_session=True)
        os.close(r)
        os.close(out_w)
        if self._stdin_w is not None:
            os.close(self._stdin_w)
            os.close(self._stdout_r)
        self._stdin_w, self._stdout_r = w, out_r
        if mode == "raw":
            # Back into the raw REPL, as a board stays in it across a soft reset; the
            # friendly banner this first prints is not shown.
            self._hide_until_raw = True
            self._hidden = bytearray()
            os.write(w, b"\x01")

    def _restart(self, rc):
        if self.resets >= _MAX_RESTARTS:
            self._to_host(b"\r\nvboard: too many resets, board stopped\r\n")
            self._proc = None
            return
        self.resets += 1
        if rc == -signal.SIGINT:
            self.sigint_deaths += 1  # a Ctrl-C landed at the prompt after all
        self._to_host(b"MPY: soft reboot\r\n")
        self._start(self.mode)

    def alive(self):
        return self._proc is not None and self._proc.poll() is None

    def pid(self):
        return self._proc.pid if self._proc is not None else None

    def _blocked_in_read(self):
        try:
            with open("/proc/%d/syscall" % self._proc.pid) as f:
                fields = f.read().split()
        except OSError:
            return False
        return (_READ_NR is not None and len(fields) > 1 and fields[0] == str(_READ_NR)
                and int(fields[1], 16) == 0)

    def _unread(self):
        buf = bytearray(4)
        fcntl.ioctl(self._stdin_w, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)

    def _at_prompt(self):
        """True if micropython waits for input with nothing unread; False if it runs code."""
        deadline = time.monotonic() + 0.3
        while True:
            blocked = self._blocked_in_read()
            unread = self._unread()
            if blocked and not unread:
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            if not blocked and not unread and now - self._last_write > 0.05:
                return False  # it took every byte and kept running: code is executing
            time.sleep(0.002)

    # ---- the relay ---------------------------------------------------------------------

    def _note(self, tag, data):
        self.transcript += tag + bytes(data)
        if len(self.transcript) > _TRANSCRIPT_MAX:
            del self.transcript[:len(self.transcript) - _TRANSCRIPT_MAX]

    def _hung_up(self):
        """True while no program has the port (the pty's slave) open."""
        p = select.poll()
        p.register(self._master, select.POLLIN)
        for _, ev in p.poll(0):
            if ev & select.POLLHUP:
                return True
        return False

    def _to_host(self, data):
        self._note(b"\n<<", data)
        if self._hung_up():
            self.dropped += len(data) + len(self._outq)
            del self._outq[:]
            return
        self._outq += data
        if len(self._outq) > _OUTQ_MAX:
            self.dropped += len(self._outq) - _OUTQ_MAX
            del self._outq[:len(self._outq) - _OUTQ_MAX]
        self._flush_out()

    def _flush_out(self):
        while self._outq:
            try:
                k = os.write(self._master, self._outq)
            except BlockingIOError:
                return  # the host reads slowly: the rest waits
            except OSError:
                self.dropped += len(self._outq)  # hung up meanwhile
                del self._outq[:]
                return
            del self._outq[:k]

    def _to_board(self, data):
        if not data:
            return
        for b in data:
            if b == 1:
                self.mode = "raw"
            elif b == 2:
                self.mode = "friendly"
        self._last_write = time.monotonic()
        try:
            os.write(self._stdin_w, data)
        except OSError:
            pass  # exited meanwhile: the restart comes from the relay loop

    def _ctrl_c(self):
        if self._proc is None or self._proc.poll() is not None:
            return
        if self._at_prompt():
            self._to_board(b"\x03")  # at the prompt: a character, as a board's REPL gets it
            return
        if not self._heard_since_sigint and time.monotonic() - self._sigint_at < 0.5:
            # The last SIGINT is still on its way (nothing printed since): one is enough.
            self._to_board(b"\x03")
            return
        self._sigint_at = time.monotonic()
        self._heard_since_sigint = False
        try:
            os.kill(self._proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def _from_host(self, data):
        self._note(b"\n>>", data)
        parts = data.split(b"\x03")
        for i, part in enumerate(parts):
            self._to_board(part)
            if i < len(parts) - 1:
                self._ctrl_c()

    def _from_board(self, data):
        self._heard_since_sigint = True
        if self._hide_until_raw:
            self._hidden += data
            i = self._hidden.find(RAW_BANNER)
            if i < 0:
                return
            data = bytes(self._hidden[i:])
            self._hide_until_raw = False
            self._hidden = bytearray()
        self._to_host(data)

    def _relay(self):
        while not self.closed:
            proc = self._proc
            if proc is None:
                time.sleep(0.05)
                continue
            hup = self._hung_up()
            if hup and self._outq:
                self.dropped += len(self._outq)
                del self._outq[:]
            p = select.poll()
            if len(self._outq) < _OUTQ_HIGH:
                p.register(self._stdout_r, select.POLLIN)
            if not hup:
                p.register(self._master, select.POLLIN | (select.POLLOUT if self._outq else 0))
            try:
                events = dict(p.poll(50))
            except (OSError, ValueError):
                if self.closed:
                    return
                continue
            with self._lock:
                if self.closed:
                    return
                ev = events.get(self._master, 0)
                if ev & select.POLLOUT:
                    self._flush_out()
                if ev & select.POLLIN:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._from_host(data)
                if events.get(self._stdout_r, 0):
                    try:
                        data = os.read(self._stdout_r, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._from_board(data)
                        continue
                    rc = proc.wait()
                    self._restart(rc)

    # ---- the end -----------------------------------------------------------------------

    def close(self):
        if self.closed:
            return
        with self._lock:
            self.closed = True
            proc = self._proc
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
                proc.wait(5)
        self._thread.join(5)
        for fd in (self._master, self._stdin_w, self._stdout_r):
            try:
                os.close(fd)
            except (OSError, TypeError):
                pass
        shutil.rmtree(self.rom, ignore_errors=True)
        if self._own_flash and not self.keep_flash:
            shutil.rmtree(self.flash, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def text(self):
        """The transcript as text (>> host to board, << board to host), for assertions."""
        return self.transcript.decode(errors="replace")


def main(argv):
    ap = argparse.ArgumentParser(description="A MicroPython unix port behind a pty.")
    ap.add_argument("--netns", help="run micropython in this network namespace")
    ap.add_argument("--flash", help="folder that plays the flash (default: a temp folder)")
    args = ap.parse_args(argv)
    board = VBoard(netns=args.netns, flash=args.flash, keep_flash=True)
    print("PORT %s" % board.port)
    print("flash %s" % board.flash)
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv[1:]))
