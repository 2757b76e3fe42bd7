# Unmodified MicroPython network libraries over our stack (issue 12): run on the MicroPython
# unix port with our stack on AF_PACKET; stack.install(net) comes before any library import.
# MIT licence. Driven by test_libs_linux.py:
#
#   libs_board.py packet:IFACE IP GATEWAY DNS_SERVER LIBDIR
#       prints READY, then one reply per line:
#     get URL     -> "ok STATUS LENGTH SHA256HEX"   (requests.get, body hashed)
#     ntp HOST    -> "ok SECONDS"                   (ntptime.time() with ntptime.host = HOST)
#     stats       -> "ok k=v ..."                   (our stack's tcp/udp/dns counters)
#     quit (or EOF)
#
# LIBDIR holds micropython-lib's ntptime.py (unmodified); requests is the unix port's frozen
# one. Blocking library calls drive net.poll() through our sockets, so no driver task is
# needed; between commands the loop polls once before it blocks on stdin.

import sys


def _hex(b):
    return "".join("%02x" % x for x in b)


def main(argv):
    sys.path.append(argv[4])
    import stack
    from stack import Stack, ipv4
    from stack.stats import NAMES
    from tools.links import make_link

    link = make_link(argv[0])
    net = Stack(link, ip=argv[1], prefix=24, gateway=argv[2])
    net.dns_servers = [ipv4.aton(argv[3])]
    stack.install(net)
    # only now: they do `import socket` at import time
    import hashlib

    import ntptime
    import requests

    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        net.poll()
        words = sys.stdin.readline().split()
        if not words or words[0] == "quit":
            return
        try:
            if words[0] == "get":
                r = requests.get(words[1])
                try:
                    body = r.content
                finally:
                    r.close()
                out = "ok %d %d %s" % (r.status_code, len(body),
                                       _hex(hashlib.sha256(body).digest()))
            elif words[0] == "ntp":
                ntptime.host = words[1]
                out = "ok %d" % ntptime.time()
            elif words[0] == "stats":
                out = "ok " + " ".join("%s=%d" % (k, getattr(net.stats, k)) for k in NAMES
                                       if k[:3] in ("tcp", "udp", "dns"))
            else:
                out = "err unknown command"
        except Exception as e:
            out = "err %s %r" % (type(e).__name__, e.args)
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


main(sys.argv[1:])
