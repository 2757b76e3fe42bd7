# Network namespaces, veth pairs and `ss` for tests against the Linux kernel. CPython only.
# MIT licence.
#
#   import netns
#
#   def test_something():
#       netns.require_root()                     # skip (fail in CI) without root / ip netns
#       with netns.Netns() as a, netns.Netns() as b:
#           va, vb = netns.veth(a, b, addr_a="10.201.2.1/24")   # both up, IPv6 off,
#                                                # checksum/segmentation offloads off
#           with netns.inside(b):                # this thread is in b until the block ends
#               link = a.track(Packet(vb))       # ...so the socket lives in b, for good
#           with netns.inside(a):
#               s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # lives in a
#           p = netns.run_in(a, ["socat", ...], stdout=subprocess.PIPE)  # killed at exit
#           a.ip("route", "add", ...)            # `ip -n <a> route add ...`
#           assert netns.ss_states(a, 5000) == ["ESTABLISHED"]
#       # leaving the block: tracked objects closed, processes killed, namespace deleted
#
# Names carry the pid and a counter (st<pid>n<k>, interfaces v<pid><a|b><k>), so parallel
# runs never collide. Every namespace made here is also deleted at interpreter exit if a
# test forgot to. Nothing here sends traffic anywhere.
import atexit
import ctypes
import errno
import fcntl
import itertools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from contextlib import contextmanager

import mp

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
CMD_TIMEOUT_S = 20

_counter = itertools.count(1)
_lock = threading.Lock()
_live = {}  # name -> Netns, for the atexit sweep
_procs = {}  # namespace name -> [Popen] started by run_in()
_libc = None


def _next():
    with _lock:
        return next(_counter)


def unique_name(prefix="st"):
    """A namespace name unique to this process: <prefix><pid>n<k>."""
    return "%s%dn%d" % (prefix, os.getpid(), _next())


def ifname(tag="v"):
    """An interface name unique to this process, at most 15 characters: <tag><pid>i<k>."""
    name = "%s%di%d" % (tag, os.getpid(), _next())
    assert len(name) <= 15, name
    return name


def _name(ns):
    return ns.name if isinstance(ns, Netns) else str(ns)


def _as_netns(ns):
    # A Netns for ns, or a view of a namespace someone else made (never deleted by us).
    return ns if isinstance(ns, Netns) else _Named(str(ns))


def _run(argv, check=True, timeout=CMD_TIMEOUT_S):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), proc.returncode,
                                                   (proc.stderr or proc.stdout).strip()))
    return proc


def require_root():
    """Skip the calling test unless we are root with a working `ip netns` (fail in CI)."""
    if os.geteuid() != 0:
        mp.missing("needs root (network namespaces, TUN/TAP, AF_PACKET)")
    if shutil.which("ip") is None:
        mp.missing("`ip` (iproute2) not found")
    try:
        proc = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        mp.missing("`ip netns list` does not run: %s" % e)
    if proc.returncode != 0:
        mp.missing("`ip netns` unavailable: %s" % proc.stderr.decode(errors="replace").strip())


def require_tun():
    """Skip (fail in CI) when /dev/net/tun is missing."""
    if not os.path.exists("/dev/net/tun"):
        mp.missing("/dev/net/tun missing (modprobe tun)")


def require_tool(name):
    path = shutil.which(name)
    if path is None:
        mp.missing("`%s` not found on PATH" % name)
    return path


def list_netns():
    """Names from `ip netns list` (the first word of each line)."""
    out = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


# --- switching the current thread ---------------------------------------------------------

def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns(CLONE_NEWNET): %s" % os.strerror(err))


@contextmanager
def inside(ns):
    """Run the block with the CURRENT THREAD in namespace `ns` (a Netns or a name).

    Sockets and devices created in the block stay in that namespace after it ends; other
    threads are not affected. The thread is always switched back, also on error.
    """
    path = os.path.join(NETNS_DIR, _name(ns))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


# --- a namespace --------------------------------------------------------------------------

