# TLS figures for `make bench` (issue 12): MicroPython's own tls/requests over our stack on the
# MicroPython unix port, AF_PACKET on a veth pair, against `openssl s_server -WWW` in another
# namespace. MIT licence. CPython; needs root and openssl. Standalone:
#
#   sudo .venv/bin/python host_tests/bench_tls.py        # prints the results as JSON
"""measure_tls(results, runs=3, handshakes=10) fills, each as {"median", "min", "max", "runs"}:

tls_handshake_ms     one TLS client handshake, in ms of the board's clock: TCP connect +
                     tls.SSLContext(PROTOCOL_TLS_CLIENT).wrap_socket() with CERT_REQUIRED
                     against a CA-signed ECDSA P-256 certificate (TLS 1.2, ECDHE-ECDSA-
                     AES-256-GCM) + close. Every handshake of every run is one sample.
tls_handshake_nodelay_ms  the same with TCP_NODELAY set on the socket first. mbedTLS sends
                     each handshake record with its own write; with Nagle on, the second of
                     two small writes (ChangeCipherSpec + Finished after ClientKeyExchange)
                     waits for the ACK of the first, which Linux delays by about 40 ms.
requests_small_ms    the frozen `requests.get("https://.../small.bin")` of 1 KB, in ms:
                     connect, handshake (requests itself sets CERT_NONE), request, body.
                     One sample per run.
requests_1mb_s       the same for a 1 MB body, in seconds. One sample per run.
requests_1mb_mbit_s  1 MB / requests_1mb_s, in Mbit/s (10**6 bits), for the table.

The SHA-256 of each body is checked; a wrong one raises. The board runs our stack unmodified
(host_tests/tls_board.py); names carry the pid, so parallel runs do not collide. Takes about
10 s with the defaults.
"""

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

LINUX_IP = "10.9.8.1"
OUR_IP = "10.9.8.2"
WWW_PORT = 4434
SMALL = 1024
BIG = 1 << 20


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def _get(agent, url, size, sha):
    reply = agent.cmd("get url=" + url, timeout=60)
    _, status, length, got_sha, ms = reply.split()
    if (status, int(length), got_sha) != ("200", size, sha):
        raise AssertionError("%s -> %s" % (url, reply))
    return float(ms)


def measure_tls(results, runs=3, handshakes=10):
    import mp
    import netns
    import tlscerts
    from linux import Agent

    openssl = netns.require_tool("openssl")
    with tempfile.TemporaryDirectory(prefix="bench_tls") as tmp:
        d = Path(tmp)
        tlscerts.ca(d, "ca")
        tlscerts.leaf(d, "server", "server.lan", "ca")
        tlscerts.leaf(d, "board", "board.lan", "ca")
        shas = {}
        for name, size in (("small.bin", SMALL), ("big.bin", BIG)):
            blob = os.urandom(size)
            (d / name).write_bytes(blob)
            shas[name] = hashlib.sha256(blob).hexdigest()
        linux = netns.Netns().open()
        ours = netns.Netns().open()
        agent = None
        try:
            _, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
            linux.run([openssl, "s_server", "-quiet", "-WWW", "-accept", str(WWW_PORT),
                       "-cert", str(d / "server.pem"), "-key", str(d / "server_key.pem")],
                      cwd=str(d), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            linux.wait_listening(WWW_PORT)
            agent = Agent([mp.micropython_cmd(), "-X", "heapsize=16M",
                           str(HERE / "tls_board.py"), "packet:" + vb, OUR_IP, LINUX_IP,
                           str(d)], ns=ours)
            hs, hs_nodelay, small, big = [], [], [], []
            url = "https://%s:%d/" % (LINUX_IP, WWW_PORT)
            _get(agent, url + "small.bin", SMALL, shas["small.bin"])  # warm-up: ARP, imports
            for _ in range(runs):
                reply = agent.cmd("hs port=%d host=server.lan n=%d" % (WWW_PORT, handshakes),
                                  timeout=60)
                hs += [float(v) for v in reply.split()[1:]]
                reply = agent.cmd("hs port=%d host=server.lan n=%d nodelay=1"
                                  % (WWW_PORT, handshakes), timeout=60)
                hs_nodelay += [float(v) for v in reply.split()[1:]]
                small.append(_get(agent, url + "small.bin", SMALL, shas["small.bin"]))
                big.append(_get(agent, url + "big.bin", BIG, shas["big.bin"]) / 1000)
        finally:
            if agent is not None:
                agent.close()
            ours.close()
            linux.close()
    results["tls_handshake_ms"] = summary(hs)
    results["tls_handshake_nodelay_ms"] = summary(hs_nodelay)
    results["requests_small_ms"] = summary(small)
    results["requests_1mb_s"] = summary(big)
    results["requests_1mb_mbit_s"] = summary([BIG * 8 / 1e6 / s for s in big])
    return results


if __name__ == "__main__":
    t0 = time.monotonic()
    out = measure_tls({})
    out["elapsed_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out, indent=1))
