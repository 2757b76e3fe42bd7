# The one interpreter-specific module: clock, ticks arithmetic, checksum kernel, random, errno.
# SPDX-License-Identifier: MIT
#
# Everything else under stack/ is identical on CPython, MicroPython unix (64-bit) and
# MicroPython WebAssembly (32-bit, like the boards). Features are detected with try/except,
# never with sys.implementation (as microdot does).

try:
    import time

    ticks_ms = time.ticks_ms
    ticks_add = time.ticks_add
    ticks_diff = time.ticks_diff
    sleep_ms = time.sleep_ms
    # ticks_add(0, -1) is the largest tick: the period is one more. 2**30 on 32-bit boards;
    # 2**62 on the 64-bit unix port, whose ticks then go the CPython way below, as a
    # TCB's deadlines must fit its 32-bit fields (tcp.py).
    if ticks_add(0, -1) + 1 != 1 << 30:  # pragma: no cover - unix 64-bit
        _ticks_ms = ticks_ms
        raise AttributeError
    TICKS_PERIOD = 1 << 30
except AttributeError:  # pragma: no cover - CPython
    import time

    # CPython ticks wrap at 2**30 as on our boards, so host tests exercise wrap-around.
    TICKS_PERIOD = 1 << 30
    _TICKS_MASK = TICKS_PERIOD - 1
    _TICKS_HALF = TICKS_PERIOD >> 1

    try:
        _ticks_ms
    except NameError:
        def _ticks_ms():
            return int(time.monotonic() * 1000)

    def ticks_ms():
        return _ticks_ms() & _TICKS_MASK

    def ticks_add(ticks, delta):
        return (ticks + delta) & _TICKS_MASK

    def ticks_diff(end, start):
        return ((end - start + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF

    try:
        sleep_ms = time.sleep_ms
    except AttributeError:
        def sleep_ms(ms):
            time.sleep(ms / 1000)


try:
    import errno as _errno
except ImportError:  # pragma: no cover
    import uerrno as _errno


def _errno_or(name, linux_value):
    # MicroPython lacks some names (EISCONN, EPIPE): fall back to the Linux numbers.
    return getattr(_errno, name, linux_value)


EAGAIN = _errno_or("EAGAIN", 11)
EINPROGRESS = _errno_or("EINPROGRESS", 115)
EALREADY = _errno_or("EALREADY", 114)
ECONNRESET = _errno_or("ECONNRESET", 104)
ECONNREFUSED = _errno_or("ECONNREFUSED", 111)
ECONNABORTED = _errno_or("ECONNABORTED", 103)
ETIMEDOUT = _errno_or("ETIMEDOUT", 110)
ENOBUFS = _errno_or("ENOBUFS", 105)
ENOTCONN = _errno_or("ENOTCONN", 107)
EISCONN = _errno_or("EISCONN", 106)
EADDRINUSE = _errno_or("EADDRINUSE", 98)
EINVAL = _errno_or("EINVAL", 22)
EPIPE = _errno_or("EPIPE", 32)
EBADF = _errno_or("EBADF", 9)
EOPNOTSUPP = _errno_or("EOPNOTSUPP", 95)
EHOSTUNREACH = _errno_or("EHOSTUNREACH", 113)
EMSGSIZE = _errno_or("EMSGSIZE", 90)
EAFNOSUPPORT = _errno_or("EAFNOSUPPORT", 97)
ENETUNREACH = _errno_or("ENETUNREACH", 101)


# Random numbers: ISN secrets, ephemeral ports. os.urandom where it exists (CPython, unix
# port); else the random module, seeded from the clock (the WebAssembly port).
try:
    from os import urandom
except ImportError:  # pragma: no cover - ports without os.urandom
    try:
        import random as _random
    except ImportError:
        import urandom as _random
    _random.seed(ticks_ms())

    def urandom(n):
        out = bytearray(n)
        for i in range(n):
            out[i] = _random.getrandbits(8)
        return bytes(out)


def checksum_plain(buf, start, end, acc):
    """Ones'-complement sum of buf[start:end] (big-endian 16-bit words) added to acc.

    Returns the unfolded sum; fold with fold_checksum(). Allocation-free: the running sum of
    up to 32 KiB of words stays below 2**30, a small int even on 32-bit boards.
    """
    n = end - start
    stop = start + (n & ~1)
    i = start
    while i < stop:
        acc += (buf[i] << 8) | buf[i + 1]
        i += 2
    if n & 1:
        acc += buf[stop] << 8
    return acc


def fold_checksum(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


checksum = checksum_plain
CHECKSUM_KERNEL = "plain"
# copy_viper(dst, doff, src, soff, n): a native copy where MicroPython has viper (it returns
# 0, copying nothing, unless both addresses are even); None elsewhere. ringbuf.py uses it.
copy_viper = None
# tcp4_in(buf, ip, n, me, keys, sg): the common TCP segment's checks,
# demultiplexing and parsing in native code (iface.py process_frame); None elsewhere.
tcp4_in = None
tcp4_out = None  # a TCP segment's per-segment fields and checksums, natively (tcp.py)
# tcp_out(v, buf, hdrs, txb, now, force, knobs): one turn of a connection's send loop for
# new data, natively (tcp.py output; _tcp_viper.py); None elsewhere.
tcp_out = None
# tcp_predict(v, sg, rxbuf, rxb, now, knobs): header prediction natively (iface.py); None
# elsewhere.
tcp_predict = None

try:
    # CPython: one big-int conversion sums a whole buffer in C.
    int.from_bytes(b"\x00\x01", "big", signed=False)  # MicroPython rejects the keyword
    import sys as _sys

    if _sys.implementation.name != "cpython":  # pragma: no cover
        raise TypeError

    def checksum_bigint(buf, start, end, acc):
        n = end - start
        if n & 1:
            acc += buf[end - 1] << 8
            end -= 1
        if end > start:
            big = int.from_bytes(buf[start:end], "big")
            # Summing 16-bit words mod 0xFFFF equals the value mod 0xFFFF (2**16 = 1 there);
            # a non-zero multiple of 0xFFFF sums to 0xFFFF, as the word loop would fold it.
            v = big % 0xFFFF
            acc += v if v or not big else 0xFFFF
        return acc

    checksum = checksum_bigint
    CHECKSUM_KERNEL = "bigint"
except (TypeError, ValueError, NotImplementedError):  # pragma: no cover - MicroPython
    try:
        from ._checksum_viper import checksum_viper

    except Exception:  # no native emitter (WebAssembly): keep the plain loop
        checksum_viper = None
    if checksum_viper is not None:
        # Self-check: every alignment and odd length against the plain loop. A port where
        # the word trick fails (big-endian) keeps the plain loop and says so.
        _probe = bytearray(b"\x45\x00\x05\xdc\xe4\x3b\x40\x00\x40\x06\x81\xff\x0a")
        CHECKSUM_KERNEL = "viper"
        for _s in range(4):
            for _e in range(_s, len(_probe) + 1):
                if fold_checksum(checksum_viper(_probe, _s, _e, 1)) != fold_checksum(
                        checksum_plain(_probe, _s, _e, 1)):
                    CHECKSUM_KERNEL = "plain (viper kernel disagreed)"
        _probe = bytes(_probe) * 6  # past the kernel's 32-byte turns, with a tail
        for _s in range(2):
            if fold_checksum(checksum_viper(_probe, _s, len(_probe), 1)) != fold_checksum(
                    checksum_plain(_probe, _s, len(_probe), 1)):
                CHECKSUM_KERNEL = "plain (viper kernel disagreed)"
        if CHECKSUM_KERNEL == "viper":
            checksum = checksum_viper
    try:
        from ._checksum_viper import copy_viper

        # Self-check, as the checksum's: every even offset pair and tail, once at import.
        _src = bytes(range(80))
        _dst = bytearray(80)
        for _n in (0, 1, 2, 31, 32, 33, 66, 70):
            for _o in (0, 2, 4):
                _dst[:] = bytes(80)
                _ok = copy_viper(_dst, _o, _src, 6, _n)
                if not _ok or _dst[_o:_o + _n] != _src[6:6 + _n] or any(_dst[_o + _n:]):
                    copy_viper = None
                    break
            if copy_viper is None:
                break
        del _src, _dst, _ok
        if copy_viper is not None and CHECKSUM_KERNEL == "viper":
            from ._checksum_viper import tcp4_in, tcp4_out  # they use checksum_viper
            try:
                # A board may leave _tcp_viper out: 8 KB less heap from .mpy or ROMFS,
                # a third more CPU per segment in, half again out (the Python does the same).
                from ._tcp_viper import tcp_out, tcp_predict
            except Exception:  # left out (ImportError), or a port that cannot compile it
                pass
    except Exception:  # no native emitter (WebAssembly): rings copy by slice
        copy_viper = None
