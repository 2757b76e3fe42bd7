# Instructions the stack costs on the emulated Cortex-M0 (QEMU -icount: ticks_us counts them).
# CPython only. MIT licence.
#
#   python3 tools/mcu_bench.py [--profile] [--link] [--iters N] [--what seg,idle,...] [--json]
#
# Runs the m0-board firmware (micro:bit machine, Cortex-M0 = the RP2040's ARMv6-M, 190 KiB heap,
# stack/ frozen with the armv6m viper checksum; tools/mcu.py builds it, cached, a relink when
# stack/ changed) under `qemu-system-arm -icount shift=0`. There every guest instruction takes
# 1 ns of virtual time, so time.ticks_us() on the board reads thousands of instructions
# executed (../shared/reference/MCU-EMULATION.md 7). Instruction counts, not cycles: QEMU
# models no flash wait states, no XIP cache, no pipeline; a deterministic proxy for CPU cost.
#
# On the board, two Stacks joined by the in-memory pipe link (Ethernet frames, as a MACRAW
# W5500 or the LAN9118 hands them over), virtual clock, random seeded, so a run repeats:
#   seg_in      one 1460-byte segment taken in (poll: frame in, ACK out when due) and read by
#               the application with recv_into into a preallocated buffer (no SHA-256)
#   seg_out     one 1460-byte segment sent (send() of 1460 bytes with TCP_NODELAY) and the
#               ACKs that come back for it (the sender's poll)
#   idle0/idle4 one poll() with nothing due: a stack with no socket; a server with its
#               listener and 4 idle established connections
#   conn        one connection opened and closed: connect, accept, close both ends, the
#               client's TIME-WAIT record made and expired; both stacks' polls counted
#   *_frag      seg_in and seg_out again, the heap first fragmented (300 small objects left
#               scattered): bytecode calls allocate their frames there (see below)
# --link adds the LAN9118 driver (viper FIFO kernels) on QEMU's emulated chip, which only the
# Cortex-M3 machine has: frames sent to a UDP socket QEMU also listens on come straight back;
# the driver's cost per call is added to the M3 firmware's stack-only figures.
# "stack only" figures have the pipe's own instructions taken off (its send and recv_into,
# measured per call on the board: empty, ACK-sized and 1514-byte frames); "_pipe" figures keep
# them (what the stack plus a cheapest possible link costs). The cost of reading ticks_us
# around each measured section (an empty section, measured) is subtracted from every figure.
#
# --profile breaks one segment in, one out and one connection opened and closed down by
# function (tables sorted by self cost): every module-level function and method of the
# stack's modules (and of the pipe) is wrapped, before the stacks are made, by a native-code
# wrapper reading ticks_us on entry and exit (arity from stack/'s source: nothing allocated
# per call); self = inclusive minus the callees'. The wrappers' own cost (about 11k
# instructions a call) is calibrated on an empty function, then scaled so each table adds up
# to the unwrapped figure measured just before. Small functions come out a few thousand
# instructions off (some slightly negative): read the ranking and the big entries.
# Bytecode calls needing more than 11 words of state get their frame from the heap
# (py/objfun.c): their cost includes that allocation, more on a fragmented heap.

import argparse
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcu  # noqa: E402

VARIANT = "m0-board"
ICOUNT = ("-icount", "shift=0")
TIMEOUT_S = 600