class Netns:
    """A network namespace with a unique name; a context manager that deletes it on exit.

    On open: `ip netns add`, `lo` up, IPv6 off for `all`/`default` (so interfaces made later
    send no router solicitations or MLD reports into captures).
    """

    def __init__(self, prefix="st"):
        self.name = unique_name(prefix)
        self._owned = []  # objects with close(), closed first at exit (links, sockets)
        self.opened = False

    def open(self):
        _run(["ip", "netns", "add", self.name])
        self.opened = True
        _live[self.name] = self
        try:
            self.ip("link", "set", "lo", "up")
            self.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
            self.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Netns %s>" % self.name

    def __str__(self):
        return self.name

    def ip(self, *args, check=True):
        """`ip -n NAME args...`; returns stdout. Raises RuntimeError on failure if check."""
        return _run(["ip", "-n", self.name] + [str(a) for a in args], check=check).stdout

    def exec(self, argv, timeout=CMD_TIMEOUT_S, check=False):
        """Run argv to completion inside the namespace; returns a CompletedProcess (text)."""
        return _run(["ip", "netns", "exec", self.name] + [str(a) for a in argv], check=check,
                    timeout=timeout)

    def run(self, argv, **popen_kwargs):
        """Start argv inside the namespace (see run_in); killed when the namespace closes."""
        return run_in(self, argv, **popen_kwargs)

    def wait_listening(self, port_no, proto="tcp", tries=100):
        """Return once something listens on port_no (`ss`), looking every 50 ms."""
        flag = "-lun" if proto == "udp" else "-ltn"
        for _ in range(tries):
            if ":%d " % port_no in self.exec(["ss", flag], timeout=10).stdout:
                return
            time.sleep(0.05)
        raise AssertionError("nothing listening on %s %d in %s" % (proto, port_no, self))

    def sysctl(self, key, value):
        # Written through /proc/sys of a process in the namespace (`ip netns exec` remounts
        # /sys; /proc/sys/net is per namespace).
        self.exec(["sysctl", "-qw", "%s=%s" % (key, value)], check=True)

    def track(self, obj):
        """Close obj (a link, a socket) when the namespace closes, before it is deleted."""
        self._owned.append(obj)
        return obj

    def inside(self):
        return inside(self)

    def link_exists(self, dev):
        return self.ip("link", "show", "dev", dev, check=False) != ""

    def mac(self, dev):
        """The kernel's MAC address of interface dev, as 6 bytes."""
        info = json.loads(self.ip("-j", "link", "show", "dev", dev))
        return bytes.fromhex(info[0]["address"].replace(":", ""))

    def close(self):
        """Close tracked objects, kill started processes, delete the namespace."""
        errors = []
        while self._owned:
            obj = self._owned.pop()
            try:
                obj.close()
            except Exception as e:  # keep cleaning up
                errors.append(e)
        kill_procs(self.name)
        if self.opened:
            self.opened = False
            _live.pop(self.name, None)
            proc = _run(["ip", "netns", "del", self.name], check=False)
            if proc.returncode != 0 and self.name in list_netns():
                errors.append(RuntimeError("ip netns del %s: %s" % (self.name,
                                                                     proc.stderr.strip())))
        if errors:
            raise errors[0]


def _sweep():
    for ns in list(_live.values()):
        try:
            ns.close()
        except Exception:
            pass


atexit.register(_sweep)


# --- processes ----------------------------------------------------------------------------

def run_in(ns, argv, **popen_kwargs):
    """Start argv inside namespace ns with `ip netns exec`; return the Popen.

    The process gets its own session (so its children are killed with it) and is killed
    when the namespace closes (Netns.close) or by kill_procs(name).
    """
    name = _name(ns)
    popen_kwargs.setdefault("start_new_session", True)
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen(["ip", "netns", "exec", name] + [str(a) for a in argv],
                            **popen_kwargs)
    with _lock:
        _procs.setdefault(name, []).append(proc)
    return proc


