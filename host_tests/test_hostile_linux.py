# A hostile LAN against Linux, in namespaces the tests create and remove (issue 10):
# - a steady SYN flood from spoofed sources does not lock a legitimate client (curl) out
#   of a small board's listener (4 TCBs), on TUN and on AF_PACKET;
# - spoofed pings and ARP (sources from all over the subnet, claims of the peer's address)
#   while a bulk transfer runs keep at least 80 % of its rate, measured against the same
#   transfer without the flood in the same test, and the data arrives intact.
# The flood comes from host_tests/flood.py, run inside the Linux namespace, so spoofed
# packets only ever reach our stack's link. CPython drives; see linux.py for the setups.
# MIT licence.

import json
import subprocess
import sys
import time

import pytest
from linux import LINUX_IP, OUR_IP, Setup, linux_xfer, pattern_sha

import mp
import netns

FLOOD = str(mp.HOST_TESTS / "flood.py")
SUBNET = "10.9.0.0/24"

SYN_RATE = 100  # spoofed SYNs per second
FETCHES = 24  # curl fetches spread over the flood, each allowed 1 s
FETCH_GAP_S = 0.15
TCBS = 4  # a small board: without a defence, 4 spoofed SYNs fill the pool

PING_RATE = 160  # spoofed echo requests per second, from SOURCES on-link hosts
ARP_RATE = 60  # spoofed ARP per second (see flood.py: requests, claims of the peer's IP)
SOURCES = 60
XFER = 16 << 20  # bytes each way per transfer
ROUNDS = 5  # clean and flooded transfers, alternating; the best of each counts (five: a
# busy machine slows single transfers by a third)


def _linux_dev(s):
    """The Linux side's interface (TUN or veth) in namespace L: the one holding LINUX_IP."""
    for link in json.loads(s.linux.ip("-j", "-4", "addr", "show")):
        if any(a.get("local") == LINUX_IP for a in link.get("addr_info", [])):
            return link["ifname"]
    raise AssertionError("no interface with %s in %s" % (LINUX_IP, s.linux))


def _our_mac(s):
    """Our stack's MAC as Linux learnt it (after some traffic): "02:..."."""
    for entry in json.loads(s.linux.ip("-j", "neigh", "show", OUR_IP)):
        if entry.get("lladdr"):
            return entry["lladdr"]
    raise AssertionError("Linux has no neighbour entry for " + OUR_IP)


def _start_flood(s, mode, *args):
    """flood.py in namespace L, on the Linux side's device; stops when its stdin closes."""
    dev = _linux_dev(s)
    link = ["--raw"] if s.kind.startswith("tun") else ["--packet", dev, "--mac", _our_mac(s)]
    argv = [sys.executable, FLOOD, mode, "--to", OUR_IP, "--onlink", SUBNET,
            "--exclude", LINUX_IP] + link + [str(a) for a in args]
    return s.linux.run(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)


def _stop_flood(proc):
    """Close the flooder's stdin; its summary as {"syn": N} or {"ping": N, "arp": N}."""
    out, err = proc.communicate(timeout=10)  # closes stdin first
    assert proc.returncode == 0 and out.startswith("sent "), (proc.returncode, out, err)
    return dict((k, int(v)) for k, v in (kv.split("=") for kv in out.split()[1:]))


def _curl(s, max_time_s):
    """One fetch of our page; (ok, seconds, what went wrong)."""
    start = time.monotonic()
    out = s.linux.exec(["curl", "-sS", "--http0.9", "--max-time", str(max_time_s),
                        "http://%s/" % OUR_IP], timeout=max_time_s + 10)
    took = time.monotonic() - start
    if out.returncode != 0:
        return False, took, out.stderr.strip()
    if out.stdout != "r" * 100:
        return False, took, "wrong page %r" % out.stdout[:40]
    return True, took, ""