# What runs on the board. P (parameters) is prepended. Lines "key value" come back.
BOARD = r"""
import gc, time, random
from stack import Stack
from stack.link.pipe import pipe
_tu = time.ticks_us
td = time.ticks_diff


def tu():
    # ticks_us, read twice until two readings agree: at a millisecond edge the port's
    # ticks_us (milliseconds from the SysTick interrupt plus the counter's value) now and
    # then reads 1000 us off under -icount, which would move a millisecond between sections.
    a = _tu()
    b = _tu()
    while td(b, a) > 2 or td(b, a) < 0:
        a = b
        b = _tu()
    return b
MACS = (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")
clock = [0]


def now():
    return clock[0]


def out(k, v):
    print(k, v)


def ins(k, v):
    # ticks_us under -icount shift=0 counts thousands of instructions.
    print(k, v * 1000)


CHUNK = 25  # measured rounds between two gc.collect()s


def empty_section(n):
    # What one measured section costs around an empty body: from the first ticks_us's
    # sample to the second's, as in the loops below.
    acc = 0
    for k in range(n):
        if k % CHUNK == 0:
            gc.collect()
        t0 = tu()
        t1 = tu()
        acc += td(t1, t0)
    return acc / n


def make_pair(tcbs, rx, tx):
    random.seed(1)  # the stacks' secrets, hence ports and ISNs: the same every run
    clock[0] = 0
    a, b = pipe(mtu=1500, depth=4, macs=MACS)
    na = Stack(a, ip="10.0.0.1", clock=now, tcbs=tcbs, rx_buf=rx, tx_buf=tx, tw_slots=4)
    nb = Stack(b, ip="10.0.0.2", clock=now, tcbs=tcbs, rx_buf=rx, tx_buf=tx, tw_slots=4)
    return na, nb, a, b


P_COUNT = [0]  # polls made by step()


def step(na, nb, k=1):
    P_COUNT[0] += 2 * k
    for _ in range(k):
        na.poll()
        nb.poll()
        clock[0] += 1


def connect(na, nb, srv, port_no, nodelay=False):
    c = na.socket()
    c.setblocking(False)
    if nodelay:
        c.setsockopt(6, 1, 1)  # TCP_NODELAY: one send() of 1460 bytes is one segment
    try:
        c.connect(("10.0.0.2", port_no))
    except OSError:
        pass
    for _ in range(50):
        step(na, nb)
        if srv.readable():  # not accept() in a try: an exception a step costs thousands
            s, _ = srv.accept()
            s.setblocking(False)
            return c, s
    raise RuntimeError("no connection")


def listen(nb, port_no):
    srv = nb.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", port_no))
    srv.listen(4)
    return srv


def conn_one(na, nb, srv):
    # One connection opened and closed. The client closes first and holds TIME-WAIT
    # (closing both at once is a simultaneous close, another path), then the server.
    c, s = connect(na, nb, srv, 80)
    c.close()
    step(na, nb, 2)
    s.close()
    polls = 1
    while na.free_tcb_count() < 2 or nb.free_tcb_count() < 2:
        step(na, nb)
        polls += 1
        if polls > 20:
            raise RuntimeError("close: %r %r" % (na.connections(), nb.connections()))
    clock[0] += 61000  # past 2 MSL: the TIME-WAIT record expires at the next poll
    step(na, nb)


def empty_loop(m):
    # A for loop of m rounds doing nothing, timed as one section (see polls()).
    gc.collect()
    t0 = tu()
    for _ in range(m):
        pass
    t1 = tu()
    return td(t1, t0)


def link_costs(n, E):
    # The pipe's own cost per call, measured alone: send and recv_into of a 1514-byte
    # frame and of a 54-byte one (an ACK), and a recv_into that finds nothing.
    a, b = pipe(mtu=1500, depth=4, macs=MACS)
    buf = bytearray(1514)
    big = memoryview(bytearray(1514))
    small = memoryview(bytearray(54))
    res = {}
    for name, frame in (("data", big), ("ack", small)):
        ts = tr = 0
        for k in range(n):
            if k % CHUNK == 0:
                gc.collect()
            t0 = tu()
            a.send(frame)
            t1 = tu()
            b.recv_into(buf)
            t2 = tu()
            ts += td(t1, t0)
            tr += td(t2, t1)
        res["send_" + name] = ts / n - E
        res["recv_" + name] = tr / n - E
    te = 0
    for k in range(n):
        if k % CHUNK == 0:
            gc.collect()
        t0 = tu()
        b.recv_into(buf)
        t1 = tu()
        te += td(t1, t0)
    res["recv_empty"] = te / n - E
    return res


def fragment():
    # A heap as an application leaves it: 600 small objects (16 to 80 bytes), every other
    # one dropped. A bytecode call needing more than 11 words of state gets its frame from
    # the heap (py/objfun.c), and the allocator then walks past the small holes.
    junk = [None] * 600
    for i in range(600):
        junk[i] = bytearray(i % 5 * 16 + 1)
    for i in range(0, 600, 2):
        junk[i] = None
    gc.collect()
    return junk


def segments(n, warm, E, L, tag=""):
    na, nb, la, lb = make_pair(2, 4096, 4096)
    srv = listen(nb, 9)
    c, s = connect(na, nb, srv, 9, nodelay=True)
    data = memoryview(bytearray(1460))
    sink = bytearray(1460)
    if tag:  # "_frag": the stacks made, fragment what is left, measure the pipe again
        junk = fragment()
        L = link_costs(P["calib"], E)

    def one():
        c.send(data)
        nb.poll()
        s.recv_into(sink)
        clock[0] += 1
        na.poll()

    for _ in range(warm):
        one()
    sa0, sb0 = la.sent, lb.sent
    snd = rcv = alloc = 0
    for k in range(n):
        if k % CHUNK == 0:
            # No garbage collection inside the measured rounds: the figures are the stack's
            # own work; what it allocates is counted apart (alloc_per_round).
            if k:
                alloc += gc.mem_alloc() - m0
            gc.collect()
            m0 = gc.mem_alloc()
        t0 = tu()
        c.send(data)
        t1 = tu()
        nb.poll()
        s.recv_into(sink)
        t2 = tu()
        clock[0] += 1
        t3 = tu()
        na.poll()
        t4 = tu()
        snd += td(t1, t0) + td(t4, t3)
        rcv += td(t2, t1)
    alloc += gc.mem_alloc() - m0
    fa, fb = la.sent - sa0, lb.sent - sb0  # frames A sent (data), B sent (ACKs)
    if fa != n:
        raise RuntimeError("%d segments for %d sends" % (fa, n))
    snd_pipe = snd / n - 2 * E
    rcv_pipe = rcv / n - E
    # A: sends fa data frames, takes fb ACK frames in, one empty recv_into per poll.
    link_a = (fa * L["send_data"] + fb * L["recv_ack"] + n * L["recv_empty"]) / n
    link_b = (fb * L["send_ack"] + fa * L["recv_data"] + n * L["recv_empty"]) / n
    ins("seg_out_pipe" + tag, snd_pipe)
    ins("seg_in_pipe" + tag, rcv_pipe)
    ins("seg_out" + tag, snd_pipe - link_a)
    ins("seg_in" + tag, rcv_pipe - link_b)
    out("acks_per_seg" + tag, fb / n)
    out("alloc_per_round" + tag, alloc / n)
    c.close()
    s.close()
    srv.close()
    if tag:
        del junk


def polls(st, m, E, L):
    # m polls timed as one section: ticks_us's 1000-instruction steps matter little over
    # the whole; the empty loop's own cost and the empty recv_into of each poll come off.
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = tu()
    for _ in range(m):
        st.poll()
    t1 = tu()
    alloc = gc.mem_alloc() - a0
    return (td(t1, t0) - empty_loop(m)) / m - L["recv_empty"], alloc / m


def idle(m, E, L):
    na, nb, la, lb = make_pair(4, 1024, 1024)
    step(na, nb, 3)
    t, a = polls(nb, m, E, L)
    ins("idle0", t)
    srv = listen(nb, 80)
    conns = [connect(na, nb, srv, 80) for _ in range(4)]
    step(na, nb, 1000)  # delayed ACKs and anything else due: over
    for name, st in (("idle4", nb), ("idle4_client", na)):
        t, a = polls(st, m, E, L)
        ins(name, t)
        out(name + "_alloc", a)
    for c, s in conns:
        c.close()
        s.close()


def conn_cycle(n, E, L):
    na, nb, la, lb = make_pair(2, 1024, 1024)
    srv = listen(nb, 80)
    step(na, nb, 3)

    def cycle():
        conn_one(na, nb, srv)

    cycle()
    t = 0
    frames = la.sent + lb.sent
    polls0 = P_COUNT[0]
    for _ in range(n):
        gc.collect()
        t0 = tu()
        cycle()
        t1 = tu()
        t += td(t1, t0)
    frames = la.sent + lb.sent - frames
    if na.free_tcb_count() < 2 or nb.free_tcb_count() < 2 or na.tw.used or nb.tw.used:
        raise RuntimeError("left over: %r %r" % (na.connections(), nb.connections()))
    polls = (P_COUNT[0] - polls0) / n
    ins("conn_pipe", t / n - E)
    out("conn_frames", frames / n)
    out("conn_polls", polls)
    # The pipe's part: every frame sent and taken in (all ACK-sized, SYNs a few bytes more),
    # one empty recv_into per poll.
    ins("conn", t / n - E - frames / n * (L["send_ack"] + L["recv_ack"])
        - polls * L["recv_empty"])


E = empty_section(2000)
ins("empty_section", E)
L = link_costs(P["calib"], E)
for k in sorted(L):
    ins("pipe_" + k, L[k])
if "seg" in P["what"]:
    segments(P["iters"], P["warm"], E, L)


if "frag" in P["what"]:
    segments(P["iters"], P["warm"], E, L, "_frag")
    gc.collect()
if "idle" in P["what"]:
    idle(P["idle_iters"], E, L)
if "conn" in P["what"]:
    conn_cycle(P["conn_iters"], E, L)
gc.collect()
out("heap_free", gc.mem_free())
"""


