# A MicroPython board on a serial port, driven through its raw REPL with pyserial. MIT licence.
#
#   from rawrepl import Board, BoardError
#   with Board("/dev/ttyACM0") as b:        # BoardError: missing, busy, or no MicroPython
#       b.enter_raw()                       # Ctrl-C (stops main.py), Ctrl-A
#       out = b.exec("print(1 + 1)")        # b"2\r\n"; BoardExecError with the traceback
#       b.resume()                          # friendly REPL, then main.py's resume() if any
#
# The raw REPL protocol (as MicroPython's pyboard.py and mpremote speak it): Ctrl-A enters
# it, the board answers "raw REPL; CTRL-B to exit\r\n>"; code is sent, then Ctrl-D; the
# board answers "OK", runs it, and sends its output, \x04, its error output, \x04, ">".
# Ctrl-B goes back to the friendly REPL; Ctrl-D at an empty prompt is a soft reset.
# Plain raw mode only (no raw-paste): every MicroPython since 1.0 speaks it.

import errno
import os
import sys
import time

try:
    import serial
except ImportError:  # pragma: no cover
    sys.exit("pyserial is missing: run `make .venv` and use .venv/bin/python")

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"


class BoardError(Exception):
    """Something a user can fix: no port, a busy port, no MicroPython on it, a timeout."""


class BoardExecError(BoardError):
    def __init__(self, out, err):
        BoardError.__init__(self, err.decode(errors="replace").strip())
        self.out = out
        self.err = err


def explain(e, net="net"):
    """A BoardError a user can act on for the usual failures of stack.debug code."""
    text = str(e)
    if "no module named 'stack" in text:
        return BoardError("the board has no stack/ on its path: deploy it first (make deploy "
                          "BOARD=... PORT=...)")
    if "NameError" in text and repr(net)[1:-1] in text:
        return BoardError("no `%s` at the board's REPL: is firmware/main.py running on it? "
                          "(or name the Stack with --net)\n%s" % (net, text))
    return e


def _ports():
    try:
        from serial.tools import list_ports

        return ", ".join(p.device for p in list_ports.comports()) or "none found"
    except Exception:  # pragma: no cover
        return "unknown"


class Board:
    def __init__(self, port, baud=115200, timeout_s=10.0):
        if not port:
            raise BoardError("no port given: say PORT=/dev/ttyACM0 or similar (serial ports "
                             "here: %s)" % _ports())
        if port.startswith("/dev/") and not os.path.exists(port):
            raise BoardError("%s does not exist: is the board plugged in? (serial ports "
                             "here: %s)" % (port, _ports()))
        self.port = port
        self.timeout_s = timeout_s
        try:
            self.ser = serial.Serial(port, baud, timeout=0.05, exclusive=True)
        except serial.SerialException as e:
            n = getattr(e, "errno", None)
            text = str(e)
            if n in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in text:
                raise BoardError("%s is busy: another program has it open (mpremote, screen, "
                                 "minicom, a REPL in another terminal?); close it first"
                                 % port) from None
            if n in (errno.EACCES, errno.EPERM):
                raise BoardError("no permission to open %s (on Linux: add yourself to the "
                                 "`dialout` group, then log in again)" % port) from None
            raise BoardError("cannot open %s: %s" % (port, text)) from None

    def close(self):
        try:
            self.ser.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- bytes -------------------------------------------------------------------------

    def _drain(self, quiet_s=0.15):
        """Read and discard until the line has been quiet for quiet_s."""
        end = time.monotonic() + quiet_s
        data = b""
        while time.monotonic() < end:
            chunk = self.ser.read(self.ser.in_waiting or 1)
            if chunk:
                data += chunk
                end = time.monotonic() + quiet_s
        return data

    def read_until(self, marker, timeout_s=None, what=None):
        """Bytes up to and including marker; BoardError after timeout_s of waiting."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        data = bytearray()
        while not data.endswith(marker):
            if time.monotonic() > deadline:
                raise BoardError("%s: no %s from the board after %.0f s (got %r)" % (
                    self.port, what or repr(marker), timeout_s, bytes(data[-200:])))
            chunk = self.ser.read(1)
            if chunk:
                data += chunk
                deadline = max(deadline, time.monotonic() + 1.0)
        return bytes(data)

    # ---- the raw REPL ------------------------------------------------------------------

    def enter_raw(self):
        """Interrupt whatever runs (Ctrl-C twice) and enter the raw REPL (Ctrl-A)."""
        self.ser.write(b"\r\x03")
        time.sleep(0.1)
        self.ser.write(b"\x03")
        seen = self._drain()
        self.ser.write(b"\r\x01")
        try:
            self.read_until(RAW_BANNER, timeout_s=min(self.timeout_s, 5.0), what="raw REPL")
        except BoardError:
            got = seen + self._drain()
            if not got:
                raise BoardError("%s: nothing answered Ctrl-C, Ctrl-A: no MicroPython there "
                                 "(wrong port, or the board is not running MicroPython)"
                                 % self.port) from None
            raise BoardError("%s answers, but not as MicroPython does (no raw REPL after "
                             "Ctrl-A): got %r" % (self.port, got[-200:])) from None
        self.read_until(b">", what="raw REPL prompt")

    def exec(self, code, timeout_s=None):
        """Run code in the raw REPL (entered first); its output. BoardExecError on error."""
        if isinstance(code, str):
            code = code.encode()
        for i in range(0, len(code), 256):
            self.ser.write(code[i:i + 256])
            time.sleep(0.01)
        self.ser.write(b"\x04")
        ok = self.read_until(b"OK", timeout_s=5.0, what="OK for the code")
        if not ok.endswith(b"OK"):  # pragma: no cover - read_until raises
            raise BoardError("board refused the code: %r" % ok)
        out = self.read_until(b"\x04", timeout_s, what="end of output")[:-1]
        err = self.read_until(b"\x04", timeout_s, what="end of error output")[:-1]
        self.read_until(b">", what="raw REPL prompt")
        if err:
            raise BoardExecError(out, err)
        return out

    def exit_raw(self):
        """Back to the friendly REPL (Ctrl-B); waits for its prompt."""
        self.ser.write(b"\r\x02")
        self.read_until(b">>> ", what="friendly REPL prompt")

    def resume(self, name="resume"):
        """Leave the board serving again: friendly REPL, then main.py's resume() if main.py
        defined one (firmware/main.py does). True if it was called."""
        has = self.exec("print(%r in globals())" % name).strip() == b"True"
        self.exit_raw()
        if has:
            self.ser.write(b"%s()\r" % name.encode())
            self.read_until(b"%s()" % name.encode(), timeout_s=2.0, what="echo")
            time.sleep(0.05)
        return has

    def soft_reset(self, wait_for=None, timeout_s=20.0):
        """Soft reset from the friendly REPL (Ctrl-D), so boot.py and main.py run.

        With wait_for (bytes), wait until the board prints it (e.g. b"READY"). Returns what
        the board printed after the reset."""
        self.ser.write(b"\r\x03")
        time.sleep(0.1)
        self.ser.write(b"\x03\r\x02")
        self.read_until(b">>> ", what="friendly REPL prompt")
        self._drain(0.1)
        self.ser.write(b"\x04")
        out = self.read_until(b"soft reboot\r\n", what="soft reboot")
        if wait_for:
            out += self.read_until(wait_for, timeout_s=timeout_s, what=repr(wait_for))
            # The rest of that line.
            out += self.read_until(b"\n", timeout_s=2.0, what="end of line")
        return out
