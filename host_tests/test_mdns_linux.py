# mDNS against Linux: dig's legacy unicast query (RFC 6762 6.7) from a Linux namespace gets
# our address; so do multicast (QM) and unicast-response (QU) queries from Linux sockets.
# MIT licence. CPython pytest; the stack side is this file run as a script (CPython or the
# MicroPython unix port) in another namespace, on AF_PACKET over a veth pair:
#
#   test_mdns_linux.py packet:IFACE IP HOSTNAME     prints READY, answers mDNS until "quit"
#                                                   or EOF on stdin ("stats" -> ok k=v ...)

import sys

LINUX_IP = "10.9.0.1"
OUR_IP = "10.9.0.2"
HOSTNAME = "Board7"


def serve(argv):
    """The stack's side: a Stack on the link with the mDNS responder started."""
    try:
        import select
    except ImportError:  # pragma: no cover
        import uselect as select
    from stack import Stack, mdns
    from tools.links import make_link

    link = make_link(argv[0])
    net = Stack(link, ip=argv[1], prefix=24, hostname=argv[2])
    mdns.start(net)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    p.register(link.fileno(), select.POLLIN)
    while True:
        due = net.poll()
        for obj, _ in p.poll(100 if due is None else min(due, 100)):
            if obj is sys.stdin or obj == sys.stdin.fileno():
                line = sys.stdin.readline()
                if not line or line.strip() == "quit":
                    return
                if line.strip() == "stats":
                    from stack.stats import NAMES

                    sys.stdout.write("ok " + " ".join(
                        "%s=%d" % (k, getattr(net.stats, k)) for k in NAMES
                        if k.startswith("mdns")) + "\n")
                    sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1:])
else:
    import socket
    import struct
    import subprocess
    import time

    import mp
    import netns
    import pytest
    from linux import Agent

    @pytest.fixture(params=["cpython", "micropython"])
    def stack_side(request):
        netns.require_root()
        netns.require_tool("dig")
        linux = netns.Netns().open()
        ours = netns.Netns().open()
        agent = None
        try:
            va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
            # Linux needs a route for multicast to leave by the veth.
            linux.ip("route", "add", "224.0.0.0/4", "dev", va)
            interp = ([mp.micropython_cmd()] if request.param == "micropython"
                      else [sys.executable, "-u"])
            argv = interp + [str(mp.HOST_TESTS / "test_mdns_linux.py"), "packet:" + vb,
                             OUR_IP, HOSTNAME]
            agent = Agent(argv, ns=ours)
            yield linux, agent
        finally:
            if agent is not None:
                agent.close()
            ours.close()
            linux.close()

    def dig(linux, *args):
        out = subprocess.run(["ip", "netns", "exec", linux.name, "dig", "-p", "5353",
                              "+time=2", "+tries=3"] + list(args),
                             capture_output=True, text=True, timeout=30)
        return out.stdout + out.stderr

    def answer_lines(out):
        """dig's answer section as [name (lower case), ttl, class, type, data] lists."""
        rows = [x.split() for x in out.splitlines() if x and not x.startswith(";")]
        return [[r[0].lower()] + r[1:] for r in rows if len(r) == 5]

    def linux_socket(linux, port=0, group=False):
        with netns.inside(linux):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", port))
        if group:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         socket.inet_aton("224.0.0.251") + socket.inet_aton(LINUX_IP))
        s.settimeout(5)
        return s

    def query(name=b"\x06board7\x05local\x00", ident=0, qclass=1, edns=False):
        # What dig sends (RD set, an EDNS OPT record in the additional section).
        opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if edns else b""
        return (struct.pack(">HHHHHH", ident, 0x0120 if edns else 0, 1, 0, 0, 1 if edns else 0)
                + name + struct.pack(">HH", 1, qclass) + opt)

    def a_record(msg):
        """(ID, TTL, class, address) of the one A record answering in msg."""
        ident, flags, qd, an = struct.unpack(">HHHH", msg[:8])
        assert flags & 0x8400 == 0x8400 and an == 1, msg
        p = 12
        for _ in range(qd):  # our question echo: our name, then type and class
            p = msg.index(b"\x00", p) + 5
        p = p + 2 if msg[p] >= 0xC0 else msg.index(b"\x00", p) + 1
        rtype, rclass, ttl, rdlen = struct.unpack(">HHIH", msg[p:p + 10])
        assert rtype == 1 and rdlen == 4, msg
        return ident, ttl, rclass, socket.inet_ntoa(msg[p + 10:p + 14])

    def test_dig_gets_our_address(stack_side):
        """dig's legacy unicast query (RFC 6762 6.7), sent straight to our address."""
        linux, agent = stack_side
        out = dig(linux, "@" + OUR_IP, "board7.local", "A")
        assert "status: NOERROR" in out, out
        assert ["board7.local.", "10", "IN", "A", OUR_IP] in answer_lines(out), out
        out = dig(linux, "@" + OUR_IP, "BOARD7.LOCAL", "A")
        assert ["board7.local.", "10", "IN", "A", OUR_IP] in answer_lines(out), out
        out = dig(linux, "+time=1", "+tries=1", "@" + OUR_IP, "nobody.local", "A")
        assert answer_lines(out) == [], out
        stats = agent.stats()
        assert stats["mdnsInQueries"] == 2 and stats["mdnsInErrors"] == 0, stats

    def test_dig_to_multicast_group_is_answered(stack_side):
        """`dig -p 5353 @224.0.0.251 board7.local`: we answer from 10.9.0.2 (6.7). dig 9.18+
        connects its socket to 224.0.0.251, so Linux drops that reply (port unreachable);
        older digs print it. Here: dig's query is answered, and the same query from an
        unconnected Linux socket gets our address."""
        linux, agent = stack_side
        dig(linux, "+time=1", "+tries=1", "@224.0.0.251", "board7.local", "A")
        stats = agent.stats()
        assert stats["mdnsInQueries"] == 1 and stats["mdnsOutResponses"] == 3, stats
        s = linux_socket(linux)
        try:
            s.sendto(query(ident=0x4242, edns=True), ("224.0.0.251", 5353))
            msg, src = s.recvfrom(1500)
        finally:
            s.close()
        assert src == (OUR_IP, 5353), src
        assert a_record(msg) == (0x4242, 10, 1, OUR_IP)

    def test_multicast_and_unicast_response_queries(stack_side):
        """A QM query from port 5353 is answered to the group, a QU query to the asker."""
        linux, agent = stack_side
        s = linux_socket(linux, 5353, group=True)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        try:
            time.sleep(2.5)  # past the announcements (and the 1 s multicast limit)
            while True:
                try:
                    s.settimeout(0.2)
                    s.recvfrom(1500)  # announcements, if they came after the join
                except socket.timeout:
                    break
            s.settimeout(5)
            s.sendto(query(), ("224.0.0.251", 5353))
            while True:
                msg, src = s.recvfrom(1500)
                if src[0] == OUR_IP:
                    break
            assert a_record(msg) == (0, 120, 0x8001, OUR_IP)
            s.sendto(query(qclass=0x8001), ("224.0.0.251", 5353))
            while True:
                msg, src = s.recvfrom(1500)
                if src[0] == OUR_IP:
                    break
            assert a_record(msg) == (0, 120, 0x8001, OUR_IP)
        finally:
            s.close()
        stats = agent.stats()
        assert stats["mdnsInQueries"] == 2 and stats["mdnsOutResponses"] == 4, stats