# --profile: appended to BOARD's helpers (everything before its main part), after the
# generated SPEC (which functions to wrap, and their arity) and wrapper factories.
PROFILE = r"""
import sys
import micropython

SIDE = [0]  # 0: the receiver's work (table "in"), 5: the sender's ("out")
DEP = [0]  # depth of wrapped calls; FR[4 * depth ...]: callees' sum of d, their count, all
FR = [0] * (4 * 64)  # wrapped calls below (callees' callees too), t0
MAXF = P["maxf"]  # functions that can be wrapped: as many as the SPEC names
# Allocated first, while the heap is whole: per function and side [calls, sum d, sum of
# callees' d, callees' count, all wrapped calls below] (ACC[10 * i + side + ...]); its name
# as (module, class, key).
ACC = [0] * (10 * MAXF)
NAMES = [None] * (3 * MAXF)
NF = [0]
M = object()  # "argument not given"


# The wrappers and what they call are native code: a native function keeps its locals on
# the C stack, while a bytecode call needing more than 11 words of state allocates its frame
# on the heap, whose cost depends on how fragmented the heap is.
@micropython.native
def tun():
    a = _tu()
    b = _tu()
    while td(b, a) > 2 or td(b, a) < 0:
        a = b
        b = _tu()
    return b


@micropython.native
def enter():
    k = DEP[0] + 1
    DEP[0] = k
    k *= 4
    FR[k] = 0
    FR[k + 1] = 0
    FR[k + 2] = 0
    FR[k + 3] = tun()


@micropython.native
def leave(base):
    t1 = tun()
    k = DEP[0]
    i = 4 * k
    d = td(t1, FR[i + 3])
    j = base + SIDE[0]
    ACC[j] += 1
    ACC[j + 1] += d
    ACC[j + 2] += FR[i]
    ACC[j + 3] += FR[i + 1]
    ACC[j + 4] += FR[i + 2]
    DEP[0] = k - 1
    FR[i - 4] += d
    FR[i - 3] += 1
    FR[i - 2] += 1 + FR[i + 2]


def mk_any(f, base):
    # For the few functions with *args or **kwargs, or a parameter some caller names: this
    # one allocates (its *a and **kw) and so costs more than calibrated.
    def w(*a, **kw):
        enter()
        try:
            r = f(*a, **kw)
        except BaseException:
            leave(base)  # a call that raises (connect()'s EINPROGRESS) is counted too
            raise
        leave(base)
        return r

    return w


def new_slot(mod, cls, key):
    i = NF[0]
    if i >= MAXF:
        raise RuntimeError("more than MAXF functions")
    NF[0] = i + 1
    NAMES[3 * i] = mod
    NAMES[3 * i + 1] = cls
    NAMES[3 * i + 2] = key
    return 10 * i


def factory(name):
    # SPEC holds ";name=n.d" (n parameters, d of them with defaults) or ";name=*".
    i = SPEC.find(";" + name + "=")
    if i < 0:
        return None
    i += len(name) + 2
    j = SPEC.find(";", i)
    return FACT.get(SPEC[i:j])


def install():
    # Pass 1: each function of the stack's modules and classes, at the place that defines it
    # (the SPEC says which), gets a wrapper; pass 2 points every other reference to it
    # (another module's "from x import f") at the same wrapper. Builtins stay unwrapped.
    mods = sorted(k for k in sys.modules if k == "stack" or k.startswith("stack."))
    done = {}
    for second in (False, True):
        for m in mods:
            mod = sys.modules[m]
            short = m[6:] if m.startswith("stack.") else m
            for k in list(mod.__dict__):
                v = mod.__dict__[k]
                if isinstance(v, type):
                    if second or getattr(v, "__module__", m) != m:
                        continue
                    for ck in list(v.__dict__):
                        cv = v.__dict__[ck]
                        if type(cv).__name__ not in ("function", "closure"):
                            continue
                        mk = factory("%s.%s.%s" % (short, k, ck))
                        if mk is not None:
                            setattr(v, ck, mk(cv, new_slot(short, k, ck)))
                elif type(v).__name__ in ("function", "closure"):
                    w = done.get(id(v))
                    if w is None and not second:
                        mk = factory("%s.%s" % (short, k))
                        if mk is not None:
                            w = done[id(v)] = mk(v, new_slot(short, None, k))
                    if w is not None:
                        setattr(mod, k, w)
    return NF[0]


def name_of(i):
    m, c, k = NAMES[3 * i], NAMES[3 * i + 1], NAMES[3 * i + 2]
    return "%s.%s.%s" % (m, c, k) if c else "%s.%s" % (m, k)


def noop2(a, b):
    return a


def calibrate(m):
    # Tu: a plain call of noop2, Tw: a wrapped one (loops of m, each one section); D: what
    # the wrapper records as the wrapped call's d.
    base = new_slot("-", None, "noop")
    for i in range(10):
        ACC[base + i] = 0
    wn = FACT["2.0"](noop2, base)
    e = empty_loop(m)
    t0 = tu()
    for _ in range(m):
        noop2(1, 2)
    t1 = tu()
    Tu = (td(t1, t0) - e) / m
    SIDE[0] = 0
    t0 = tu()
    for _ in range(m):
        wn(1, 2)
    t1 = tu()
    Tw = (td(t1, t0) - e) / m
    D = ACC[base + 1] / ACC[base]
    NF[0] -= 1
    FR[0] = FR[1] = FR[2] = 0
    return Tu, Tw, D


def wrap_first():
    # Wrap before the stacks exist, with a block held aside meanwhile: install() leaves the
    # heap full of small holes (its temporaries between the wrappers), and the stacks, their
    # buffers and the calls' frames then find room in the block set free, as in segments().
    import stack.sock  # noqa: F401 (imported on first use otherwise)

    gc.collect()
    aside = bytearray(gc.mem_free() - 48 * 1024)
    out("wrapped", install())
    del aside
    gc.collect()


def profile(n, warm):
    wrap_first()
    na, nb, la, lb = make_pair(2, 4096, 4096)
    srv = listen(nb, 9)
    c, s = connect(na, nb, srv, 9, nodelay=True)
    data = memoryview(bytearray(1460))
    sink = bytearray(1460)
    for _ in range(warm):
        c.send(data)
        nb.poll()
        s.recv_into(sink)
        clock[0] += 1
        na.poll()
    gc.collect()
    out("heap_free_wrapped", gc.mem_free())
    Tu, Tw, D = calibrate(500)
    ins("cal_Tu", Tu)
    ins("cal_Tw", Tw)
    ins("cal_D", D)
    for i in range(len(ACC)):
        ACC[i] = 0
    roots = [0] * 6  # the receiver's top-level callees: sum d, count, all calls; the sender's
    sec = [0, 0]
    for k in range(n):
        if k % CHUNK == 0:
            gc.collect()  # as in segments(): the stack allocates a little per round
        for side in (5, 0, 5):
            SIDE[0] = side
            DEP[0] = FR[0] = FR[1] = FR[2] = 0
            if side == 0:
                t0 = tu()
                nb.poll()
                s.recv_into(sink)
                t1 = tu()
            elif k >= 0:
                t0 = tu()
                c.send(data)
                t1 = tu()
                k = -1 - k  # the sender's second section: its poll, after the clock moves
            else:
                k = -1 - k
                clock[0] += 1
                t0 = tu()
                na.poll()
                t1 = tu()
            r = 0 if side == 0 else 3
            roots[r] += FR[0]
            roots[r + 1] += FR[1]
            roots[r + 2] += FR[2]
            sec[0 if side == 0 else 1] += td(t1, t0)
    out("rounds", n)
    for side, i in (("in", 0), ("out", 1)):
        print("prof", side, "-", n, sec[i] * 1000, roots[3 * i] * 1000, roots[3 * i + 1],
              roots[3 * i + 2])
    for f in range(NF[0]):
        for side, i in (("in", 10 * f), ("out", 10 * f + 5)):
            if ACC[i]:
                print("prof", side, name_of(f), ACC[i], ACC[i + 1] * 1000, ACC[i + 2] * 1000,
                      ACC[i + 3], ACC[i + 4])


def profile_conn(n):
    # One connection opened and closed (conn_one), all in table "conn".
    wrap_first()
    na, nb, la, lb = make_pair(2, 1024, 1024)
    srv = listen(nb, 80)
    step(na, nb, 3)
    conn_one(na, nb, srv)
    gc.collect()
    Tu, Tw, D = calibrate(500)
    ins("cal_Tu", Tu)
    ins("cal_Tw", Tw)
    ins("cal_D", D)
    for i in range(len(ACC)):
        ACC[i] = 0
    SIDE[0] = 0
    t = d = cn = below = 0
    for _ in range(n):
        gc.collect()
        DEP[0] = FR[0] = FR[1] = FR[2] = 0
        t0 = tu()
        conn_one(na, nb, srv)
        t1 = tu()
        t += td(t1, t0)
        d += FR[0]
        cn += FR[1]
        below += FR[2]
    out("rounds", n)
    print("prof conn -", n, t * 1000, d * 1000, cn, below)
    for f in range(NF[0]):
        i = 10 * f
        if ACC[i]:
            print("prof conn", name_of(f), ACC[i], ACC[i + 1] * 1000, ACC[i + 2] * 1000,
                  ACC[i + 3], ACC[i + 4])


E = empty_section(2000)
ins("empty_section", E)
if P.get("scenario") == "conn":
    profile_conn(P["iters"])
else:
    profile(P["iters"], P["warm"])
"""


