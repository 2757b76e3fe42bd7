# Write the mip package files (mip-<name>.json at the repo root) from one table.
# SPDX-License-Identifier: MIT
#
#   python3 tools/mip_packages.py            # rewrite mip-*.json
#   python3 tools/mip_packages.py --check    # exit 1 if a committed file is stale
#   python3 tools/mip_packages.py --deps-base github:OWNER/REPO/ --out DIR
#
# mip (on the board: `mip.install(url)`; on the host: `mpremote mip install url`) reads a
# JSON file {"urls": [[dest, source], ...], "deps": [[package, version], ...], "version"}.
# Sources here are relative URLs ("stack/tcp.py"), resolved against the folder the JSON was
# fetched from; so the same files work from GitHub (github:OWNER/REPO/mip-core.json, any
# fork, any branch or tag with @TAG), any web server holding a copy of the repo, or a
# local clone (mpremote mip install ./mip-core.json). That is why they sit at the repo
# root: a JSON in a sub-folder would need "../stack/..." URLs, which mip passes to the
# server as they are (raw.githubusercontent.com's handling of dot segments is not
# something to rely on). The root's package.json is npm's (the WebAssembly test port).
#
# mip resolves a dependency only by full URL (http://, https://, github:, gitlab:) or by
# name in micropython.org's index, never relative to the JSON; this repo has no fixed
# public home, so the committed files carry no "deps": users install the core and the
# extras they want in one command. A copy published at a known place can carry them:
# --deps-base PREFIX makes every package but the core depend on PREFIX + "mip-core.json".

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, what it is for, files under stack/, packages it needs). Every stack/**/*.py file
# is in exactly one package or in LEFT_OUT (host_tests/test_mip.py checks it).
PACKAGES = (
    # The socket API includes UDP sockets (udpsock.py) and getaddrinfo (dns.py: the socket
    # module of stack.install() resolves through it, dotted quads too), so they are core
    # although tools/bench.py counts them with the LAN services; both load only when used.
    ("core", "the stack and its socket API: TCP and UDP sockets, getaddrinfo and the DNS "
     "resolver, `import socket` through stack.install(); the W5500 and LAN9118 drivers for "
     "boards and the in-memory link",
     ("__init__.py", "_checksum_viper.py", "_tcp_viper.py", "port.py", "config.py", "seq.py",
      "ringbuf.py", "ringbuf_obj.py", "assembler.py", "timewait.py", "stats.py",
      "statnames.py", "ipv4.py", "tcpseg.py", "tcp.py", "tcpfields.py", "tcp_probes.py",
      "ether.py", "arp.py", "icmp.py", "recycle.py", "iface.py", "sock.py", "udp.py",
      "udpsock.py", "dns.py", "usocket.py",
      "link/__init__.py", "link/w5500.py", "link/pipe.py", "link/lan9118.py",
      "link/_lan9118_viper.py"),
     ()),
    ("lan", "the network.LAN interface, loaded when used: active(), isconnected(), "
     "ifconfig(), ipconfig(), config(); the DHCP client and the mDNS responder",
     ("nic.py", "nic_set.py", "dhcp.py", "mdns.py"),
     ("core",)),
    ("aio", "asyncio streams over the stack (aio.open_connection, aio.start_server, "
     "ensure_driver) and the small services (echo, discard, chargen, HTTP)",
     ("aio.py", "services.py"),
     ("core",)),
    ("debug", "REPL helpers (netstat, stats, trace, capture), the segment tracer and the "
     "fault-injecting link wrapper",
     ("debug.py", "trace.py", "link/lossy.py"),
     ("core",)),
)

# In no package: host-only code that never runs on a board (tools/mpy.py's HOST_ONLY).
LEFT_OUT = {
    "link/tun.py": "Linux TUN/TAP devices (CPython)",
    "link/tap.py": "Linux TAP devices (CPython), built on tun.py",
    "link/packet.py": "Linux AF_PACKET sockets (CPython, MicroPython unix port)",
    "aio_streams.py": "streams for CPython's and the WebAssembly port's asyncio; MicroPython "
                      "boards use asyncio's own Stream",
}


def json_name(name):
    return "mip-%s.json" % name


def version():
    with open(os.path.join(ROOT, "stack", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def stack_files():
    """Every .py under stack/, relative to stack/ ("tcp.py", "link/pipe.py")."""
    out = []
    top = os.path.join(ROOT, "stack")
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        out += [os.path.relpath(os.path.join(dirpath, f), top).replace(os.sep, "/")
                for f in sorted(filenames) if f.endswith(".py")]
    return out


def problems():
    """What is wrong with the table against stack/ today: [] when all is well."""
    seen = {}
    errors = []
    for name, _, files, deps in PACKAGES:
        for f in files:
            if f in seen:
                errors.append("stack/%s is in both %s and %s" % (f, seen[f], name))
            seen[f] = name
            if f in LEFT_OUT:
                errors.append("stack/%s is in %s and in LEFT_OUT" % (f, name))
        for d in deps:
            if d not in [p[0] for p in PACKAGES]:
                errors.append("%s depends on unknown package %s" % (name, d))
    have = stack_files()
    for f in have:
        if f not in seen and f not in LEFT_OUT:
            errors.append("stack/%s is in no package: add it to PACKAGES or LEFT_OUT in "
                          "tools/mip_packages.py" % f)
    for f in list(seen) + list(LEFT_OUT):
        if f not in have:
            errors.append("stack/%s is listed in tools/mip_packages.py but does not exist" % f)
    return errors


def package_json(name, deps_base=None):
    for n, _, files, deps in PACKAGES:
        if n == name:
            break
    else:
        raise KeyError(name)
    # micropython-lib's layout: one [dest, source] pair a line.
    fields = [("urls", [["stack/" + f, "stack/" + f] for f in files])]
    if deps_base is not None:
        fields.append(("deps", [[deps_base + json_name(d), ""] for d in deps]))
    lines = []
    for key, rows in fields:
        inner = ",\n".join("    " + json.dumps(r) for r in rows)
        lines.append('  "%s": [\n%s\n  ]' % (key, inner) if rows else '  "%s": []' % key)
    lines.append('  "version": %s' % json.dumps(version()))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def render(deps_base=None):
    """{file name: text} for every package."""
    return {json_name(n): package_json(n, deps_base) for n, _, _, _ in PACKAGES}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    ap.add_argument("--out", default=ROOT, help="folder to write to (default: the repo root)")
    ap.add_argument("--deps-base", default=None,
                    help="URL prefix of the published files (github:OWNER/REPO/, https://...)"
                         ": packages then name the core in \"deps\"")
    args = ap.parse_args(argv)
    errors = problems()
    if errors:
        print("mip_packages: " + "\n  ".join(errors), file=sys.stderr)
        return 1
    stale = []
    for fname, text in render(args.deps_base).items():
        path = os.path.join(args.out, fname)
        try:
            with open(path) as f:
                same = f.read() == text
        except OSError:
            same = False
        if same:
            continue
        stale.append(fname)
        if not args.check:
            with open(path, "w") as f:
                f.write(text)
    if args.check and stale:
        print("mip_packages: stale: %s (run python3 tools/mip_packages.py)" % ", ".join(stale),
              file=sys.stderr)
        return 1
    if not args.check:
        for fname in stale:
            print("wrote", os.path.relpath(os.path.join(args.out, fname)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
