# tools/mcu_bench.py must keep working: instruction counts on the emulated Cortex-M0.
# CPython only (pytest). MIT licence.
#
# One short run of each mode (a few segments; the m0-board firmware that test_mcu.py builds
# too, cached): every figure is there and positive, the per-function table has both sides.
# Not a timing test: no figure is compared with a budget (that is `make bench`'s table).
#
# Needs qemu-system-arm, gcc-arm-none-eabi and the pinned MicroPython source, as
# test_mcu.py: a clone without ../shared skips this module in one line; with
# STACK_REQUIRE_ALL=1 (CI) the skip fails instead (conftest.py).
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
import mcu  # noqa: E402
import mcu_bench  # noqa: E402

_problem = mcu.prerequisites()
if _problem:
    pytest.skip("emulated Cortex-M0 instruction counts: " + _problem, allow_module_level=True)


@pytest.fixture(scope="module")
def fw():
    try:
        return mcu.build(mcu_bench.VARIANT, quiet=True)
    except mcu.MCUError as e:
        pytest.fail(str(e), pytrace=False)


def test_measure_gives_every_figure(fw):
    res = mcu_bench.measure(iters=20, fw=fw)
    for key in mcu_bench.BENCH_KEYS + ("idle4_client", "empty_section"):
        assert res.get(key, 0) > 0, (key, res)
    # The pipe's own part comes off the stack-only figures, so they are the smaller.
    assert res["seg_in"] < res["seg_in_pipe"] and res["seg_out"] < res["seg_out_pipe"], res
    assert 0 < res["acks_per_seg"] <= 1.5, res
    assert res["conn_frames"] >= 7, res  # SYN, SYN-ACK, ACK, FIN, ACK, FIN, ACK at least
    text = mcu_bench.report(res)
    assert "1460-byte segment in" in text and "<= 100000" in text


def test_profile_breaks_down_both_sides(fw):
    p = mcu_bench.profile(iters=8, fw=fw)  # calibration only (no totals given)
    assert p["wrapped"] > 50, p["wrapped"]
    for side in ("in", "out"):
        rows = p[side]
        names = [r[0] for r in rows]
        assert len(rows) >= 10, names
        assert any(n.startswith("iface.") for n in names), names
        assert any(n.startswith("tcp.") for n in names), names
        assert all(r[1] >= 0 for r in rows), rows
        assert rows[0][2] > 0  # sorted by self cost, the top one costs something
        assert p[side + "_total"] > 0
    text = mcu_bench.profile_report(p)
    assert "one 1460-byte segment in" in text and "one 1460-byte segment out" in text


def test_profile_of_a_connection(fw):
    p = mcu_bench.profile(iters=2, fw=fw, scenario="conn")
    names = [r[0] for r in p["conn"]]
    assert any(n.startswith("sock.") for n in names), names
    assert any(n.startswith("timewait.") for n in names), names  # the client's TIME-WAIT
    assert p["conn_total"] > 0
    assert "one connection opened and closed" in mcu_bench.profile_report(p)


def test_lan9118_driver_on_the_m3():
    # The LAN9118 is emulated on the mps2-an385 (Cortex-M3) only: frames loop back through
    # a UDP socket QEMU both sends to and listens on.
    try:
        fw = mcu.build(mcu_bench.LINK_VARIANT, quiet=True)
    except mcu.MCUError as e:
        pytest.fail(str(e), pytrace=False)
    lan = mcu_bench.lan9118_costs(iters=5, fw=fw)
    for way in ("send", "recv"):
        for size in ("data", "ack"):
            assert lan["lan9118_%s_%s" % (way, size)] > 0, lan
    assert lan["lan9118_recv_data"] > lan["lan9118_recv_ack"] > 0, lan
    assert lan["lan9118_recv_empty"] > 0, lan