def _module_short(path):
    rel = os.path.relpath(path, os.path.join(ROOT, "stack"))[:-3].replace(os.sep, ".")
    if rel == "__init__":
        return "stack"
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


# Modules a two-stack TCP run over the pipe does not import: left out of the SPEC (board heap).
_NOT_LOADED = ("aio", "aio_streams", "debug", "dhcp", "dns", "mdns", "nic", "services", "trace",
               "udpsock", "usocket")


def wrap_spec():
    """(SPEC, shapes) from stack/'s source: for every module-level function and method,
    "n.d" (parameters, how many have defaults), or "*" when it takes *args, **kwargs or
    keyword-only parameters, or has a parameter that some call in stack/ or in the board code
    passes by name (the fixed-arity wrappers pass everything by position)."""
    import ast

    trees = {}
    named = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "stack")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                path = os.path.join(dirpath, fn)
                with open(path) as f:
                    tree = ast.parse(f.read())
                trees[_module_short(path)] = tree
                for node in ast.walk(tree):
                    if isinstance(node, ast.Call):
                        named.update(k.arg for k in node.keywords if k.arg)

    def shape(fn):
        a = fn.args
        names = [x.arg for x in a.posonlyargs + a.args]
        if a.vararg or a.kwarg or a.kwonlyargs or named.intersection(names):
            return "*"
        return "%d.%d" % (len(names), len(a.defaults))

    # ... and by name in this tool's board code (Stack(ip=...), pipe(mtu=...)), which runs
    # with the wrappers in place since they are installed before the stacks are made.
    for node in ast.walk(ast.parse(BOARD + PROFILE)):
        if isinstance(node, ast.Call):
            named.update(k.arg for k in node.keywords if k.arg)
    spec = []
    for mod, tree in sorted(trees.items()):
        if mod in _NOT_LOADED or mod.startswith("link.") and mod != "link.pipe":
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                spec.append("%s.%s=%s" % (mod, node.name, shape(node)))
            elif isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        spec.append("%s.%s.%s=%s" % (mod, node.name, sub.name, shape(sub)))
    shapes = sorted({x.rsplit("=", 1)[1] for x in spec} - {"*"} | {"2.0"})
    return ";" + ";".join(spec) + ";", shapes


