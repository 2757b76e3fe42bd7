# Host link drivers (TUN, TAP, AF_PACKET) against the Linux kernel, without the TCP stack.
# MIT licence.
#
# Each test makes its own network namespaces (netns.py) and devices in them, plays the far
# end by hand (ARP replies, IPv4/UDP built in packet_probe.py), and checks that a Linux UDP
# socket in the namespace and the driver exchange datagrams both ways. The AF_PACKET driver
# also runs under the MicroPython unix port (packet_probe.py as a script in the namespace).
# Needs root; without it the tests skip (fail in CI, STACK_REQUIRE_ALL=1).
# Addresses: 10.201.0.0/24 TUN, 10.201.1.0/24 TAP, 10.201.2.0/24 veth; all inside namespaces.
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

import mp
import netns
import packet_probe as pp
import pytest

from stack.link.packet import Packet
from stack.link.tap import Tap
from stack.link.tun import Tun

WAIT_S = 5.0  # every wait below is bounded by this (or the probe's own timeout)
UDP_PORT = 7777


@pytest.fixture
def make_ns():
    """make_ns() -> an open Netns; all of them deleted at teardown, and checked gone."""
    netns.require_root()
    made = []

    def make():
        ns = netns.Netns("stl")
        made.append(ns)
        return ns.open()

    try:
        yield make
    finally:
        errors = []
        for ns in reversed(made):
            try:
                ns.close()
            except Exception as e:
                errors.append(e)
        listed = netns.list_netns()
        left = [ns.name for ns in made if ns.name in listed]
        # Devices live only in the namespaces; none may have leaked into ours.
        ours = re.compile(r"^[a-z]+%di\d+$" % os.getpid())
        root_links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                                    text=True, timeout=10).stdout
        leaked = [ln.split(":")[1].strip().split("@")[0] for ln in root_links.splitlines()
                  if ours.match(ln.split(":")[1].strip().split("@")[0])]
        assert not errors, errors
        assert not left, "namespaces not deleted: %s" % left
        assert not leaked, "devices left in the root namespace: %s" % leaked


