# Packet capture on a board: start it, pull it over the serial REPL into a .pcap file.
# MIT licence.
#
#   python3 tools/pcap_pull.py --port /dev/ttyACM0 --start [--size 16384]
#   ... traffic ...
#   python3 tools/pcap_pull.py --port /dev/ttyACM0 -o board.pcap [--stop]
#   tshark -r board.pcap        (or Wireshark)
#
# The board keeps frames in a fixed ring (stack/debug.py capture(); or CAPTURE in its
# config.py from boot); pulling interrupts it (Ctrl-C), prints the ring as hex lines through
# the raw REPL (debug.dump()), and resumes main.py. The file is classic pcap (microsecond
# timestamps): link type Ethernet for Ethernet links, raw IPv4 (228) for IP-only links.
# Timestamps: the board counts ticks_ms, not the date, so each frame's time is the host's
# clock at the pull less the frame's age on the board's clock.

import argparse
import binascii
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rawrepl import Board, BoardError, BoardExecError, explain  # noqa: E402

PCAP_MAGIC = 0xA1B2C3D4
SNAPLEN = 65535


def parse_dump(text, host_now=None):
    """(linktype, info dict, [(unix time, direction, frame bytes)]) from debug.dump() text."""
    host_now = time.time() if host_now is None else host_now
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("CAPTURE"))
    except StopIteration:
        raise BoardError("no capture in the board's answer: %r" % text[:300]) from None
    head = lines[start].split()
    if head[1:] == ["none"]:
        raise BoardError("no capture on the board: start one with --start (or "
                         "debug.capture(net) at its REPL, or CAPTURE in config.py)")
    info = dict(kv.split("=", 1) for kv in head[1:])
    info = {k: int(v) for k, v in info.items()}
    period = info["period"]
    half = period // 2
    now = info["now"]
    frames = []
    for ln in lines[start + 1:]:
        if ln == "END":
            break
        ts, direction, hexdata = ln.split()
        age_ms = ((now - int(ts) + half) % period) - half  # ticks_diff(now, ts)
        frames.append((host_now - age_ms / 1000.0, direction, binascii.unhexlify(hexdata)))
    else:
        raise BoardError("the capture dump was cut short (no END line)")
    return info["linktype"], info, frames


def write_pcap(path, linktype, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype))
        for t, _, data in frames:
            sec = int(t)
            usec = int(round((t - sec) * 1e6))
            if usec >= 1000000:
                sec, usec = sec + 1, usec - 1000000
            f.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            f.write(data)


def run(port, net="net", start=False, size=16384, stop=False, out=None, resume=True):
    with Board(port, timeout_s=30.0) as b:
        b.enter_raw()
        try:
            if start:
                b.exec("from stack import debug\ndebug.capture(%s, size=%d)" % (net, size))
                return None
            text = b.exec("from stack import debug\n%sdebug.dump(%s)" % (
                "debug.capture(%s, False)\n" % net if stop else "", net))
            host_now = time.time()
        except BoardExecError as e:
            raise explain(e, net) from None
        finally:
            if resume:
                b.resume()
            else:
                b.exit_raw()
    linktype, info, frames = parse_dump(text.decode(errors="replace"), host_now)
    if out:
        write_pcap(out, linktype, frames)
    return linktype, info, frames


def main(argv):
    ap = argparse.ArgumentParser(description="Start or pull a board's packet capture.")
    ap.add_argument("--port", default=os.environ.get("PORT", ""))
    ap.add_argument("--net", default="net", help="the Stack's name at the board's REPL")
    ap.add_argument("--start", action="store_true", help="start (or restart) capturing")
    ap.add_argument("--size", type=int, default=16384, help="ring bytes, with --start")
    ap.add_argument("--stop", action="store_true", help="stop capturing, then pull")
    ap.add_argument("-o", "--output", default="board.pcap")
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)
    try:
        res = run(args.port, args.net, args.start, args.size, args.stop, args.output,
                  not args.no_resume)
    except BoardError as e:
        print("pcap_pull: %s" % e, file=sys.stderr)
        return 2
    if res is None:
        print("pcap_pull: capturing into a %d-byte ring on %s" % (args.size, args.port))
        return 0
    linktype, info, frames = res
    print("pcap_pull: %d frames to %s (link type %d; %d recorded, %d overwritten, "
          "%d too large)" % (len(frames), args.output, linktype, info["frames"], info["lost"],
                             info["skipped"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