def _factory_source(shape):
    # A native wrapper of fixed arity: parameters with defaults get the sentinel M and the
    # call passes only those given; the function and its slot are default arguments, not a
    # closure's cells (a closure called with more than 5 arguments and cells together
    # allocates them). Nothing is allocated per call.
    n, d = (int(x) for x in shape.split("."))
    ps = ["p%d" % i for i in range(n)]
    sig = ", ".join(ps[:n - d] + ["%s=M" % p for p in ps[n - d:]] + ["_f=f", "_b=base"])
    lines = ["def mk_%d_%d(f, base):" % (n, d), "    @micropython.native",
             "    def w(%s):" % sig, "        enter()", "        try:"]
    if d == 0:
        lines.append("            r = _f(%s)" % ", ".join(ps))
    else:
        for k in range(n - d, n):
            lines.append("            %s %s is M:" % ("if" if k == n - d else "elif", ps[k]))
            lines.append("                r = _f(%s)" % ", ".join(ps[:k]))
        lines.append("            else:")
        lines.append("                r = _f(%s)" % ", ".join(ps))
    lines += ["        except BaseException as e:", "            leave(_b)", "            raise e",
              "        leave(_b)", "        return r", "    return w", ""]
    return "\n".join(lines)


def board_code(params, body=BOARD):
    return "P = %r\n%s" % (params, body)