def _udp_socket(ns, bind_ip):
    with netns.inside(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ns.track(s)
    s.bind((bind_ip, 0))
    s.settimeout(WAIT_S)
    return s


def _poll(link, match, timeout_s=WAIT_S, max_frames=1000):
    """Read frames from link until match(frame_bytes) returns non-None; return that.

    Bounded in time and frame count; fails with the frames seen so far."""
    buf = bytearray(link.mtu + 14)
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(seen) < max_frames:
        n = link.recv_into(buf)
        if n == 0:
            select.select([link.fileno()], [], [], 0.05)
            continue
        frame = bytes(buf[:n])
        seen.append(frame)
        got = match(frame)
        if got is not None:
            return got
    pytest.fail("no matching frame within %ss; saw %d: %s"
                % (timeout_s, len(seen), [f[:34].hex() for f in seen[:8]]))


def _arp_for(target_ip):
    t = pp.ip_bytes(target_ip)

    def match(frame):
        req = pp.parse_arp_request(frame)
        return req if req is not None and req[2] == t else None

    return match


def _eth_udp_to(mac, ip):
    dst = pp.ip_bytes(ip)

    def match(frame):
        if frame[:6] != mac:
            return None
        udp = pp.parse_ether_udp(frame)
        return udp if udp is not None and udp[1] == dst else None

    return match


def _root_has_link(dev):
    return subprocess.run(["ip", "link", "show", "dev", dev], capture_output=True,
                          timeout=10).returncode == 0


# --- TUN ----------------------------------------------------------------------------------

def test_tun_udp_both_ways(make_ns):
    netns.require_tun()
    ns = make_ns()
    dev = netns.ifname("t")
    link = ns.track(Tun(dev, mtu=1400, netns=ns.name))
    assert link.mac is None and link.mtu == 1400 and link.name == dev
    assert ns.link_exists(dev) and not _root_has_link(dev)
    assert "mtu 1400" in ns.ip("link", "show", "dev", dev)
    buf = bytearray(1400)
    assert link.recv_into(buf) == 0  # down: nothing waits, and it does not block
    ns.ip("addr", "add", "10.201.0.1/24", "dev", dev)
    ns.ip("link", "set", dev, "up")
    assert link.recv_into(buf) == 0

    s = _udp_socket(ns, "10.201.0.1")
    sport = s.getsockname()[1]
    s.sendto(b"hello through tun", ("10.201.0.2", UDP_PORT))

    def match(packet):
        udp = pp.parse_ipv4_udp(packet)
        return udp if udp is not None and udp[1] == pp.ip_bytes("10.201.0.2") else None

    src, dst, got_sport, dport, payload = _poll(link, match)
    assert (pp.ip_text(src), got_sport, dport, payload) == (
        "10.201.0.1", sport, UDP_PORT, b"hello through tun")

    reply = pp.ipv4_udp(dst, src, UDP_PORT, sport, b"reply from our side")
    link.send(memoryview(reply))  # a memoryview, as the stack passes
    data, addr = s.recvfrom(2048)
    assert (data, addr) == (b"reply from our side", ("10.201.0.2", UDP_PORT))
    assert link.drops == 0

    link.close()
    assert not ns.link_exists(dev)  # non-persistent: closing the fd removes the device


# --- TAP ----------------------------------------------------------------------------------

def test_tap_arp_then_udp_both_ways(make_ns):
    netns.require_tun()
    ns = make_ns()
    dev = netns.ifname("p")
    link = ns.track(Tap(dev, netns=ns.name))
    assert len(link.mac) == 6 and link.mac[0] == 0x02 and link.mtu == 1500
    kernel_mac = ns.mac(dev)
    assert kernel_mac != link.mac  # ours is the stack's address, not the interface's
    ns.ip("addr", "add", "10.201.1.1/24", "dev", dev)
    ns.ip("link", "set", dev, "up")

    s = _udp_socket(ns, "10.201.1.1")
    sport = s.getsockname()[1]
    s.sendto(b"hello through tap", ("10.201.1.2", UDP_PORT))

    asker_mac, asker_ip, _ = _poll(link, _arp_for("10.201.1.2"))
    assert (asker_mac, pp.ip_text(asker_ip)) == (kernel_mac, "10.201.1.1")
    link.send(memoryview(pp.arp_reply(link.mac, pp.ip_bytes("10.201.1.2"), asker_mac,
                                      asker_ip)))

    src, dst, got_sport, dport, payload = _poll(link, _eth_udp_to(link.mac, "10.201.1.2"))
    assert (pp.ip_text(src), got_sport, dport, payload) == (
        "10.201.1.1", sport, UDP_PORT, b"hello through tap")
    assert "10.201.1.2 lladdr %s" % ":".join("%02x" % b for b in link.mac) in ns.ip(
        "neigh", "show", "dev", dev)

    frame = pp.ether(kernel_mac, link.mac, pp.ETH_IPV4,
                     pp.ipv4_udp(dst, src, UDP_PORT, sport, b"reply over ethernet"))
    link.send(memoryview(frame))
    data, addr = s.recvfrom(2048)
    assert (data, addr) == (b"reply over ethernet", ("10.201.1.2", UDP_PORT))

    link.close()
    assert not ns.link_exists(dev)


def test_tap_mac_given_and_checked():
    mac = b"\x02\x00\x00\x00\x00\x42"
    assert Tap.__init__.__defaults__ == ("tap0", 1500, None, None)
    with pytest.raises(ValueError):
        Tap("x", mac=b"\x01\x00\x00\x00\x00\x01")  # multicast: refused before any syscall
    with pytest.raises(ValueError):
        Tap("x", mac=b"\x02\x00")
    from stack.link.tap import check_mac, random_mac
    assert check_mac(mac) == mac
    macs = {random_mac() for _ in range(20)}
    assert len(macs) > 1 and all(len(m) == 6 and m[0] == 0x02 for m in macs)


# --- AF_PACKET on a veth pair -------------------------------------------------------------

def _veth_pair(make_ns):
    a, b = make_ns(), make_ns()
    va, vb = netns.veth(a, b, addr_a="10.201.2.1/24")
    return a, b, va, vb


def test_packet_arp_then_udp_both_ways(make_ns):
    a, b, va, vb = _veth_pair(make_ns)
    with netns.inside(b):
        link = b.track(Packet(vb))
    assert link.filter == "kernel" and link.name == vb and link.mac[0] == 0x02
    assert link.recv_into(bytearray(1514)) == 0

    s = _udp_socket(a, "10.201.2.1")
    sport = s.getsockname()[1]
    s.sendto(b"hello through af_packet", ("10.201.2.2", UDP_PORT))

    asker_mac, asker_ip, _ = _poll(link, _arp_for("10.201.2.2"))
    assert (asker_mac, pp.ip_text(asker_ip)) == (a.mac(va), "10.201.2.1")
    link.send(memoryview(pp.arp_reply(link.mac, pp.ip_bytes("10.201.2.2"), asker_mac,
                                      asker_ip)))
    # parse_ether_udp checks the UDP checksum: it only passes because veth() turned the
    # checksum offload off (else the kernel leaves a partial checksum for "hardware").
    src, dst, got_sport, dport, payload = _poll(link, _eth_udp_to(link.mac, "10.201.2.2"))
    assert (pp.ip_text(src), got_sport, dport, payload) == (
        "10.201.2.1", sport, UDP_PORT, b"hello through af_packet")

    frame = pp.ether(asker_mac, link.mac, pp.ETH_IPV4,
                     pp.ipv4_udp(dst, src, UDP_PORT, sport, b"reply over af_packet"))
    link.send(memoryview(frame))
    data, addr = s.recvfrom(2048)
    assert (data, addr) == (b"reply over af_packet", ("10.201.2.2", UDP_PORT))


def _raw(ns, dev):
    # A plain ETH_P_ALL socket, a witness independent of the driver.
    with netns.inside(ns):
        r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        r.bind((dev, 3))
    ns.track(r)
    r.settimeout(WAIT_S)
    return r


def _raw_recv(r, ethertype, tag):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        data, addr = r.recvfrom(2048)
        if data[12:14] == ethertype and tag in data:
            return data, addr
    pytest.fail("witness socket saw no %r frame" % tag)


@pytest.mark.parametrize("filt", ["kernel", "source-mac"])
def test_packet_ignores_outgoing_frames(make_ns, monkeypatch, filt):
    # An ETH_P_ALL socket sees what the kernel sends on the interface too. Our driver must
    # not take those (nor its own frames) as input, but must take frames that arrive.
    # "source-mac" is the fallback for kernels without PACKET_IGNORE_OUTGOING (< 4.20),
    # forced here by asking for an option number no kernel has.
    if filt == "source-mac":
        import stack.link.packet

        monkeypatch.setattr(stack.link.packet, "_PACKET_IGNORE_OUTGOING", 0x7FFF)
    a, b, va, vb = _veth_pair(make_ns)
    with netns.inside(b):
        link = b.track(Packet(vb))
    assert link.filter == filt
    other_b = _raw(b, vb)  # someone else on our side sending on vb
    witness_a = _raw(a, va)
    ethertype = b"\x88\xb5"  # IEEE local experimental
    bcast = pp.BROADCAST

    other_b.send(pp.ether(bcast, b.mac(vb), 0x88B5, b"from another socket on vb".ljust(46)))
    link.send(memoryview(pp.ether(bcast, link.mac, 0x88B5, b"from the driver".ljust(46))))
    _raw_recv(witness_a, ethertype, b"from another socket on vb")  # both really went out
    _raw_recv(witness_a, ethertype, b"from the driver")
    witness_a.send(pp.ether(bcast, a.mac(va), 0x88B5, b"arriving from a".ljust(46)))

    got = _poll(link, lambda f: f if f[12:14] == ethertype else None)
    assert b"arriving from a" in got  # the first experimental frame we see is the arrival
    buf = bytearray(1514)
    time.sleep(0.1)
    assert link.recv_into(buf) == 0


def _mp_env():
    # As mp.run_unix: the repo root as working directory, MICROPYPATH = .frozen, root,
    # host_tests (the script's own directory comes first anyway).
    path = os.pathsep.join([".frozen", str(mp.ROOT), str(mp.HOST_TESTS)])
    return dict(os.environ, MICROPYPATH=path)


def _readline(proc, timeout_s):
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        return ""
    return proc.stdout.readline()


def _burst_frames(dst):
    """Frames of every size class the link must keep apart when they queue up together:
    (frame as sent, what recv_into must return or None if the link must skip it)."""
    src = b"\x02\x00\x00\x00\x00\x01"
    hdr = dst + src
    ipv4 = lambda payload_len, fill: pp.ipv4_udp(pp.ip_bytes("10.201.2.1"),
                                                 pp.ip_bytes("10.201.2.2"), 4000, 4001,
                                                 bytes([fill]) * payload_len)
    arp = hdr + struct.pack(">HHHBBH", pp.ETH_ARP, 1, 0x0800, 6, 4, 1) + src + pp.ip_bytes(
        "10.201.2.1") + b"\x00" * 6 + pp.ip_bytes("10.201.2.2")
    eth4 = hdr + struct.pack(">H", pp.ETH_IPV4)
    small = eth4 + ipv4(4, 0x11)  # 46 bytes: shorter than a wire frame
    full = eth4 + ipv4(1472, 0x22)  # 1514 bytes
    mid = eth4 + ipv4(700, 0x33)
    other = hdr + b"\x86\xdd" + bytes(80)  # IPv6: not for this stack
    return [
        (arp + b"\x00" * 18, arp),  # ARP padded to 60 bytes: the padding is cut off
        (small, small),
        (small + b"\xee" * 14, small),  # padded to 60: cut to the IPv4 total length
        (other, None),
        (full, full),
        (mid, mid),
        (small, small),
        (full, full),
    ]


def _start_probe(ns, *args):
    """packet_probe.py under MicroPython in ns; (process, its "ready ..." line split)."""
    probe = ns.run([mp.micropython_cmd(), "host_tests/packet_probe.py"] + list(args),
                   cwd=mp.ROOT, env=_mp_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    first = _readline(probe, WAIT_S).split()
    if not first or first[0] != "ready":
        probe.kill()
        pytest.fail("probe did not start: %r %s" % (first, probe.communicate(timeout=5)))
    return probe, first


def test_packet_micropython_keeps_queued_frames_apart(make_ns):
    a, b, va, vb = _veth_pair(make_ns)
    probe, first = _start_probe(b, "burst", vb, "10")
    frames = _burst_frames(bytes.fromhex(first[1]))
    with netns.inside(a):
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        raw.bind((va, 0))
        for sent, _ in frames:  # one burst: the probe reads nothing until all are queued
            raw.send(sent)
    finally:
        raw.close()
    out, err = probe.communicate(timeout=15)
    assert probe.returncode == 0, out + err
    lines = out.splitlines()
    got = [bytes.fromhex(ln.split()[2]) for ln in lines if ln.startswith("frame ")]
    # The kernel may add frames of its own (none expected with IPv6 off); ours come in order.
    ours = [g for g in got if g[6:12] == b"\x02\x00\x00\x00\x00\x01"]
    assert ours == [want for _, want in frames if want is not None], out
    assert "skipped 1" in lines, out  # the IPv6 frame, consumed and not returned


def test_packet_micropython_arp_then_udp_both_ways(make_ns):
    a, b, va, vb = _veth_pair(make_ns)
    probe, first = _start_probe(b, "answer", vb, "10.201.2.2", "10")
    _, mac_hex, filt, method = first
    # MicroPython unix sockets have readinto(), not recv_into(); the kernel filters outgoing
    # frames (PACKET_IGNORE_OUTGOING) there too.
    assert (filt, method) == ("kernel", "readinto")
    assert bytes.fromhex(mac_hex)[0] == 0x02

    s = _udp_socket(a, "10.201.2.1")
    sport = s.getsockname()[1]
    s.sendto(b"hello micropython", ("10.201.2.2", UDP_PORT))
    data, addr = s.recvfrom(2048)  # the probe echoes the payload reversed
    out, err = probe.communicate(timeout=15)
    assert probe.returncode == 0, out + err
    assert (data, addr) == (b"hello micropython"[::-1], ("10.201.2.2", UDP_PORT))
    lines = out.splitlines()
    assert "arp 10.201.2.1" in lines
    assert "udp %d %d %s" % (sport, UDP_PORT, b"hello micropython".hex()) in lines
    assert "heap locked" in lines, out  # send ran with the heap locked
    assert a.ip("neigh", "show", "dev", va).startswith("10.201.2.2 lladdr " + ":".join(
        mac_hex[i:i + 2] for i in range(0, 12, 2)))


# --- clear errors ---------------------------------------------------------------------------

_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _as_nobody(ns, argv):
    netns.require_tool("setpriv")
    # Inside a test namespace, so even a wrongly granted open could not touch the host's.
    proc = ns.exec(_AS_NOBODY + argv, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


_OPEN_AS_CPYTHON = """
import sys
sys.path[:0] = [%r, %r]  # the repo root, and host_tests/
from stack.link.%s import %s as Link
try:
    Link(%r)
except OSError as e:
    print("ERR", e.errno, e.strerror)
else:
    print("OPENED")
"""


@pytest.mark.parametrize("module,cls", [("tun", "Tun"), ("tap", "Tap"), ("packet", "Packet")])
def test_not_root_gets_a_clear_error(make_ns, module, cls):
    ns = make_ns()
    dev = "lo" if cls == "Packet" else netns.ifname("n")
    code = _OPEN_AS_CPYTHON % (str(mp.ROOT), str(mp.HOST_TESTS), module, cls, dev)
    rc, out, err = _as_nobody(ns, [sys.executable, "-c", code])
    assert rc == 0 and "Traceback" not in err, out + err
    words = out.split(None, 2)
    assert words[0] == "ERR" and int(words[1]) in (1, 13), out  # EPERM or EACCES
    need = "CAP_NET_RAW" if cls == "Packet" else "CAP_NET_ADMIN"
    assert "needs root or " + need in words[2] and repr(dev) in words[2], out
    assert not ns.link_exists(dev) or dev == "lo"


def test_micropython_packet_not_root_gets_a_clear_error(make_ns):
    ns = make_ns()
    rc, out, err = _mp_nobody(ns)
    assert rc == 1 and "Traceback" not in err, out + err
    assert out.startswith("error 1 ") and "needs root or CAP_NET_RAW" in out, out


def _mp_nobody(ns):
    netns.require_tool("setpriv")
    proc = subprocess.run(["ip", "netns", "exec", ns.name] + _AS_NOBODY
                          + [mp.micropython_cmd(), "host_tests/packet_probe.py", "open", "lo"],
                          cwd=mp.ROOT, env=_mp_env(), capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_packet_missing_interface_cpython(make_ns):
    ns = make_ns()
    with netns.inside(ns):
        with pytest.raises(OSError) as info:
            Packet("veth9")
    assert info.value.errno == 19  # ENODEV
    assert "no such interface 'veth9'" in str(info.value)


def test_packet_missing_interface_micropython(make_ns):
    ns = make_ns()
    proc = subprocess.run(["ip", "netns", "exec", ns.name, mp.micropython_cmd(),
                           "host_tests/packet_probe.py", "open", "veth9"],
                          cwd=mp.ROOT, env=_mp_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert proc.stdout.startswith("error 19 no such interface 'veth9'"), proc.stdout


def test_tun_missing_namespace_and_bad_name(make_ns):
    make_ns()  # root and ip netns present
    ghost = netns.unique_name("nonexistent")
    with pytest.raises(OSError) as info:
        Tun("t0", netns=ghost)
    assert info.value.errno == 2 and "no such network namespace %r" % ghost in str(info.value)
    with pytest.raises(OSError) as info:
        Tun("a-name-much-too-long", netns=ghost)
    assert info.value.errno == 2  # the namespace is looked up first
    ns = make_ns()
    with pytest.raises(OSError) as info:
        Tun("a-name-much-too-long", netns=ns.name)
    assert info.value.errno == 22 and "1..15 characters" in str(info.value)


# --- the namespace helpers themselves -------------------------------------------------------

def _my_netns():
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_inside_switches_this_thread_and_back(make_ns):
    ns = make_ns()
    home = _my_netns()
    with netns.inside(ns):
        assert _my_netns() != home
        with pytest.raises(ZeroDivisionError):
            with netns.inside(ns.name):  # nested, by name, left by an exception
                1 / 0
        assert _my_netns() != home
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert _my_netns() == home
    ns.track(srv)
    # The listener lives in the namespace: only its lo (up) reaches it.
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    with netns.inside(ns):
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ns.track(cli)
    cli.settimeout(WAIT_S)
    cli.connect(("127.0.0.1", port))
    conn, _ = srv.accept()
    ns.track(conn)
    assert netns.ss_states(ns, port) == ["ESTABLISHED", "ESTABLISHED"]
    assert netns.ss_states(ns, port, listening=True).count("LISTEN") == 1
    cli.shutdown(socket.SHUT_WR)  # client FIN: FIN-WAIT-2 against CLOSE-WAIT
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        states = sorted(netns.ss_states(ns, port))
        if states == ["CLOSE-WAIT", "FIN-WAIT-2"]:
            break
        time.sleep(0.05)
    assert states == ["CLOSE-WAIT", "FIN-WAIT-2"]
    cli.close()
    conn.close()  # server FIN after the client closed: client side to TIME-WAIT
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        states = netns.ss_states(ns, port)
        if states == ["TIME-WAIT"]:
            break
        time.sleep(0.05)
    assert states == ["TIME-WAIT"]
    assert netns.SS_STATES["SYN-RECV"] == "SYN-RECEIVED"


def test_run_in_processes_are_killed_at_close(make_ns):
    ns = make_ns()
    p = netns.run_in(ns, ["sleep", "60"])
    q = ns.run(["sh", "-c", "sleep 60 & sleep 60"])
    assert p.poll() is None and q.poll() is None
    out = ns.exec(["ip", "-o", "link", "show"]).stdout  # runs in the namespace: lo only
    assert out.count(": ") >= 1 and " lo:" in out and "eth" not in out
    ns.close()
    assert p.poll() is not None and q.poll() is not None
    assert ns.name not in netns.list_netns()


def test_veth_helper(make_ns):
    a, b = make_ns(), make_ns()
    va, vb = netns.veth(a, b, addr_a="10.201.3.1/24", addr_b="10.201.3.2/24", mtu=1400)
    assert len(va) <= 15 and len(vb) <= 15
    for ns, dev in ((a, va), (b, vb)):
        show = ns.ip("link", "show", "dev", dev)
        assert "mtu 1400" in show and "UP" in show
        assert ns.exec(["sysctl", "-n", "net.ipv6.conf.%s.disable_ipv6" % dev]).stdout.strip() \
            == "1"
        feats = netns.offloads(ns, dev)
        assert (feats["tx"], feats["tso"], feats["gso"], feats["gro"]) == (0, 0, 0, 0), feats
    assert not _root_has_link(va) and not _root_has_link(vb)
    ping = a.exec(["ping", "-c", "1", "-W", "2", "10.201.3.2"], timeout=10)
    assert ping.returncode == 0, ping.stdout + ping.stderr
