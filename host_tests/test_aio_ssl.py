# aio.open_connection(ssl=) and aio.start_server(ssl=) (issue 12): TLS through our asyncio
# layer on the MicroPython unix port (aio_ssl_board.py, two stacks in memory, mbedTLS on
# both ends), and the clear refusal where the streams cannot take TLS (CPython).
# MIT licence. CPython pytest; needs openssl (certificates) and the unix port.

import asyncio

import tlscerts
import mp
import pytest

from stack import Stack, aio
from stack.link.pipe import pipe


@pytest.fixture(scope="module")
def certdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("aio_ssl")
    tlscerts.ca(d, "ca")
    tlscerts.leaf(d, "server", "server.lan", "ca")
    return d


def test_tls_round_trip_and_name_check_through_aio(certdir):
    proc = mp.run_unix("host_tests/aio_ssl_board.py", str(certdir), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    n, digest = lines["echo"].split()
    assert n == "20000" and len(digest) == 64, lines["echo"]  # "differs" if a byte changed
    kind, _ = lines["bad-name"].split()
    assert kind in ("ValueError", "OSError"), lines["bad-name"]  # what tls raises
    assert lines["free"] == "True", proc.stdout  # both connections gave their TCBs back


def test_ssl_refused_where_streams_cannot_wrap():
    if aio._native:  # pragma: no cover - this file runs under CPython's pytest
        pytest.fail("expected CPython's asyncio here")
    a, b = pipe(mtu=1500, depth=8)
    net = Stack(a, ip="10.0.0.1")

    async def main():
        with pytest.raises(ValueError):
            await aio.open_connection(net, "10.0.0.2", 443, ssl=True)
        with pytest.raises(ValueError):
            await aio.start_server(net, None, "0.0.0.0", 443, ssl=True)
        assert net.free_tcb_count() == len(net.tcbs)  # refused before any socket

    asyncio.run(main())