def profile_code(params):
    """The profile's board code, in pieces run one after the other (the raw REPL keeps its
    input buffer at the largest piece's size, and compiling a big piece takes heap)."""
    helpers = BOARD[:BOARD.index("\ndef link_costs(")]
    spec, shapes = wrap_spec()
    i = PROFILE.index("\ndef install():")
    j = PROFILE.index("\nE = empty_section(")
    fact = "".join(_factory_source(sh) for sh in shapes)
    table = "FACT = {%s}\n" % ", ".join("%r: mk_%s" % (sh, sh.replace(".", "_"))
                                         for sh in shapes) + "FACT['*'] = mk_any\n"
    params = dict(params, maxf=spec.count("=") + 1)  # one more: the calibration's
    return ["P = %r\n%s" % (params, helpers), PROFILE[:i], fact + table,
            "SPEC = %r\n" % spec, PROFILE[i:j], PROFILE[j:]]


def profile(iters=60, variant=VARIANT, fw=None, scenario="seg", totals=None):
    """Per-function instructions: for scenario "seg", per segment ({"in": rows, "out":
    rows}); for "conn", per connection opened and closed ({"conn": rows}). Rows are sorted
    by self cost, each (name, calls, self, inclusive). totals: measure()'s figures from the
    same firmware; when given, the wrappers' cost is scaled so each table adds up to them."""
    params = {"iters": iters, "warm": 40, "scenario": scenario}
    res, text = run_board(profile_code(params), variant, fw)
    n = res["rounds"]
    # The wrapper's cost per call, calibrated on a wrapped empty function: the part inside
    # the interval it records (o_in) and the part outside, in the caller's time (x). Native
    # code, so the same whatever the heap's state.
    o_in0 = res["cal_D"] - res["cal_Tu"]
    x0 = res["cal_Tw"] - res["cal_D"]
    out = {"wrapped": res["wrapped"], "rounds": n, "scenario": scenario}
    sides = ("in", "out") if scenario == "seg" else ("conn",)
    for side in sides:
        recs = []
        top = None
        for line in text.splitlines():
            f = line.split()
            if len(f) == 8 and f[0] == "prof" and f[1] == side:
                rec = (f[2], int(f[3]), float(f[4]), float(f[5]), int(f[6]), int(f[7]))
                if rec[0] == "-":
                    top = rec
                else:
                    recs.append(rec)
        sections = 2 if side == "out" else 1
        wrapped = top[2] / n - sections * res["empty_section"]
        # The calibration misses part of a real call's wrapper cost (more arguments, a
        # method, an exception now and then: about 1-2 k a call): with the unwrapped total
        # known, the whole difference is spread over the calls in the calibration's ratio.
        o_in, x = o_in0, x0
        plain = (totals or {}).get({"in": "seg_in_pipe", "out": "seg_out_pipe",
                                    "conn": "conn_pipe"}[side])
        if plain:
            o_tot = (wrapped - plain) / (sum(r[1] for r in recs) / n)
            o_in, x = o_tot * o_in0 / (o_in0 + x0), o_tot * x0 / (o_in0 + x0)
        o_tot = o_in + x
        rows = [("(the driver loop's lines, outside the stack)", 0,
                 wrapped - (top[3] + top[4] * x) / n, wrapped - top[5] * o_tot / n)]
        for name, c, d, cd, cn, below in recs:
            # self: what it recorded, less its callees' records and their wrappers' outer
            # part; inclusive: less every wrapper below it, whole.
            rows.append((name, c / n, (d - c * o_in - cd - cn * x) / n,
                         (d - c * o_in - below * o_tot) / n))
        rows.sort(key=lambda r: -r[2])
        out[side] = rows
        out[side + "_total"] = sum(r[2] for r in rows)  # = wrapped less every wrapper
        out[side + "_overhead"] = (o_in, x)
    return out


