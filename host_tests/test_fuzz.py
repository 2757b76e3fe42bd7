# The batched fuzzer (fuzz.py) on a fixed list of seeds, on CPython, MicroPython unix and
# MicroPython WebAssembly; and checks that its invariant checker and PRNG do their job.
# MIT licence.
#
# A failure names its seed and the command that replays it with a log:
#   python host_tests/fuzz.py --runs 1 --seed S --ip --log   (add --minimise for a script)
# A long campaign: make fuzz N=100000, or python host_tests/fuzz.py --runs N --seed S.

import fuzz
from tcpscript import ACK, FIN, Peer, Seg

from stack import SHUT_WR, tcp

# Seeds 1-20 for volume, then seeds chosen because between them they reach every state in
# fuzz.STATES (orphans, backlog, CLOSING, TIME-WAIT, zero windows, ...) at least three
# times, so that one changed trajectory cannot leave a state untested. About 6,000
# segments: a few seconds on each interpreter (wasm's plain-loop checksum is the slowest).
SEEDS = tuple(range(1, 21)) + (73, 158, 227, 243, 269, 324, 352, 367)

_done = []  # the campaign's Summary, run once for both tests below

# LAN-services scenarios (fuzz.LanScenario: DHCP, DNS, mDNS, ARP conflicts, UDP sockets):
# seeds 1-8, then two chosen so that every state in fuzz.LAN_STATES and every counter in
# fuzz.LAN_COUNTERS is reached at least three times. About 2,400 frames: ~1 s on CPython,
# ~1.5 s on wasm. Replay one: python host_tests/fuzz.py --runs 1 --seed S --lan --log
LAN_SEEDS = tuple(range(1, 9)) + (57, 235)

_lan_done = []


def _campaign():
    if not _done:
        _done.append(fuzz.run_campaign(SEEDS))
    return _done[0]


def test_fuzz_seeds_keep_every_invariant():
    s = _campaign()
    assert not s.failures, "%d of %d runs failed:\n%s" % (
        len(s.failures), s.runs, "\n".join(fuzz.failure_text(*f) for f in s.failures))


def test_fuzz_seeds_reach_every_state():
    s = _campaign()
    missing = [name for name in fuzz.STATES if not s.states.get(name)]
    assert not missing, "the fuzz seeds no longer reach %r (pick seeds that do)" % missing


def _lan_campaign():
    if not _lan_done:
        _lan_done.append(fuzz.run_campaign(LAN_SEEDS, "lan"))
    return _lan_done[0]


def test_lan_seeds_keep_every_invariant():
    s = _lan_campaign()
    assert not s.failures, "%d of %d LAN runs failed:\n%s" % (
        len(s.failures), s.runs, "\n".join(fuzz.failure_text(*f) for f in s.failures))


def test_lan_seeds_reach_every_state_and_path():
    s = _lan_campaign()
    missing = [name for name in fuzz.LAN_STATES if not s.states.get(name)]
    missing += [name for name in fuzz.LAN_COUNTERS if not s.stats.get(name)]
    assert not missing, "the LAN fuzz seeds no longer reach %r (pick seeds that do)" % missing


def _recorded(sc):
    """Run sc; return what a replay must match. Only the events outlive this call: the
    run's stack is gone before the replay's is made (a board's heap holds one; sizing.py)."""
    try:
        sc.run()
    finally:
        sc.close()
    return sc.events, sc.segments, sc.polls, sc.net.stats.items()


def _replayed(sc, events):
    try:
        sc.replay(events)
    finally:
        sc.close()
    return sc.segments, sc.polls, sc.net.stats.items()


def test_lan_same_seed_same_run():
    events, segments, polls, stats = _recorded(fuzz.LanScenario(5))
    assert _replayed(fuzz.LanScenario(5), events) == (segments, polls, stats)


class TestLanChecksCatch:
    """The LAN checker is not vacuous: leaked ports and slots, a wrong address, a missed
    deadline and a frame from a wrong address are each reported."""

    def setup(self):
        self.sc = fuzz.LanScenario(1)
        self.sc.app("active", 1)
        self.sc.poll()
        self.net = self.sc.net

    def teardown(self):
        self.sc.close()

    def _kind(self, returned=-1):
        try:
            self.sc.check_services(returned)
        except fuzz.Failure as f:
            return f.kind
        return None

    def test_healthy(self):
        assert self._kind() is None

    def test_service_port_leaked(self):
        self.net.udp.bind_service(4000, lambda *a: None)
        assert self._kind() == "service ports leaked or missing"

    def test_udp_slot_leaked(self):
        from stack import AF_INET, SOCK_DGRAM

        s = self.net.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 4000))  # a socket the application does not know of
        assert self._kind() == "UDP slot held by a closed or foreign socket"

    def test_address_without_lease(self):
        self.net.set_address(b"\x0a\x00\x00\x09", 24)
        assert self._kind() == "address held without a lease (or a lease without the address)"

    def test_dhcp_deadline_slept_past(self):
        c = self.net.dhcp
        left = fuzz.port.ticks_diff(c.at, self.net.clock())
        assert self._kind(left + 1) == "poll() returned a time past a service deadline"

    def test_frame_from_a_foreign_address(self):
        p = fuzz.udp_packet(b"\x0a\x00\x00\x63", b"\x0a\x00\x00\x01", 9, 9, b"x")
        f = self.sc._ip_frame(fuzz.LAN_SERVER_MAC, fuzz.OUR_MAC, self.sc._finish_ip(p))
        try:
            self.sc._check_frame(f)
        except fuzz.Failure as e:
            assert e.kind == "sent from an address not ours", e.kind
        else:
            raise AssertionError("not caught")


