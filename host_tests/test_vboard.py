# The virtual board behaves like a board on a serial port: mpremote and the raw REPL work on
# it, Ctrl-C stops main.py, soft resets run boot.py/main.py. CPython only, no root. MIT licence.

import os
import subprocess
import sys
import time

import mp
from vboard import VBoard

ROOT = mp.ROOT
sys.path.insert(0, os.path.join(str(ROOT), "tools"))

from rawrepl import Board, BoardExecError  # noqa: E402

MAIN = """\
import time
print("main: started")
ticks = 0
while True:
    ticks += 1
    time.sleep_ms(10)
"""


def _mpremote(board, *args, timeout=60):
    tool = os.path.join(ROOT, ".venv", "bin", "mpremote")
    if not os.access(tool, os.X_OK):
        mp.missing("mpremote not in .venv (run `make .venv`)")
    try:
        return subprocess.run([tool, "connect", board.port] + list(args), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("mpremote %s: no answer in %d s; board transcript:\n%s" % (
            " ".join(args), timeout, board.text()[-3000:])) from None


def test_mpremote_exec_fs_and_soft_reset():
    with VBoard() as board:
        with open(os.path.join(board.flash, "main.py"), "w") as f:
            f.write(MAIN)
        out = _mpremote(board, "exec", "import sys; print(sys.implementation.name)")
        assert out.returncode == 0 and out.stdout.strip() == "micropython", out.stderr
        # The filesystem: the board's flash is the folder, paths relative to it.
        src = os.path.join(ROOT, "README.md")
        out = _mpremote(board, "fs", "mkdir", ":lib", "+", "fs", "cp", src,
                        ":lib/readme.txt", "+", "fs", "ls", ":lib", "+", "fs", "cat",
                        ":lib/readme.txt")
        assert out.returncode == 0, out.stderr
        with open(src) as f:
            text = f.read()
        assert "readme.txt" in out.stdout and text.splitlines()[0] in out.stdout
        with open(os.path.join(board.flash, "lib", "readme.txt")) as f:
            assert f.read() == text
        out = _mpremote(board, "fs", "rm", ":lib/readme.txt", "+", "fs", "ls", ":lib")
        assert out.returncode == 0, out.stderr
        assert not os.path.exists(os.path.join(board.flash, "lib", "readme.txt"))
        # mpremote soft-resets into the raw REPL for each session: the board restarted.
        assert board.resets >= 3 and board.sigint_deaths == 0
        assert "MPY: soft reboot" in board.text()


def test_ctrl_c_stops_main_and_its_globals_stay():
    with VBoard() as board:
        with open(os.path.join(board.flash, "main.py"), "w") as f:
            f.write(MAIN)
        # A power-on boot ran main.py; a friendly soft reset runs it again.
        with Board(board.port) as b:
            out = b.soft_reset(wait_for=b"main: started", timeout_s=10)
            assert b"soft reboot" in out
            time.sleep(0.3)
            b.enter_raw()  # Ctrl-C: KeyboardInterrupt in main.py, its globals stay
            ticks = int(b.exec("print(ticks)"))
            assert ticks > 5
            try:
                b.exec("1/0")
                raise AssertionError("no error")
            except BoardExecError as e:
                assert "ZeroDivisionError" in str(e)
            # Code that runs forever is interrupted too, and the raw REPL goes on.
            b.ser.write(b"while True:\n  ticks += 1\x04")
            b.read_until(b"OK")
            time.sleep(0.3)
            b.ser.write(b"\x03")
            out = b.read_until(b"\x04>", timeout_s=5)
            assert b"KeyboardInterrupt" in out
            assert int(b.exec("print(ticks)")) > ticks
            b.exit_raw()
        assert board.sigint_deaths == 0


def test_many_interrupts_in_a_row_never_kill_the_board():
    """Ctrl-C at the prompt is a character, while code runs it is KeyboardInterrupt."""
    with VBoard() as board:
        with Board(board.port) as b:
            for i in range(10):
                b.enter_raw()
                assert b.exec("print(%d)" % i).strip() == str(i).encode()
                b.ser.write(b"import time\nwhile True: time.sleep_ms(5)\x04")
                b.read_until(b"OK")
            b.enter_raw()
            b.exit_raw()
        assert board.sigint_deaths == 0, board.text()[-2000:]
        assert board.alive()