@pytest.mark.parametrize("kind", ["tun-cpython", "packet-cpython", "packet-micropython"])
def test_syn_flood_every_fetch_within_1s(kind):
    """100 spoofed SYNs/s (on-link and off-link sources, random ports, no handshake ever
    completed) at a 4-TCB listener while curl fetches a page 24 times: every fetch succeeds
    within 1 s (curl --max-time 1: one lost SYN alone would take longer, Linux resends it
    after 1 s), and the stack says it recycled embryonic connections to make room."""
    netns.require_tool("curl")
    s = Setup(kind, agent_args=["--tcbs", str(TCBS)])
    try:
        # Time enough for the whole run even if every fetch took its full second: the bound
        # of the agent's serve and of the flood (which is stopped when the fetches end).
        budget_s = 6 + FETCHES * (1.3 + FETCH_GAP_S)
        s.agent.cmd("listen 80 4")  # aio.start_server's default backlog
        s.agent.proc.stdin.write("serve %d 100 %d\n" % (FETCHES + 1, budget_s * 1000))
        s.agent.proc.stdin.flush()
        ok, took, why = _curl(s, 5)  # before the flood: the page is there (and ARP done)
        assert ok, why
        flood = _start_flood(s, "syn", "--port", 80, "--rate", SYN_RATE, "--seconds", budget_s)
        start = time.monotonic()
        time.sleep(0.5)  # 50 SYNs: without a defence the pool is long full
        fetches = []
        for _ in range(FETCHES):
            fetches.append(_curl(s, 1))
            time.sleep(FETCH_GAP_S)
        sent = _stop_flood(flood)
        flood_s = time.monotonic() - start
        served = s.agent._line(budget_s + 5)
        st = s.agent.stats()
        failed = [(i, round(t, 2), why) for i, (ok, t, why) in enumerate(fetches) if not ok]
        assert sent["syn"] >= 0.8 * SYN_RATE * flood_s, "the flood fell behind: %r in %.1f s" % (
            sent, flood_s)
        keys = ("tcpPassiveOpens", "tcpSynFloodRecycled", "tcpListenDrops", "tcpTcbExhausted",
                "arpRefused", "arpQueueDrops", "arpUnresolved")
        counters = dict((k, st[k]) for k in keys)
        assert not failed, "%d of %d fetches failed under %d spoofed SYNs: %s; %s" % (
            len(failed), FETCHES, sent["syn"], failed[:3], counters)
        assert served == "ok %d" % (FETCHES + 1), served
        assert st["tcpSynFloodRecycled"] > 0, counters
    finally:
        s.close()


def _timed_xfer(s, lin, timeout_s):
    """XFER bytes each way at once (the agent's xfer, linux_xfer here), SHA-256 checked
    both ways. (seconds, None), or (None, what the agent said) if it did not finish within
    timeout_s."""
    start = time.monotonic()
    s.agent.proc.stdin.write("xfer %d %d\n" % (XFER, timeout_s * 1000))
    s.agent.proc.stdin.flush()
    try:
        got = linux_xfer(lin, XFER, timeout=timeout_s)
    except (AssertionError, OSError) as e:
        # The agent gives up too, then takes commands again.
        return None, "%s; Linux: %s" % (s.agent._line(timeout_s + 10), e)
    took = time.monotonic() - start
    reply = s.agent._line(timeout_s + 10)
    assert reply == "ok " + pattern_sha(XFER), reply  # what we received is intact
    assert got == pattern_sha(XFER)  # what Linux received is intact
    return took, None


def test_arp_and_ping_flood_keeps_80_percent_of_the_rate():
    """16 MiB each way over AF_PACKET, alternately clean and under 160 spoofed pings/s from
    60 on-link hosts plus 60 spoofed ARP/s (requests from those hosts and from the subnet's
    broadcast address, claims that the peer is at another MAC, at ff:ff:ff:ff:ff:ff, at a
    multicast MAC): the best flooded rate is at least 80 % of the best clean one (both
    measured here, on this machine, in this run), and every byte arrives intact."""
    s = Setup("packet-cpython")
    lin = None
    try:
        s.agent.cmd("listen 80")
        lin = s.connect(80)
        s.agent.cmd("accept")
        clean, flooded = [], []
        for _ in range(ROUNDS):
            took, why = _timed_xfer(s, lin, 30)
            assert took is not None, "clean transfer did not finish in 30 s: " + why
            clean.append(took)
            flood = _start_flood(s, "arp-ping", "--peer", LINUX_IP, "--ping-rate", PING_RATE,
                                 "--arp-rate", ARP_RATE, "--sources", SOURCES,
                                 "--seconds", 60)
            time.sleep(0.5)  # 80 pings, 30 ARP: the cache is what the flood made it
            limit = max(2.0, 4 * min(clean))
            took, why = _timed_xfer(s, lin, limit)
            sent = _stop_flood(flood)
            st = s.agent.stats()
            counters = dict((k, st[k]) for k in ("icmpInEchos", "arpInRequests",
                                                 "arpInReplies", "arpRefused",
                                                 "arpQueueDrops", "arpUnresolved",
                                                 "tcpRetransSegs"))
            assert took is not None, (
                "under the flood (%r) %d MiB each way did not finish in %.1f s, under %.0f%% "
                "of the clean rate (clean: %.2f s); agent: %s; %s" % (
                    sent, XFER >> 20, limit, 100 * min(clean) / limit, min(clean), why,
                    counters))
            flooded.append(took)
            assert sent["ping"] >= 0.8 * PING_RATE * (0.5 + took), "the flood fell behind: " \
                "%r in %.1f s" % (sent, 0.5 + took)
        ratio = min(clean) / min(flooded)
        times = "clean %s s, flooded %s s" % ([round(t, 2) for t in clean],
                                              [round(t, 2) for t in flooded])
        print("%s: %.0f%%; %s" % (times, 100 * ratio, counters))  # shown with pytest -s
        assert ratio >= 0.8, "flooded rate %.0f%% of clean (%s); %s" % (100 * ratio, times,
                                                                       counters)
        assert st["arpRefused"] > 0, counters
    finally:
        if lin is not None:
            lin.close()
        s.close()