def test_same_seed_same_run():
    # The stack's random source is seeded too: a seed is a replay.
    events, segments, polls, stats = _recorded(fuzz.Scenario(11))
    assert _replayed(fuzz.Scenario(11), events) == (segments, polls, stats)


def test_prng_same_on_every_interpreter():
    # The values CPython gives: a seed must mean the same run everywhere.
    r = fuzz.Rand(1)
    got = [r.next16() for _ in range(4)] + [r.below(1000), r.below(100000), r.u32()]
    assert got == [55677, 17356, 2350, 35365, 193, 15176, 179309254], got


class TestInvariantsCatch:
    """The checker is not vacuous: each kind of damage is reported."""

    def setup(self):
        self.p = Peer(rx_buf=1024, tx_buf=1024)
        self.inv = fuzz.Invariants(self.p.net)
        self.s = self.p.connect()
        self.s.send(b"x" * 100)
        self.p.received()
        self.tcb = self.s._tcb
        self.inv.check(False, -1, [self.s])

    def _kind(self, after_poll=False, returned=-1):
        try:
            self.inv.check(after_poll, returned, [self.s])
        except fuzz.Failure as f:
            return f.kind
        return None

    def _set(self, name, value):
        self.tcb.v[tcp_field(name)] = value

    def test_snd_nxt_below_snd_una(self):
        self._set("snd_nxt", 0)  # issue 10 item 1
        assert self._kind() == "SND.UNA <= SND.NXT <= SND.MAX"

    def test_ring_head_out_of_range(self):
        self._set("tx_head", 1024)
        assert self._kind() == "ring offsets"

    def test_out_of_order_range_beyond_free_space(self):
        v = self.tcb.v
        a = tcp_field("asm")
        v[a], v[a + 1], v[a + 2] = 1, 10, 2000
        assert self._kind() == "out-of-order ranges"

    def test_frame_buffer_shrunk(self):
        net = self.p.net
        net.txbuf = bytearray(len(net.txbuf) - 23)  # what MicroPython did in item 1
        assert self._kind() == "frame buffer changed size"

    def test_data_queued_no_timer(self):
        self._set("rexmit_at", tcp.OFF)  # issue 10 item 3
        assert self._kind() == "data or FIN waiting with no timer"

    def test_ack_left_pending_after_poll(self):
        self._set("ack_now", True)  # issue 10 item 7
        assert self._kind(after_poll=True, returned=0) == "ACK requested but not sent by poll()"

    def test_cwnd_unbounded(self):
        self._set("cwnd", 146000000)  # issue 10 item 9
        assert self._kind() == "cwnd out of bounds"

    def test_current_established_count(self):
        self.p.net.stats.tcpCurrEstab += 1
        assert self._kind() == "tcpCurrEstab"

    def test_poll_sleeps_past_a_deadline(self):
        assert self._kind(after_poll=True, returned=None) == (
            "poll() returned None with a timer pending")

    def test_free_tcb_with_leftovers(self):
        other = self.p.net.tcbs[1]
        other.v[tcp_field("snd_una")] = 5
        assert self._kind() == "free TCB has leftover state"

    def test_socket_holding_a_free_tcb(self):
        net = self.p.net
        net.free_tcb(self.tcb)  # (and the count free_tcb() would not fix)
        net.stats.tcpCurrEstab -= 1
        assert self._kind() == "socket holds a free TCB"

    def test_orphan_fin_wait_2_without_timeout(self):
        self.s.shutdown(SHUT_WR)
        self.p.send(Seg(ACK, 1, 102))
        assert self.s.state == "FIN-WAIT-2"
        self.s._tcb = None  # let go without close(): an orphan nobody set a deadline for
        self.s._closed = True
        self.tcb.v[tcp_field("orphan")] = True
        for name in ("fin2_at", "rexmit_at", "persist_at", "ack_at"):
            self._set(name, tcp.OFF)
        assert self._kind() == "orphan in FIN-WAIT-2 with no timeout"

    def test_healthy_close_passes(self):
        self.s.close()
        self.p.send(Seg(ACK, 1, 102))
        self.p.send(Seg(FIN | ACK, 1, 102))
        assert self._kind() is None
        assert self.p.net.tw.used == 1


def tcp_field(name):
    return fuzz.tcp.FIELDS.index(name)

