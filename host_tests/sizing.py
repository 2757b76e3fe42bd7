# How big the core tests' fixtures are: "host" (as written) or "board" (a ~190 KiB heap).
# MIT licence. Runs on CPython and MicroPython.
#
# The fixtures were sized for a host: an in-memory pipe preallocates depth x 1514-byte slots
# per direction (64 or 128 slots: ~100-200 KB a pipe) and a Stack takes 8 TCBs with 4+4 KiB
# rings (64 KiB). On an RP2040-sized heap (190 KiB) that leaves room for two dozen tests.
#
# The "board" profile changes how the fixtures hold memory, not what the tests check:
#
# - pipes keep their depth (a full ring still drops and counts a frame at the same point) but
#   queue each frame as an exact-size copy instead of in preallocated 1514-byte slots:
#   memory follows the bytes in flight, not the depth;
# - a Stack built without a `tcbs` keyword gets STACK_DEFAULTS["tcbs"] TCBs instead of
#   config.TCBS (8 TCBs with 4+4 KiB rings are 64 KiB, and several tests hold two stacks);
#   a test's own keywords always win, and rings, windows and timers keep their defaults;
# - after each test, rings kept reachable only by a module-level registry are let go
#   (stack.debug keeps every captured Stack for a later dump(); stack.usocket keeps the
#   Stack install() was given after the test has put the real socket module back;
#   MicroPython's asyncio keeps the tasks a finished run() left behind until a new loop, and
#   the last task exception it could not hand to anyone).
#
# run_tests.py selects the profile with use() before any test module is imported (they bind
# `pipe` and `Stack` by name then); `run_tests.py --profile board` forces it, e.g. on the
# unix port with `-X heapsize=`. The host profile changes nothing.

import gc
import sys

import stack
from stack.link import pipe as _pipe_mod

PROFILE = "host"
BOARD_HEAP = 1024 * 1024  # a heap smaller than this gets the "board" profile
# Stack keywords fixtures add under "board" (only where a test gives none of its own).
STACK_DEFAULTS = {}
_BOARD_STACK_DEFAULTS = {"tcbs": 4}

_host_pipe = _pipe_mod.pipe
_HostStack = stack.Stack
_TCBS_AT = 3  # Stack(link, ip, prefix, gateway, tcbs, ...): tcbs is the 4th after link


class BoardStack(_HostStack):
    """stack.Stack with the profile's defaults for keywords the caller leaves out."""

    def __init__(self, link, *args, **kw):
        if len(args) <= _TCBS_AT:
            stack_kw(kw)
        _HostStack.__init__(self, link, *args, **kw)


def heap_size():
    """The MicroPython heap in bytes, or None on CPython."""
    try:
        return gc.mem_free() + gc.mem_alloc()
    except AttributeError:  # CPython
        return None


def auto():
    """The profile this interpreter's heap calls for."""
    n = heap_size()
    return "board" if n is not None and n < BOARD_HEAP else "host"


def use(name):
    """Select a profile. Call before the test modules are imported: they bind pipe() then."""
    global PROFILE
    if name not in ("host", "board"):
        raise ValueError("profile %r: host or board" % name)
    PROFILE = name
    STACK_DEFAULTS.clear()
    if name == "board":
        STACK_DEFAULTS.update(_BOARD_STACK_DEFAULTS)
        _pipe_mod.pipe = compact_pipe
        stack.Stack = BoardStack
    else:
        _pipe_mod.pipe = _host_pipe
        stack.Stack = _HostStack


def after_test():
    """Called by run_tests.py after each test: under "board", drop what module-level
    registries keep alive from the test that ended."""
    if PROFILE != "board":
        return
    debug = sys.modules.get("stack.debug")
    if debug is not None and hasattr(debug, "_captures"):
        debug._captures.clear()
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and hasattr(asyncio, "new_event_loop"):
        # MicroPython's loop is module state: tasks and waiting streams a test's run() left
        # behind stay (with the stacks they hold) until the next loop replaces them.
        asyncio.new_event_loop()
    core = sys.modules.get("asyncio.core")  # keeps the last unretrieved task exception
    ctx = getattr(core, "_exc_context", None)
    if isinstance(ctx, dict):
        for k in ("exception", "future"):
            if k in ctx:
                ctx[k] = None
    usocket = sys.modules.get("stack.usocket")  # install(net) keeps net for socket.socket()
    if usocket is not None and sys.modules.get("socket") is not usocket:
        usocket._net = None


def stack_kw(kw):
    """kw with the profile's Stack defaults added where kw says nothing."""
    for k in STACK_DEFAULTS:
        if k not in kw:
            kw[k] = STACK_DEFAULTS[k]
    return kw


class CompactPipeEnd(_pipe_mod.PipeEnd):
    """A PipeEnd that queues each frame as an exact-size copy instead of in preallocated
    full-size slots: same depth, same drops, same order; memory follows the bytes in flight.
    (It allocates per frame, which the host profile's pipe never does.)"""

    def __init__(self, mtu, depth, mac=None):
        _pipe_mod.PipeEnd.__init__(self, mtu, 0, mac)
        self._slots = [None] * depth

    def _push(self, frame):
        depth = len(self._slots)
        if self._count == depth or len(frame) > self._size:
            self.drops += 1
            return
        i = self._head + self._count
        if i >= depth:
            i -= depth
        self._slots[i] = bytes(frame)
        self._count += 1

    def recv_into(self, buf):
        if not self._count:
            return 0
        i = self._head
        frame = self._slots[i]
        self._slots[i] = None
        n = len(frame)
        buf[:n] = frame
        self._head = i + 1 if i + 1 < len(self._slots) else 0
        self._count -= 1
        return n


def compact_pipe(mtu=1500, depth=64, macs=None):
    """stack.link.pipe.pipe() with CompactPipeEnd ends."""
    a = CompactPipeEnd(mtu, depth, macs[0] if macs else None)
    b = CompactPipeEnd(mtu, depth, macs[1] if macs else None)
    a.peer = b
    b.peer = a
    return a, b
