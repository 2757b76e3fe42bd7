# The RFC-figure trace tool and the demo built on it. CPython (runs tools/demo.py). MIT licence.

import subprocess
import sys
from pathlib import Path

from tcpscript import ACK, FIN, Peer, Seg

from stack.trace import Figure

ROOT = Path(__file__).resolve().parent.parent


def test_figure_describes_segments_relative_to_isn():
    p = Peer()
    lines = []
    fig = Figure(out=lines.append)
    syn = p.packet(Seg(0x02, 0))
    assert fig.describe(syn, 0, len(syn)) == "<SEQ=100><CTL=SYN>"
    p.iss = 0x10
    fin = p.packet(Seg(FIN | ACK, 5, 7, data=b"abc"))
    assert fig.describe(fin, 0, len(fin)) == "<SEQ=105><ACK=23><CTL=FIN,ACK><DATA=3>"
    fig.segment(fin, 0, len(fin), "FIN-WAIT-1", "CLOSING", True)
    assert lines[-1].split() == ["1.", "FIN-WAIT-1", "-->",
                                 "<SEQ=105><ACK=23><CTL=FIN,ACK><DATA=3>", "-->", "CLOSING"]


def test_demo_plays_every_close():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]

    def has(*words):
        return any(r[1:] == list(words) for r in rows if r and r[0].endswith("."))

    # Four-way: FIN, ACK, FIN, ACK; then TIME-WAIT ends after 2 MSL.
    assert has("FIN-WAIT-1", "-->", "<SEQ=106><ACK=306><CTL=FIN,ACK>", "-->", "CLOSE-WAIT")
    assert has("TIME-WAIT", "<--", "<SEQ=306><ACK=107><CTL=FIN,ACK>", "<--", "LAST-ACK")
    # Three-way: B's FIN,ACK acknowledges A's FIN.
    assert has("TIME-WAIT", "<--", "<SEQ=301><ACK=102><CTL=FIN,ACK>", "<--", "LAST-ACK")
    # Simultaneous: both pass through CLOSING.
    assert has("FIN-WAIT-1", "-->", "<SEQ=101><ACK=301><CTL=FIN,ACK>", "-->", "CLOSING")
    assert has("CLOSING", "<--", "<SEQ=301><ACK=101><CTL=FIN,ACK>", "<--", "FIN-WAIT-1")
    # Abort and unread close: RST, and the peer's application is told ECONNRESET.
    assert has("ESTABLISHED", "-->", "<SEQ=101><ACK=307><CTL=RST,ACK>", "-->", "CLOSED")
    assert out.stdout.count("recv() raised ECONNRESET") == 2
    assert "recv() -> b'still talking'" in out.stdout


def test_make_demo_on_tun_with_curl():
    import netns

    netns.require_root()
    netns.require_tool("curl")
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "demo_net.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "curl printed: <html><body><h1>Hello from a TCP/IP stack in Python" in text
    rows = [line.split() for line in text.splitlines() if line[:8].strip().endswith(".")]
    ctl = [r[2] for r in rows]
    assert ctl[0] == "<SEQ=100><CTL=SYN>" and rows[0][-1] == "SYN-RECEIVED", rows[0]
    # Our server closes first (lingering close): its side ends in TIME-WAIT.
    assert any("FIN" in c for c in ctl) and "TIME-WAIT" in [r[-1] for r in rows], rows[-3:]
    assert "after 2 x MSL (2000 ms): none" in text
    assert not [n for n in netns.list_netns() if n.startswith("stdemo")]


def test_make_demo_without_root_falls_back():
    # As nobody: no namespace possible, so it says why and plays the in-memory figures.
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, str(ROOT / "tools" / "demo_net.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "not running as root" in out.stdout
    assert "Simultaneous close: the FINs cross (CLOSING)" in out.stdout
