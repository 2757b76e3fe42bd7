# Smoke test of a copy of the stack installed by mip (host_tests/test_mip.py). MIT licence.
#
#   MICROPYPATH=.frozen:<target> micropython mip_smoke.py core|lan|aio|debug
#
# Runs on the MicroPython unix port with only the installed copy (and the port's frozen
# modules) on the path: copied out of the repo before it runs. Prints "SMOKE <pkg> OK" at
# the end; any missing module or wrong answer raises, so the process exits non-zero.
# Each package's part uses what that package adds, and imports every module it installs.

import sys

from stack import AF_INET, SOCK_DGRAM, Stack, port
from stack.link.pipe import pipe

_STEPS = 20000  # clock steps of 1 ms: 20 s of virtual time, a fraction of a second real


def _where(mod):
    f = getattr(sys.modules[mod], "__file__", "")
    assert f and not f.startswith(".frozen"), "%s not from the installed copy: %r" % (mod, f)
    return f


class Two:
    """Stacks 10.0.0.1 (a) and 10.0.0.2 (b) on an in-memory link, on a virtual clock."""

    def __init__(self, ethernet=False, **kw):
        macs = (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02") if ethernet else None
        la, lb = pipe(mtu=1500, depth=8, macs=macs)
        self.now = 0
        kw.setdefault("rx_buf", 2048)
        kw.setdefault("tx_buf", 2048)
        kw.setdefault("tcbs", 4)
        self.a = Stack(la, ip="10.0.0.1", prefix=24, clock=self.clock, **kw)
        self.b = Stack(lb, ip="10.0.0.2", prefix=24, clock=self.clock, **kw)

    def clock(self):
        return self.now

    def run(self, cond, what):
        for _ in range(_STEPS):
            if cond():
                return
            self.a.poll()
            self.b.poll()
            self.now = port.ticks_add(self.now, 1)
        raise AssertionError("not reached: " + what)


def _try(fn):
    try:
        return fn()
    except OSError as e:
        if e.args[0] != port.EAGAIN:
            raise
        return None


def connecting(two, port_no, backlog):
    """A listening socket on two.b and a non-blocking connect to it from two.a."""
    srv = two.b.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", port_no))
    srv.listen(backlog)
    c = two.a.socket()
    c.setblocking(False)
    try:
        c.connect(("10.0.0.2", port_no))
    except OSError as e:
        assert e.args[0] == port.EINPROGRESS, e
    return srv, c


def tcp_round_trip(two, port_no=80):
    srv, c = connecting(two, port_no, 2)
    conns = []

    def accepted():
        r = _try(srv.accept)
        if r is not None:
            r[0].setblocking(False)
            conns.append(r[0])
        return conns and c.state == "ESTABLISHED"

    two.run(accepted, "handshake")
    s = conns[0]
    assert c.send(b"hello over mip") == 14
    buf = bytearray()
    two.run(lambda: buf.extend(_try(lambda: s.recv(100)) or b"") or len(buf) == 14, "data a->b")
    assert bytes(buf) == b"hello over mip", buf
    s.send(b"reply")
    back = bytearray()
    two.run(lambda: back.extend(_try(lambda: c.recv(100)) or b"") or len(back) == 5, "data b->a")
    assert bytes(back) == b"reply", back
    c.close()
    two.run(lambda: _try(lambda: s.recv(100)) == b"", "FIN seen by b")
    s.close()
    srv.close()
    two.run(lambda: not two.a.connections() and not two.b.connections(),
            "every connection ended (TIME-WAIT included)")


def syn_flood_recycles(two, port_no=81):
    """Two SYNs at once for a backlog of one: the second recycles the first (recycle.py)."""
    srv = two.b.socket()
    srv.setblocking(False)
    srv.bind(("0.0.0.0", port_no))
    srv.listen(1)
    socks = [two.a.socket(), two.a.socket()]
    for c in socks:
        c.setblocking(False)
        try:
            c.connect(("10.0.0.2", port_no))
        except OSError as e:
            assert e.args[0] == port.EINPROGRESS, e
    two.run(lambda: two.b.stats.tcpSynFloodRecycled, "the first SYN recycled")
    for c in socks:
        c.abort()
    srv.close()
    two.run(lambda: not two.a.connections() and not two.b.connections(), "all gone")


def keepalive_probes(port_no=82):
    """An idle connection with keepalive on sends a probe (tcp_probes.py)."""
    two = Two(keepalive_ms=200)
    srv, c = connecting(two, port_no, 1)
    two.run(lambda: c.state == "ESTABLISHED", "handshake")
    two.run(lambda: "stack.tcp_probes" in sys.modules, "a keepalive probe")
    assert c.state == "ESTABLISHED", c.state  # the peer answered it
    c.abort()
    srv.close()


def core():
    import stack

    two = Two(ethernet=True, msl_ms=500)  # Ethernet: ARP runs too
    assert two.a.tcbs[0].state == 0 and stack.tcp.FIELDS[0] == "state"  # tcpfields.py
    from stack.ringbuf import RingBuffer  # ringbuf_obj.py

    assert RingBuffer(8).write(b"abc") == 3
    tcp_round_trip(two)
    syn_flood_recycles(two)
    keepalive_probes()
    # The socket module of stack.install(): getaddrinfo (dns.py) and UDP (udpsock.py).
    socket = stack.install(two.a)
    assert sys.modules["socket"] is socket
    addr = socket.getaddrinfo("10.0.0.2", 7)[0][-1]
    assert addr == ("10.0.0.2", 7), addr
    rx = two.b.socket(stack.AF_INET, stack.SOCK_DGRAM)
    rx.setblocking(False)
    rx.bind(("0.0.0.0", 7))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    tx.sendto(b"ping", addr)
    got = []
    two.run(lambda: got.append(_try(lambda: rx.recvfrom(100))) or got[-1], "UDP datagram")
    assert got[-1][0] == b"ping" and got[-1][1][0] == "10.0.0.1", got[-1]
    # ICMP (icmp.py, loaded on first use): a datagram to a closed port gets port unreachable.
    tx.sendto(b"nobody", ("10.0.0.2", 9))
    two.run(lambda: two.a.stats.icmpInDestUnreachs, "ICMP port unreachable")
    assert two.b.stats.icmpOutDestUnreachs == 1
    tx.close()
    rx.close()
    # The board's driver, and the fast checksum (viper: the unix port has the native emitter).
    from stack.link import w5500

    assert hasattr(w5500, "W5500"), dir(w5500)
    assert port.CHECKSUM_KERNEL == "viper", port.CHECKSUM_KERNEL
    # The LAN9118 driver (the emulated board's) and its viper FIFO kernels.
    from stack.link import _lan9118_viper, lan9118

    assert hasattr(lan9118, "LAN9118") and _lan9118_viper.FAST
    for m in ("stack", "stack.link", "stack.link.w5500", "stack.dns", "stack.udpsock",
              "stack.icmp", "stack.recycle", "stack.tcpfields", "stack.tcp_probes",
              "stack.ringbuf_obj", "stack.usocket", "stack._checksum_viper", "stack._tcp_viper",
              "stack.link.lan9118", "stack.link._lan9118_viper"):
        _where(m)


def lan():
    # DHCP: a stack without an address asks (the peer has no server: DISCOVER goes out).
    macs = (b"\x02\x00\x00\x00\x00\x03", b"\x02\x00\x00\x00\x00\x04")
    la, lb = pipe(mtu=1500, depth=8, macs=macs)
    now = [0]
    net = Stack(la, ip=None, hostname="mipboard", clock=lambda: now[0])
    assert not net.isconnected()
    net.active(True)
    for _ in range(3000):
        net.poll()
        now[0] = port.ticks_add(now[0], 1)
    assert net.dhcp is not None and net.dhcp.running(), "DHCP client not running"
    assert lb.pending() > 0, "no DHCP DISCOVER sent"
    assert net.ifconfig()[0] == "0.0.0.0", net.ifconfig()
    # Static address and a host name: mdns.py answers mipboard.local, here to a plain
    # resolver asking port 5353 directly (legacy unicast, RFC 6762 6.7).
    two = Two(ethernet=True, hostname="mipboard")
    two.a.ipconfig(addr4="10.0.0.1/24", gw4="10.0.0.254")
    two.a.active(True)
    assert two.a.isconnected() and two.a.ifconfig()[:3] == ("10.0.0.1", "255.255.255.0",
                                                            "10.0.0.254"), two.a.ifconfig()
    assert two.a.config("mac") == b"\x02\x00\x00\x00\x00\x01"
    q = two.b.socket(AF_INET, SOCK_DGRAM)
    q.setblocking(False)
    q.sendto(b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x08mipboard\x05local\x00"
             b"\x00\x01\x00\x01", ("10.0.0.1", 5353))
    got = []
    two.run(lambda: got.append(_try(lambda: q.recvfrom(512))) or got[-1], "mDNS answer")
    reply = got[-1][0]
    assert reply[:2] == b"\x12\x34" and reply[-4:] == b"\x0a\x00\x00\x01", reply
    q.close()
    for m in ("stack.nic", "stack.nic_set", "stack.dhcp", "stack.mdns"):
        _where(m)


def aio():
    import asyncio

    from stack import aio, services

    # The real clock here: the asyncio driver sleeps on it.
    la, lb = pipe(mtu=1500, depth=16)
    a = Stack(la, ip="10.0.0.1", rx_buf=2048, tx_buf=2048)
    b = Stack(lb, ip="10.0.0.2", rx_buf=2048, tx_buf=2048)

    async def main():
        srv = await aio.start_server(b, services.echo(b), "0.0.0.0", 7)
        r, w = await aio.open_connection(a, "10.0.0.2", 7)
        w.write(b"echo via aio")
        await w.drain()
        assert await r.readexactly(12) == b"echo via aio"
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()

    async def bounded():
        try:
            await asyncio.wait_for(main(), 10)
        finally:
            for net in (a, b):
                task = aio.stop_driver(net)
                if task is not None:
                    await task

    asyncio.run(bounded())
    assert "stack.aio_streams" not in sys.modules, "boards' asyncio needs no aio_streams"
    for m in ("stack.aio", "stack.services"):
        _where(m)


def debug():
    from stack import debug
    from stack.link.lossy import Lossy

    two = Two(msl_ms=500)
    lines = []
    debug.trace(two.a, out=lines.append)
    debug.capture(two.a, size=4096)
    tcp_round_trip(two)
    debug.trace(two.a, False)
    assert any("SYN" in x for x in lines), lines[:5]
    debug.netstat(two.a, out=lines.append)
    debug.stats(two.a, out=lines.append)
    dumped = []
    debug.dump(two.a, out=dumped.append)
    assert dumped, "capture ring empty"
    # The fault injector around a pipe end: everything dropped.
    la, lb = pipe(mtu=1500, depth=4)
    lossy = Lossy(la, seed=3, loss=1.0)
    lossy.send(b"x" * 20)
    assert lb.pending() == 0 and lossy.dropped == 1
    for m in ("stack.debug", "stack.trace", "stack.link.lossy"):
        _where(m)


if __name__ == "__main__":
    for pkg in sys.argv[1:]:
        {"core": core, "lan": lan, "aio": aio, "debug": debug}[pkg]()
        print("SMOKE %s OK" % pkg)
