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
        if f.endswith(".py") and not f.endswith("_viper.py"):  # viper: MicroPython only
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


# Issue 14: `import stack` leaves the socket layer (stack/sock.py), UDP and ICMP unloaded
# until they are used: from .mpy files on a board the socket layer is 8 KB of heap, and
# firmware/main.py builds its Stack's pools before that code arrives. `from stack import
# Socket` still works (a module __getattr__, PEP 562), and the constants stack/__init__.py
# repeats equal sock.py's. net.udp is made when first asked for.
_LAZY = """
import sys
import stack
names = ("SHUT_RD", "SHUT_WR", "SHUT_RDWR", "SOL_SOCKET", "SO_KEEPALIVE", "SO_ERROR",
         "IPPROTO_TCP", "TCP_NODELAY", "POLLIN", "POLLOUT", "POLLERR", "POLLHUP")
before = sorted(k for k in sys.modules if k.startswith("stack."))
assert "stack.sock" not in before, before
for lazy in ("stack.icmp", "stack.udp", "stack.recycle", "stack.tcpfields", "stack.tcp_probes",
             "stack.statnames", "stack.ringbuf_obj", "stack.udpsock", "stack.nic",
             "stack.nic_set", "stack.dhcp", "stack.dns", "stack.mdns", "stack.aio",
             "stack.services", "stack.debug", "stack.trace", "stack.usocket"):
    assert lazy not in before, (lazy, before)
from stack import Stack, SHUT_WR, Socket
from stack import sock
assert Socket is sock.Socket and "stack.sock" in sys.modules
for n in names:
    assert getattr(stack, n) == getattr(sock, n), n
# Submodules still import through the package (MicroPython asks its __getattr__ first):
# `from . import nic` in iface.py, and a missing one is an ImportError, as before.
from stack import nic
assert nic is sys.modules["stack.nic"]
# A name that is neither a module nor defined is an AttributeError: getattr() with a
# default and hasattr() work (dir() too: at the end, it imports modules).
assert getattr(stack, "no_such_name", 7) == 7 and not hasattr(stack, "no_such_name")
import stack.dhcp
assert stack.dhcp is sys.modules["stack.dhcp"]
net = Stack(type("L", (), {"mtu": 1500, "mac": None})(), ip="10.0.0.2", udp_sockets=2)
assert "stack.udp" not in sys.modules
assert "stack.statnames" not in sys.modules and "statnames" not in stack.__dict__  # forgotten
assert net.udp is net.udp and len(net.udp.queues) == 2 and "stack.udp" in sys.modules
assert net.active() and net.isconnected()
try:
    from stack import no_such_module  # noqa: F401
    raise AssertionError("stack.no_such_module imported")
except (ImportError, AttributeError):  # MicroPython lets __getattr__'s AttributeError out
    pass
try:
    from stack import _NoSuchName  # noqa: F401
    raise AssertionError("stack._NoSuchName exists")
except (ImportError, AttributeError):  # private names are never looked for as modules
    pass
assert not hasattr(stack, "_NoSuchName")
# stats.NAMES, made on first use from one string (no 96 str constants at import).
from stack.stats import NAMES, Stats
assert NAMES[0] == "tcpActiveOpens" and len(NAMES) == len(set(NAMES)) > 90
assert [k for k, _ in Stats().items()] == list(NAMES) and Stats()["tcpInSegs"] == 0
# `from stack import *`: the package's names, Socket among them (it loads sock.py).
star = {}
exec("from stack import *", star)
assert "Socket" in star and "Stack" in star and "SHUT_WR" in star and "iface" not in star
# MicroPython's dir() asks the package for every string it knows: the names of our modules
# among them are imported (as `from stack import x` would), nothing else is looked for.
assert "Stack" in dir(stack) and "stack.no_such_name" not in sys.modules
print("lazy ok", sys.implementation.name)
"""


def test_package_getattr_knows_every_module():
    # stack/__init__.py's _SUBMODULES names every module under stack/ but the private ones.
    import stack

    files = {f[:-3] for f in os.listdir(mp.ROOT / "stack") if f.endswith(".py")}
    files |= {d for d in os.listdir(mp.ROOT / "stack")
              if os.path.isfile(mp.ROOT / "stack" / d / "__init__.py")}
    want = {f for f in files if not f.startswith("_")}
    assert set(stack._SUBMODULES.split()) == want


def test_import_stack_leaves_the_socket_layer_until_first_use(tmp_path):
    script = tmp_path / "lazy.py"
    script.write_text(_LAZY)
    proc = subprocess.run([sys.executable, str(script)], cwd=mp.ROOT,
                          env=dict(_clean_env(), PYTHONPATH=str(mp.ROOT)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "lazy ok cpython\n"
    proc = mp.run_unix(str(script), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "lazy ok micropython\n"
    proc = mp.run_wasm(str(script), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("lazy ok micropython"), proc.stdout
