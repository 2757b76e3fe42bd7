# `make demo`: our stack on a TUN device serves a page to curl in a network namespace, and
# every segment of the connection is printed as an RFC 793 figure row, close included.
# SPDX-License-Identifier: MIT
#
# Needs root (namespace, TUN device). Without it, it says so and plays the in-memory demo
# (tools/demo.py) instead. The namespace and device are removed on exit, even on Ctrl-C.

import asyncio
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from stack import Stack, aio, services, trace  # noqa: E402

NS = "stdemo%d" % os.getpid()
DEV = "stdemo%d" % (os.getpid() % 100000)
LINUX_IP, OUR_IP = "10.77.0.1", "10.77.0.2"
MSL_MS = 1000


def why_not():
    if os.geteuid() != 0:
        return "not running as root (a network namespace and a TUN device need it)"
    for tool in ("ip", "curl"):
        if shutil.which(tool) is None:
            return "%s is not installed (Debian: iproute2, curl)" % tool
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    return None


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, text=True)


async def show(net):
    server = await aio.start_server(net, services.http(net), "0.0.0.0", 80)
    print("\n$ ip netns exec %s curl -s http://%s/\n" % (NS, OUR_IP))
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", NS, "curl", "-sS", "--max-time", "10",
        "http://%s/" % OUR_IP, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    await asyncio.sleep(0.3)  # the last ACKs
    print("\ncurl printed: %s" % (out.decode().strip() or err.decode().strip()))
    print("our connections now: %s" % (net.connections()[1:] or "none"))
    await asyncio.sleep(2 * MSL_MS / 1000 + 0.2)
    print("after 2 x MSL (%d ms): %s" % (2 * MSL_MS, net.connections()[1:] or "none"))
    server.close()
    await server.wait_closed()
    aio.stop_driver(net)


def main():
    reason = why_not()
    if reason:
        print("make demo: %s; playing the in-memory demo instead.\n" % reason)
        sys.path.insert(0, HERE)
        import demo

        demo.main()
        return 0
    from stack.link.tun import Tun

    print("Namespace %s holds Linux's side (%s on %s); our stack is %s, MSL %d ms."
          % (NS, LINUX_IP, DEV, OUR_IP, MSL_MS))
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        link = Tun(DEV, netns=NS)
        try:
            sh("ip", "-n", NS, "addr", "add", LINUX_IP + "/24", "dev", DEV)
            sh("ip", "-n", NS, "link", "set", DEV, "up")
            net = Stack(link, ip=OUR_IP, prefix=24, msl_ms=MSL_MS)
            trace.attach(net, peer="Linux (curl)", us="our stack")
            asyncio.run(show(net))
        finally:
            link.close()
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    print("\nThe every-way-of-closing figures: python3 tools/demo.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