def profile_report(p, totals=None):
    lines = ["%d functions wrapped, %d rounds; the wrappers' own cost taken off" % (
        p["wrapped"], p["rounds"])]
    whats = {"in": "one 1460-byte segment in (receiver: poll + recv_into, ACK share), "
                   "instructions per segment",
             "out": "one 1460-byte segment out (sender: send + poll taking the ACKs), "
                    "instructions per segment",
             "conn": "one connection opened and closed (both stacks, their polls), "
                     "instructions per connection"}
    for side in ("in", "out", "conn"):
        if side not in p:
            continue
        rows = p[side]
        total = p[side + "_total"]
        ref = (totals or {}).get({"in": "seg_in_pipe", "out": "seg_out_pipe",
                                  "conn": "conn_pipe"}[side])
        lines.append("")
        lines.append("%s, with the pipe link: total %.0f%s (wrapper %.0f + %.0f per call "
                     "taken off)" % ((whats[side], total,
                                      " (scaled to the unwrapped run)" if ref else
                                      " (calibration only)")
                                     + p[side + "_overhead"]))
        lines.append("%-52s %6s %8s %6s %9s" % ("function (self = without its callees)", "calls",
                                                "self", "%", "inclusive"))
        for name, calls, self_, incl in rows:
            if abs(self_) < 0.001 * total and calls < 0.5:
                continue
            lines.append("%-52s %6.2f %8.0f %5.1f%% %9.0f"
                         % (name, calls, self_, 100.0 * self_ / total, incl))
    return "\n".join(lines)


def run_board(code, variant=VARIANT, fw=None):
    """Run code (a string, or pieces run one after the other in the same globals) on the
    board under -icount; return ({key: float} of its "key value" lines, its output)."""
    fw = fw or mcu.build(variant, quiet=True)
    out = ""
    with mcu.Qemu(variant, fw, extra_args=ICOUNT) as q:
        for piece in [code] if isinstance(code, str) else code:
            o, err = q.exec(piece, timeout_s=TIMEOUT_S)
            out += o
            if err.strip():
                raise mcu.MCUError("board error:\n%s%s" % (out, err))
    res = {}
    for line in out.splitlines():
        m = re.fullmatch(r"(\w+) (-?[\d.e+-]+)", line.strip())
        if m:
            res[m.group(1)] = float(m.group(2))
    return res, out