def kill_procs(name, grace_s=2.0):
    with _lock:
        procs = _procs.pop(name, [])
    for proc in procs:
        if proc.poll() is None:
            _signal(proc, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait(timeout=grace_s)
        for f in (proc.stdout, proc.stderr, proc.stdin):
            if f is not None:
                f.close()


def _signal(proc, sig):
    try:
        os.killpg(proc.pid, sig)  # its own session: the group is the process and children
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


# --- interfaces ---------------------------------------------------------------------------

def disable_ipv6(ns, dev):
    """No IPv6 on dev: no router solicitations, MLD or DAD in captures."""
    _as_netns(ns).sysctl("net.ipv6.conf.%s.disable_ipv6" % dev, 1)


class _Named(Netns):
    # A Netns view of an existing namespace we did not create: close() deletes nothing.
    def __init__(self, name):
        self.name = name
        self._owned = []
        self.opened = False


_SIOCETHTOOL = 0x8946
# Legacy ethtool "set" commands (struct ethtool_value {u32 cmd; u32 data;}).
_ETHTOOL_SETS = {
    "tx": 0x17,   # ETHTOOL_STXCSUM: tx checksumming (TSO depends on it)
    "rx": 0x15,   # ETHTOOL_SRXCSUM
    "sg": 0x19,   # ETHTOOL_SSG: scatter-gather
    "tso": 0x1F,  # ETHTOOL_STSO
    "gso": 0x24,  # ETHTOOL_SGSO
    "gro": 0x2C,  # ETHTOOL_SGRO
}


# The matching "get" commands.
_ETHTOOL_GETS = {"tx": 0x16, "rx": 0x14, "sg": 0x18, "tso": 0x1E, "gso": 0x23, "gro": 0x2B}


def _ethtool(ns, dev, pairs):
    # [(cmd, data)] -> [data after each ioctl], through one socket inside ns.
    out = []
    with inside(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for cmd, data in pairs:
            val = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)
            ifr = struct.pack("16sP16x", dev.encode(), ctypes.addressof(val))
            try:
                fcntl.ioctl(s.fileno(), _SIOCETHTOOL, ifr)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                out.append(None)
                continue
            out.append(struct.unpack("II", val.raw)[1])
    finally:
        s.close()
    return out


def offloads(ns, dev):
    """{"tx": 0/1, "rx", "sg", "tso", "gso", "gro"} for dev in ns (like `ethtool -k`)."""
    names = list(_ETHTOOL_GETS)
    return dict(zip(names, _ethtool(ns, dev, [(_ETHTOOL_GETS[n], 0) for n in names])))


def set_offloads(ns, dev, on=False, features=("tx", "tso", "gso", "gro")):
    """Turn checksum/segmentation offloads of dev on or off (like `ethtool -K`), in ns.

    Why: on a veth the kernel hands frames across with the checksum left for "hardware"
    (CHECKSUM_PARTIAL) and with GSO/GRO super-frames larger than the MTU; an AF_PACKET
    reader on the far end sees exactly that. Our stack needs real wire frames, so veth()
    turns these off on both ends. (No ethtool binary needed: the legacy SIOCETHTOOL ioctl.)
    """
    _ethtool(ns, dev, [(_ETHTOOL_SETS[f], 1 if on else 0) for f in features])


def veth(ns_a, ns_b, addr_a=None, addr_b=None, mtu=1500, name_a=None, name_b=None,
         offload=False, up=True):
    """A veth pair: end a in namespace ns_a, end b in ns_b. Returns (name_a, name_b).

    addr_a/addr_b: "10.201.2.1/24" or None. Both ends get the MTU and IPv6 off, and are up
    unless up=False; offloads are off unless offload=True (see set_offloads). Deleting
    either namespace deletes the pair.
    """
    name_a = name_a or ifname("v")
    name_b = name_b or ifname("v")
    a, b = _name(ns_a), _name(ns_b)
    # Created directly in the target namespaces: nothing ever appears in ours.
    _run(["ip", "link", "add", name_a, "netns", a, "mtu", str(mtu), "type", "veth",
          "peer", "name", name_b, "netns", b, "mtu", str(mtu)])
    for ns, dev, addr in ((ns_a, name_a, addr_a), (ns_b, name_b, addr_b)):
        ns = _as_netns(ns)
        disable_ipv6(ns, dev)
        if not offload:
            set_offloads(ns, dev, on=False)
        if addr:
            ns.ip("addr", "add", addr, "dev", dev)
        if up:
            ns.ip("link", "set", dev, "up")
    return name_a, name_b


# --- what Linux says about its connections --------------------------------------------------

# ss's abbreviations -> RFC 9293 state names.
SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN-SENT",
    "SYN-RECV": "SYN-RECEIVED",
    "FIN-WAIT-1": "FIN-WAIT-1",
    "FIN-WAIT-2": "FIN-WAIT-2",
    "TIME-WAIT": "TIME-WAIT",
    "CLOSE-WAIT": "CLOSE-WAIT",
    "LAST-ACK": "LAST-ACK",
    "CLOSING": "CLOSING",
    "LISTEN": "LISTEN",
    "UNCONN": "CLOSED",
    "CLOSE": "CLOSED",
}


def ss_table(ns, port=None):
    """[(state, local "ip:port", peer "ip:port")] from `ss -tan` in ns, RFC state names,
    only rows whose local or peer port is `port` (all rows if port is None)."""
    proc = _as_netns(ns).exec(["ss", "-tanH"], check=True)
    rows = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        state, local, peer = parts[0], parts[3], parts[4]
        if port is not None and str(port) not in (local.rsplit(":", 1)[-1],
                                                  peer.rsplit(":", 1)[-1]):
            continue
        rows.append((SS_STATES.get(state, state), local, peer))
    return rows


def ss_states(ns, port, listening=False):
    """RFC names of the TCP states Linux reports in ns for connections with `port` as local
    or peer port, in ss order: e.g. ["ESTABLISHED"], ["TIME-WAIT"]. LISTEN sockets are
    left out unless listening=True."""
    return [st for st, _, _ in ss_table(ns, port) if listening or st != "LISTEN"]
