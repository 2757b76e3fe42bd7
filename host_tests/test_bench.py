# The benchmark harness must not rot: a tiny run produces well-formed JSON with every
# field. Not a timing test: no figure is compared with a budget here. MIT licence.

import json
import subprocess
import sys

import mp
import netns

from tools_path import TOOLS  # noqa: F401  (documents where bench.py lives)


def test_bench_tiny_writes_every_field(tmp_path):
    netns.require_root()
    mp.node_cmd()
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(mp.ROOT / "tools" / "bench.py"), "--tiny",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[bench]" in proc.stderr  # progress was shown
    doc = json.loads(out.read_text())
    assert doc["mode"] == "tiny"
    assert set(doc["machine"]) == {"platform", "python", "cpus", "cpu"}
    from tools_path import bench

    keys = [row[1] for row in bench.ROWS] + [row[2] for row in bench.ROWS if row[2]]
    for key in keys:
        r = doc["results"][key]
        assert set(r) == {"median", "min", "max", "runs"}, key
        assert r["min"] <= r["median"] <= r["max"] and len(r["runs"]) >= 1, key
    assert len(doc["table"]) == len(bench.ROWS)
    for row in doc["table"]:
        assert row["met"] in ("", "yes", "NO")
        if row["reference"] is not None:
            assert row["ratio"] > 0
    assert "| measurement | median |" in proc.stdout
    res = doc["results"]

    # Issue 11: allocation of the LAN services (mem_lan.py) on wasm32, and on unix to compare.
    def alloc(key):
        v = res[key]["median"]
        assert isinstance(v, int) and 0 <= v < 8192, (key, v)
        return v

    for suffix in ("", "_unix64"):
        net = alloc("alloc_bytes_per_dns_lookup_network" + suffix)
        cached = alloc("alloc_bytes_per_dns_lookup_cached" + suffix)
        assert cached < net, (cached, net)  # a cache hit sends and receives nothing
        assert alloc("alloc_bytes_per_dhcp_renewal" + suffix) > 0
        assert alloc("alloc_bytes_per_idle_poll_dhcp_mdns" + suffix) < 16  # about nothing
        assert alloc("alloc_bytes_per_mdns_answer" + suffix) > 0

    # Flash: core, LAN services, optional modules and link drivers are counted once each.
    def mpy(key):
        return res["mpy_bytes_%s_armv6m" % key]["median"]

    lan = [mpy(f[:-3]) for f in bench.LAN]  # udpsock, nic, nic_set, dhcp, dns, mdns
    assert {"udpsock.py", "nic.py", "dhcp.py", "dns.py", "mdns.py"} <= set(bench.LAN)
    assert all(v > 0 for v in lan) and mpy("lan") == sum(lan)
    assert mpy("core") + mpy("lan") + mpy("optional") < mpy("all")  # the rest: link drivers

    # Issue 12: the asyncio layer. A board loads aio.py alone; MicroPython's own Stream
    # keeps less per connection than aio_streams' reader, writer and readline buffer.
    assert 0 < mpy("aio") and 0 < mpy("aio_streams")
    native = res["heap_bytes_per_conn_native_stream_unix64"]["median"]
    ours = res["heap_bytes_per_conn_aio_streams_unix64"]["median"]
    assert 0 < native < ours, (native, ours)
    assert 0 < res["heap_bytes_import_aio_unix64"]["median"] < 65536