def measure(iters=200, what=("seg", "idle", "conn", "frag"), variant=VARIANT, fw=None):
    params = {"iters": iters, "warm": 40, "idle_iters": max(50, iters * 3),
              "conn_iters": max(2, iters // 10), "calib": max(100, iters * 2), "what": list(what)}
    res, _ = run_board(board_code(params), variant, fw)
    return res


# The LAN9118 driver (stack/link/lan9118.py, viper FIFO kernels) on QEMU's emulated chip:
# only the mps2-an385 machine (Cortex-M3) has one. Its frames go out on a UDP socket that
# QEMU both sends to and listens on, so each comes straight back: the driver's own cost per
# call, then added to the stack-only figures measured on the same M3 firmware.
LINK_VARIANT = "m3-board"
LAN9118_BOARD = r"""
from stack.link.lan9118 import LAN9118
link = LAN9118(0x40200000, promiscuous=True)
buf = bytearray(1514)


def frame(n):
    f = bytearray(n)
    f[0:6] = link.mac  # to ourselves: the socket loops it back
    f[6:12] = link.mac
    f[12] = 8
    return memoryview(f)


def lan_costs(n, E):
    res = {}
    for name, f in (("data", frame(1514)), ("ack", frame(54))):
        ts = tr = 0
        for k in range(n):
            if k % CHUNK == 0:
                gc.collect()
            t0 = tu()
            link.send(f)
            t1 = tu()
            ts += td(t1, t0)
            for _ in range(100000):  # the frame comes back through the host's socket
                t0 = tu()
                got = link.recv_into(buf)
                t1 = tu()
                if got:
                    break
            if got != len(f):
                raise RuntimeError("sent %d bytes, got %d back" % (len(f), got))
            tr += td(t1, t0)
        ins("lan9118_send_" + name, ts / n - E)
        ins("lan9118_recv_" + name, tr / n - E)
    te = 0
    gc.collect()
    for _ in range(n):
        t0 = tu()
        link.recv_into(buf)
        t1 = tu()
        te += td(t1, t0)
    ins("lan9118_recv_empty", te / n - E)


E = empty_section(2000)
lan_costs(P["iters"], E)
"""


def lan9118_costs(iters=100, fw=None):
    """The LAN9118 driver's instructions per call on the emulated Cortex-M3: send and
    recv_into of a 1514-byte and a 54-byte frame, and a recv_into finding nothing."""
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # QEMU binds it next (a race with another binder is possible, not likely)
    fw = fw or mcu.build(LINK_VARIANT, quiet=True)
    nic = ("-nic", "socket,model=lan9118,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d"
           % (port, port))
    helpers = BOARD[:BOARD.index("\ndef link_costs(")]
    code = "P = %r\n%s\n%s" % ({"iters": iters}, helpers, LAN9118_BOARD)
    with mcu.Qemu(LINK_VARIANT, fw, extra_args=ICOUNT + nic) as q:
        out, err = q.exec(code, timeout_s=TIMEOUT_S)
    if err.strip():
        raise mcu.MCUError("board error:\n%s%s" % (out, err))
    res = {}
    for line in out.splitlines():
        m = re.fullmatch(r"(\w+) (-?[\d.e+-]+)", line.strip())
        if m:
            res[m.group(1)] = float(m.group(2))
    return res


def measure_link(iters=200):
    """Segment in and out with the LAN9118 driver, on the emulated Cortex-M3: the stack-only
    figures of the M3 firmware plus the driver's cost for the frames each side moves (one
    data frame, its share of ACK frames, one empty recv_into per poll)."""
    fw = mcu.build(LINK_VARIANT, quiet=True)
    res = measure(iters, ["seg"], LINK_VARIANT, fw)
    lan = lan9118_costs(max(50, iters // 2), fw)
    acks = res["acks_per_seg"]
    out = {"m3_seg_in": res["seg_in"], "m3_seg_out": res["seg_out"]}
    out["m3_seg_in_lan9118"] = (res["seg_in"] + lan["lan9118_recv_data"]
                                + acks * lan["lan9118_send_ack"] + lan["lan9118_recv_empty"])
    out["m3_seg_out_lan9118"] = (res["seg_out"] + lan["lan9118_send_data"]
                                 + acks * lan["lan9118_recv_ack"] + lan["lan9118_recv_empty"])
    out.update(lan)
    return out


# What tools/bench.py puts in its table (as mcu_m0_instr_<key>).
BENCH_KEYS = ("seg_in", "seg_out", "seg_in_pipe", "seg_out_pipe", "seg_in_frag", "seg_out_frag",
              "idle0", "idle4", "conn")

# Rows of the report: key, label, budget (instructions) or None.
FIGURES = (
    ("seg_in", "1460-byte segment in, with its ACK share, stack only", 100000),
    ("seg_out", "1460-byte segment out, stack only", 100000),
    ("seg_in_pipe", "1460-byte segment in, with the in-memory pipe link", None),
    ("seg_out_pipe", "1460-byte segment out, with the in-memory pipe link", None),
    ("seg_in_frag", "  segment in, stack only, on a fragmented heap", None),
    ("seg_out_frag", "  segment out, stack only, on a fragmented heap", None),
    ("idle0", "idle poll(), no connection", None),
    ("idle4", "idle poll(), server with 4 idle connections", 5000),
    ("idle4_client", "idle poll(), client with 4 idle connections", None),
    ("conn", "connection opened and closed (both ends, TIME-WAIT)", None),
)


LINK_FIGURES = (
    ("m3_seg_in", "Cortex-M3 (m3-board): segment in, stack only"),
    ("m3_seg_out", "Cortex-M3 (m3-board): segment out, stack only"),
    ("m3_seg_in_lan9118", "Cortex-M3: segment in, with the LAN9118 driver"),
    ("m3_seg_out_lan9118", "Cortex-M3: segment out, with the LAN9118 driver"),
    ("lan9118_send_data", "  LAN9118 driver: send of a 1514-byte frame"),
    ("lan9118_recv_data", "  LAN9118 driver: recv_into of a 1514-byte frame"),
    ("lan9118_send_ack", "  LAN9118 driver: send of a 54-byte frame"),
    ("lan9118_recv_ack", "  LAN9118 driver: recv_into of a 54-byte frame"),
    ("lan9118_recv_empty", "  LAN9118 driver: recv_into with nothing waiting"),
)


def report(res):
    lines = ["%-58s %12s %10s" % ("Cortex-M0 (m0-board), instructions", "count", "budget")]
    for key, label, budget in FIGURES:
        if key in res:
            lines.append("%-58s %12.0f %10s" % (label, res[key],
                                                 "<= %d" % budget if budget else ""))
    for key, label in LINK_FIGURES:
        if key in res:
            lines.append("%-58s %12.0f %10s" % (label, res[key], ""))
    extra = ", ".join("%s %.0f" % (k, res[k]) for k in sorted(res)
                      if k.startswith("pipe_") or k in ("empty_section",))
    lines.append("(ACKs per segment %.2f; per call: %s)" % (res.get("acks_per_seg", 0), extra))
    return "\n".join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description="Instruction counts on the emulated Cortex-M0")
    ap.add_argument("--iters", type=int, default=200, help="segments measured (default 200)")
    ap.add_argument("--variant", default=VARIANT, choices=sorted(mcu.VARIANTS))
    ap.add_argument("--what", default="seg,idle,conn,frag",
                    help="which figures, comma-separated (default seg,idle,conn,frag)")
    ap.add_argument("--link", action="store_true",
                    help="also the LAN9118 driver on the emulated Cortex-M3 (mps2-an385)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--profile", action="store_true",
                    help="per-function tables: a segment in, one out, a connection")
    args = ap.parse_args(argv)
    problem = mcu.prerequisites()
    if problem:
        print("mcu_bench: skipped: %s" % problem, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        fw = mcu.build(args.variant, quiet=True)  # one firmware for both: stack/ may change
        res = measure(args.iters, args.what.split(","), args.variant, fw)
        prof = None
        if args.profile:
            prof = profile(max(10, args.iters // 3), args.variant, fw, totals=res)
            pc = profile(max(3, args.iters // 40), args.variant, fw, "conn", res)
            prof["conn"], prof["conn_total"] = pc["conn"], pc["conn_total"]
            prof["conn_overhead"] = pc["conn_overhead"]
        if args.link:
            res.update(measure_link(args.iters))
    except mcu.MCUError as e:
        print("mcu_bench: %s" % e, file=sys.stderr)
        return 1
    if prof:
        res["profile"] = prof
    if args.json:
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        print(report(res))
        if prof:
            print()
            print(profile_report(prof, res))
        print("(%s, %d segments, %.1f s)" % (args.variant, args.iters, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
