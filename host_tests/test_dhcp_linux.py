# DHCP against dnsmasq: our stack (ip=None) gets a lease over AF_PACKET on a veth pair,
# dnsmasq's lease file shows our MAC and host name, the lease is renewed at a short T1
# (dnsmasq's --dhcp-option 58/59), and released. MIT licence. CPython pytest; the stack side
# is this file run as a script (CPython or the MicroPython unix port) in another namespace:
#
#   test_dhcp_linux.py packet:IFACE HOSTNAME     prints READY, then one reply per line:
#     up                  -> "ok"                  (net.active(True): DHCP starts)
#     wait_bound SECONDS  -> "ok IP MASK GW DNS"   (net.poll() until isconnected())
#     wait_renewals N S   -> "ok N"                (until dhcpRenewals >= N)
#     release             -> "ok"                  (ipconfig(dhcp4=False): RELEASE)
#     mac                 -> "ok aa:bb:..."        (config('mac'))
#     stats               -> "ok k=v ..."          (the dhcp* counters)
#     quit (or EOF)

import sys

LINUX_IP = "10.9.6.1"
HOSTNAME = "board7"
T1_S = 4
T2_S = 7


def _run(net, seconds, done):
    from stack import port

    start = net.clock()
    while not done():
        left = seconds * 1000 - port.ticks_diff(net.clock(), start)
        if left <= 0:
            return False
        ms = net.poll()
        if ms is None or ms > 50:
            ms = 50
        net.wait(min(ms, left))
    return True


def serve(argv):
    """The stack's side: a Stack with no address on the link, commands from stdin."""
    from stack import Stack
    from stack.stats import NAMES
    from tools.links import make_link

    link = make_link(argv[0])
    net = Stack(link, ip=None, hostname=argv[1])
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        line = sys.stdin.readline()
        words = line.split()
        if not words or words[0] == "quit":
            return
        out = "ok"
        if words[0] == "up":
            net.active(True)
        elif words[0] == "wait_bound":
            if _run(net, int(words[1]), net.isconnected):
                out = "ok " + " ".join(net.ifconfig())
            else:
                out = "err timeout"
        elif words[0] == "wait_renewals":
            n = int(words[1])
            if _run(net, int(words[2]), lambda: net.stats.dhcpRenewals >= n):
                out = "ok %d %s" % (net.stats.dhcpRenewals, net.ipconfig("addr4")[0])
            else:
                out = "err timeout"
        elif words[0] == "release":
            net.ipconfig(dhcp4=False)
            _run(net, 1, lambda: False)  # let the frame go
        elif words[0] == "mac":
            out = "ok " + ":".join("%02x" % b for b in net.config("mac"))
        elif words[0] == "stats":
            out = "ok " + " ".join("%s=%d" % (k, getattr(net.stats, k)) for k in NAMES
                                   if k.startswith("dhcp"))
        else:
            out = "err unknown command"
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1:])
else:
    import os
    import subprocess
    import tempfile
    import time

    import mp
    import netns
    import pytest
    from linux import Agent

    def _dnsmasq(linux, iface, leases):
        argv = [netns.require_tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--port=0", "--user=root", "--pid-file=",
                "--interface=" + iface, "--bind-interfaces",
                "--dhcp-range=10.9.6.50,10.9.6.60,255.255.255.0,2m",
                "--dhcp-option=option:router," + LINUX_IP,
                "--dhcp-option=option:dns-server," + LINUX_IP,
                "--dhcp-option=58,%d" % T1_S, "--dhcp-option=59,%d" % T2_S,
                "--dhcp-leasefile=" + leases, "--log-dhcp", "--log-facility=-"]
        return netns.run_in(linux, argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def _leases(path):
        # dnsmasq's lease file: "EXPIRY MAC IP HOSTNAME CLIENT-ID" a line.
        try:
            with open(path) as f:
                return [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def _wait(fn, seconds=5):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            v = fn()
            if v:
                return v
            time.sleep(0.05)
        return fn()

    @pytest.fixture(params=["cpython", "micropython", "w5500-cpython"])
    def lan(request):
        netns.require_root()
        netns.require_tool("dnsmasq")
        linux = netns.Netns().open()
        ours = netns.Netns().open()
        agent = None
        tmp = tempfile.mkdtemp(prefix="dhcp-")
        leases = os.path.join(tmp, "leases")
        try:
            va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
            _dnsmasq(linux, va, leases)
            time.sleep(0.3)  # dnsmasq binds port 67
            interp = ([mp.micropython_cmd()] if request.param == "micropython"
                      else [sys.executable, "-u"])
            # The W5500 driver on the chip's emulator, bridged to the veth: a board's path.
            link = ("w5500emu:" if request.param.startswith("w5500") else "packet:") + vb
            argv = interp + [str(mp.HOST_TESTS / "test_dhcp_linux.py"), link, HOSTNAME]
            agent = Agent(argv, ns=ours)
            yield agent, leases
        finally:
            if agent is not None:
                agent.close()
            ours.close()
            linux.close()

    def test_lease_from_dnsmasq_renewed_and_released(lan):
        agent, leases = lan
        mac = agent.cmd("mac").split()[1]
        agent.cmd("up")
        reply = agent.cmd("wait_bound 30")
        ok, ip, mask, gw, dns = reply.split()
        last = int(ip.split(".")[3])
        assert ip.startswith("10.9.6.") and 50 <= last <= 60, reply
        assert (mask, gw, dns) == ("255.255.255.0", LINUX_IP, LINUX_IP), reply
        # dnsmasq's lease file: our MAC, the address, our host name, our client id.
        rows = _wait(lambda: [r for r in _leases(leases) if r[1] == mac])
        assert rows, _leases(leases)
        (row,) = rows
        assert row[2] == ip and row[3] == HOSTNAME, row
        assert row[4] == "01:" + mac, row
        expiry = int(row[0])
        s = agent.stats()
        assert s["dhcpLeases"] == 1 and s["dhcpOutDiscovers"] >= 1, s
        assert s["dhcpInErrors"] == 0 and s["dhcpOutDeclines"] == 0, s
        # T1 = 4 s: RENEWING, a unicast REQUEST, dnsmasq's ACK extends the lease.
        time.sleep(1.1)  # so the new expiry (whole seconds) is later
        reply = agent.cmd("wait_renewals 1 %d" % (T1_S + 10))
        assert reply.split()[2] == ip, reply
        rows = _wait(lambda: [r for r in _leases(leases)
                              if r[1] == mac and int(r[0]) > expiry])
        assert rows, _leases(leases)
        reply = agent.cmd("wait_renewals 2 %d" % (T1_S + 10))
        s = agent.stats()
        assert s["dhcpRenewals"] >= 2 and s["dhcpLeaseExpiries"] == 0, s
        assert s["dhcpInNaks"] == 0 and s["dhcpOutDeclines"] == 0, s
        # RELEASE: dnsmasq forgets the lease.
        agent.cmd("release")
        assert _wait(lambda: not [r for r in _leases(leases) if r[1] == mac]), \
            _leases(leases)
