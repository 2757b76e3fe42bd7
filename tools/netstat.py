# Print netstat() and stats() of the stack on a board, without typing at its REPL. MIT licence.
#
#   python3 tools/netstat.py --port /dev/ttyACM0 [--stats-only | --netstat-only] [--all]
#                            [--net net] [--no-resume]
#
# Interrupts the board (Ctrl-C: main.py's event loop stops where it is), enters the raw
# REPL, runs stack.debug's netstat(net) and stats(net) on the stack that main.py calls
# `net`, prints what they print, and leaves the board serving again through main.py's
# resume() (the same connections and timers go on; frames that arrived meanwhile wait in
# the link's buffer). --no-resume leaves it at the friendly REPL instead.

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rawrepl import Board, BoardError, BoardExecError, explain  # noqa: E402


def query(port, net="net", netstat=True, stats=True, every=False, resume=True):
    code = ["from stack import debug"]
    if netstat:
        code.append("print('== netstat')")
        code.append("debug.netstat(%s)" % net)
    if stats:
        code.append("print('== stats')")
        code.append("debug.stats(%s, all=%s)" % (net, bool(every)))
    with Board(port) as b:
        b.enter_raw()
        try:
            out = b.exec("\n".join(code))
        except BoardExecError as e:
            raise explain(e, net) from None
        finally:
            if resume:
                b.resume()
            else:
                b.exit_raw()
    return out.decode(errors="replace").replace("\r\n", "\n")


def main(argv):
    ap = argparse.ArgumentParser(description="netstat()/stats() of a board's stack.")
    ap.add_argument("--port", default=os.environ.get("PORT", ""))
    ap.add_argument("--net", default="net", help="the Stack's name at the REPL")
    ap.add_argument("--stats-only", action="store_true")
    ap.add_argument("--netstat-only", action="store_true")
    ap.add_argument("--all", action="store_true", help="every counter, zeros too")
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)
    try:
        text = query(args.port, args.net, not args.stats_only, not args.netstat_only,
                     args.all, not args.no_resume)
    except BoardError as e:
        print("netstat: %s" % e, file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
