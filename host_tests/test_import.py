# `import stack` works on plain CPython with nothing on the path (issue 10). CPython only.
# MIT licence.
#
# Every core module says `from micropython import const`. stack/__init__.py gives CPython its
# const() (DESIGN.md section 3); no stand-in `micropython` module may be needed on sys.path.
import os
import subprocess
import sys

import mp

# Run as a newcomer would, from the repo root: `python3 -c "import stack"`. The first line
# proves no `micropython` module is findable before stack is imported (no stand-in on the
# path); then every module under stack/ must import, and const() must be the identity.
_SCRIPT = """
import importlib, importlib.util, os, sys
assert importlib.util.find_spec("micropython") is None, "a micropython module is on the path"
import stack
from micropython import const
assert const(7) == 7 and const(b"x") == b"x"
for d, _, files in os.walk("stack"):
    for f in sorted(files):
        if f.endswith(".py") and f != "_checksum_viper.py":  # viper: MicroPython only
            importlib.import_module(os.path.join(d, f[:-3]).replace(os.sep, "."))
print("ok", sys.implementation.name)
"""


def _clean_env():
    # Nothing from the caller (pytest's PYTHONPATH, a venv's variables): only a PATH.
    return {"PATH": os.defpath}


def test_import_stack_on_plain_cpython():
    proc = subprocess.run([sys.executable, "-c", "import stack"], cwd=mp.ROOT,
                          env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


def test_every_core_module_imports_without_a_stand_in():
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=mp.ROOT, env=_clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok cpython\n"


def test_micropython_keeps_its_builtin_module():
    # On MicroPython, stack/__init__.py must leave the built-in `micropython` alone.
    script = ("import micropython; m = micropython; import stack, sys; "
              "import micropython; assert micropython is m; micropython.heap_lock; "
              "print('ok', sys.implementation.name)")
    proc = subprocess.run([mp.micropython_cmd(), "-c", script], cwd=mp.ROOT,
                          env=dict(_clean_env(), MICROPYPATH=str(mp.ROOT)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "ok micropython\n"
