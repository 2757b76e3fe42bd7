# DNS against dnsmasq: names from its --address/--host-record/--cname config resolved by our
# stack, unknown names refused, and a TCP connection made by name to a Python HTTP server.
# MIT licence. CPython pytest; the stack side is this file run as a script (CPython or the
# MicroPython unix port) in another namespace, on AF_PACKET over a veth pair, with a static
# address (DHCP is tested elsewhere):
#
#   test_dns_linux.py packet:IFACE IP DNS_SERVER...   prints READY, then one reply per line:
#     resolve NAME      -> "ok IP" or "err ERRNO"   (net.getaddrinfo, blocking)
#     get NAME PORT     -> "ok <status line>"        (HTTP/1.0 GET / over TCP, by name)
#     stats             -> "ok k=v ..."              (the dns* counters)
#     quit (or EOF)

import sys

LINUX_IP = "10.9.5.1"
OUR_IP = "10.9.5.2"
DEAD_IP = "10.9.5.9"  # a configured server that never answers (nobody has the address)
HTTP_PORT = 8080


def serve(argv):
    """The stack's side: a Stack on the link, DNS servers set, commands from stdin."""
    from stack import Stack, ipv4
    from stack.stats import NAMES
    from tools.links import make_link

    link = make_link(argv[0])
    net = Stack(link, ip=argv[1], prefix=24)
    net.dns_servers = [ipv4.aton(a) for a in argv[2:]]
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        net.poll()  # answer ARP while we wait for a command (stdin blocks: Linux retries)
        line = sys.stdin.readline()
        words = line.split()
        if not words or words[0] == "quit":
            return
        try:
            if words[0] == "resolve":
                out = "ok " + net.getaddrinfo(words[1], 80)[0][-1][0]
            elif words[0] == "get":
                ai = net.getaddrinfo(words[1], int(words[2]))[0]
                s = net.socket()
                s.settimeout(10)
                s.connect(ai[-1])
                s.send(b"GET / HTTP/1.0\r\nHost: " + words[1].encode() + b"\r\n\r\n")
                got = b""
                while b"\r\n" not in got:
                    chunk = s.recv(200)
                    if not chunk:
                        break
                    got += chunk
                s.close()
                out = "ok " + got.split(b"\r\n")[0].decode()
            elif words[0] == "stats":
                out = "ok " + " ".join("%s=%d" % (k, getattr(net.stats, k)) for k in NAMES
                                       if k.startswith("dns"))
            else:
                out = "err unknown command"
        except OSError as e:
            out = "err %d" % e.args[0]
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1:])
else:
    import subprocess

    import mp
    import netns
    import pytest
    from linux import Agent

    DNSMASQ_NAMES = [
        "--address=/fixed.test/10.9.5.77",
        "--host-record=web.test,%s" % LINUX_IP,
        "--host-record=Mixed.Case.test,10.9.5.78",
        "--cname=alias.test,web.test",
        "--cname=alias2.test,alias.test",  # a chain: alias2 -> alias -> web
        "--local-ttl=60",  # dnsmasq answers its own names with TTL 0 otherwise
        "--local=/test/",  # other names under test/ are NXDOMAIN; outside it, REFUSED
    ]

    def _dnsmasq(linux):
        argv = [netns.require_tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", "--bind-interfaces",
                "--listen-address=" + LINUX_IP, "--port=53", "--user=root",
                "--pid-file=", "--log-queries", "--log-facility=-"] + DNSMASQ_NAMES
        return netns.run_in(linux, argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    @pytest.fixture(params=["cpython", "micropython"])
    def stack_side(request):
        netns.require_root()
        netns.require_tool("dnsmasq")
        linux = netns.Netns().open()
        ours = netns.Netns().open()
        agent = None
        try:
            va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
            _dnsmasq(linux)
            netns.run_in(linux, [sys.executable, "-m", "http.server", str(HTTP_PORT),
                                 "--bind", LINUX_IP], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
            linux.wait_listening(53, "udp")
            linux.wait_listening(HTTP_PORT, "tcp")
            interp = ([mp.micropython_cmd()] if request.param == "micropython"
                      else [sys.executable, "-u"])
            argv = interp + [str(mp.HOST_TESTS / "test_dns_linux.py"), "packet:" + vb,
                             OUR_IP, LINUX_IP]
            agent = Agent(argv, ns=ours)
            yield agent
        finally:
            if agent is not None:
                agent.close()
            ours.close()
            linux.close()

    def test_names_from_dnsmasq_resolve(stack_side):
        agent = stack_side
        assert agent.cmd("resolve fixed.test") == "ok 10.9.5.77"
        assert agent.cmd("resolve web.test") == "ok " + LINUX_IP
        assert agent.cmd("resolve MIXED.case.TEST.") == "ok 10.9.5.78"
        assert agent.cmd("resolve alias.test") == "ok " + LINUX_IP  # CNAME
        assert agent.cmd("resolve alias2.test") == "ok " + LINUX_IP  # CNAME chain
        stats = agent.stats()
        assert stats["dnsOutQueries"] == 5 and stats["dnsInReplies"] == 5, stats
        assert stats["dnsInMalformed"] == 0 and stats["dnsInUnmatched"] == 0, stats
        # asked again: from the cache, no query
        assert agent.cmd("resolve web.test") == "ok " + LINUX_IP
        stats = agent.stats()
        assert stats["dnsOutQueries"] == 5 and stats["dnsCacheHits"] == 1, stats
        # a dotted quad needs no DNS
        assert agent.cmd("resolve 10.1.2.3") == "ok 10.1.2.3"
        assert agent.stats()["dnsOutQueries"] == 5

    def test_unknown_names_refused(stack_side):
        agent = stack_side
        assert agent.cmd("resolve nope.test", ok=False) == "err -2"  # NXDOMAIN
        assert agent.cmd("resolve nope.example", ok=False) == "err -2"  # REFUSED
        assert agent.cmd("resolve bad..name", ok=False) == "err -2"  # never sent
        stats = agent.stats()
        # NXDOMAIN ends a lookup; REFUSED moves on to the next server, and with one server
        # configured that is the same one again in the second round
        assert stats["dnsNameErrors"] == 1 and stats["dnsServerErrors"] == 2, stats
        assert stats["dnsOutQueries"] == 3 and stats["dnsTimeouts"] == 0, stats

    def test_tcp_connection_by_name(stack_side):
        agent = stack_side
        reply = agent.cmd("get alias2.test %d" % HTTP_PORT)
        assert reply.startswith("ok HTTP/1.0 200"), reply

    def test_silent_server_then_dnsmasq(request):
        """The first configured server never answers: after 1 s the second one does."""
        netns.require_root()
        netns.require_tool("dnsmasq")
        linux = netns.Netns().open()
        ours = netns.Netns().open()
        agent = None
        try:
            va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
            _dnsmasq(linux)
            linux.wait_listening(53, "udp")
            argv = [sys.executable, "-u", str(mp.HOST_TESTS / "test_dns_linux.py"),
                    "packet:" + vb, OUR_IP, DEAD_IP, LINUX_IP]
            agent = Agent(argv, ns=ours)
            import time

            t0 = time.monotonic()
            assert agent.cmd("resolve web.test") == "ok " + LINUX_IP
            took = time.monotonic() - t0
            assert 0.9 < took < 3, took
            stats = agent.stats()
            assert stats["dnsTimeouts"] == 1 and stats["dnsOutQueries"] == 2, stats
        finally:
            if agent is not None:
                agent.close()
            ours.close()
            linux.close()
