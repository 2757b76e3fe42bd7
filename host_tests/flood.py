# A raw-socket flooder for the hostile-network tests: spoofed TCP SYNs, pings and ARP at a
# fixed rate for a bounded time. MIT licence. CPython only, run as root inside the namespace
# it floods from (netns.run_in), never anywhere else.
#
#   flood.py syn --to 10.9.0.2 --port 80 --raw --onlink 10.9.0.0/24 --rate 100 --seconds 8
#   flood.py syn --to 10.9.0.2 --port 80 --packet veth0 --mac 02:..:.. --onlink 10.9.0.0/24
#   flood.py arp-ping --to 10.9.0.2 --peer 10.9.0.1 --packet veth0 --mac 02:..:..
#            --onlink 10.9.0.0/24 [--ping-rate 160] [--arp-rate 60] [--sources 60]
#
# syn: SYNs from spoofed sources (alternately an on-link address and a random off-link one,
#   never a martian, never the peer or the target), random source port and sequence number.
#   Nobody answers the SYN,ACK: the spoofed hosts do not exist.
# arp-ping: echo requests from --sources spoofed on-link hosts (each with its own random MAC),
#   mixed with spoofed ARP: requests to the target from those hosts, and claims of the peer's
#   address (gratuitous requests and replies, requests to the target) with another unicast
#   MAC, with ff:ff:ff:ff:ff:ff or a multicast MAC as the sender, and requests from the
#   subnet's broadcast address.
#
# --raw sends IP packets with IP_HDRINCL (routed by the kernel, e.g. into a TUN); --packet DEV
# sends whole Ethernet frames on DEV with AF_PACKET, to the target's MAC --mac.
#
# Runs until --seconds have passed (at most MAX_SECONDS) or stdin reaches EOF (the test
# closes it), whichever comes first; never sends more than rate x seconds packets per kind.
# Prints one line at the end: "sent syn=N" or "sent ping=N arp=N".

import argparse
import os
import random
import select
import socket
import struct
import sys
import time

MAX_SECONDS = 120
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def checksum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) & 1:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    """An IPv4 packet (no options, DF, TTL 64) carrying payload; src, dst: 4 bytes."""
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000,
                                64, proto, 0, src, dst))
    struct.pack_into("!H", hdr, 10, checksum(bytes(hdr)))
    return bytes(hdr) + payload


def tcp_syn(src, dst, sport, dport, seq):
    """A SYN with an MSS option (1460), checksummed over the pseudo-header."""
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 6 << 4, 0x02, 64240, 0, 0))
    seg += struct.pack("!BBH", 2, 4, 1460)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(seg))
    struct.pack_into("!H", seg, 16, checksum(pseudo + bytes(seg)))
    return bytes(seg)


def icmp_echo(ident, seq):
    msg = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + bytes(range(32)))
    struct.pack_into("!H", msg, 2, checksum(bytes(msg)))
    return bytes(msg)


def arp(op, sha, spa, tha, tpa):
    """An ARP packet for IPv4 over Ethernet (RFC 826)."""
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, sha, spa, tha, tpa)


def ether(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def random_mac(rng):
    """A random locally administered unicast MAC."""
    b = bytearray(rng.getrandbits(8) for _ in range(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)


def parse_mac(text):
    return bytes.fromhex(text.replace(":", ""))


class Addresses:
    """Spoofed sources: on-link hosts of the --onlink subnet and random off-link unicast
    addresses, never a martian (0/8, 127/8, 224/3), the subnet's network or broadcast
    address, the target or the peer."""

    def __init__(self, rng, onlink, exclude):
        net, bits = onlink.split("/")
        self.net = struct.unpack("!I", socket.inet_aton(net))[0]
        self.size = 1 << (32 - int(bits))
        self.net &= ~(self.size - 1) & 0xFFFFFFFF
        self.exclude = set(struct.unpack("!I", socket.inet_aton(a))[0] for a in exclude)
        self.rng = rng

    def broadcast(self):
        return struct.pack("!I", self.net + self.size - 1)

    def onlink(self):
        for _ in range(1000):
            a = self.net + self.rng.randrange(1, self.size - 1)
            if a not in self.exclude:
                return struct.pack("!I", a)
        raise ValueError("no on-link address left")

    def offlink(self):
        for _ in range(1000):
            a = self.rng.getrandbits(32)
            first = a >> 24
            if first in (0, 127) or first >= 224 or self.net <= a < self.net + self.size:
                continue
            return struct.pack("!I", a)
        raise ValueError("no off-link address found")


class Sender:
    """One raw socket: IP packets (--raw) or Ethernet frames to --mac (--packet DEV)."""

    def __init__(self, opts, rng):
        self.rng = rng
        self.to = socket.inet_aton(opts.to)
        if opts.packet:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # send only
            self.sock.bind((opts.packet, 0))
            self.mac = parse_mac(opts.mac)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            self.mac = None

    def ip(self, packet, src_mac):
        if self.mac is None:
            self.sock.sendto(packet, (socket.inet_ntoa(self.to), 0))
        else:
            self.sock.send(ether(self.mac, src_mac, ETH_P_IP, packet))

    def frame(self, frame):
        self.sock.send(frame)


def syn_flood(opts, rng, send):
    addrs = Addresses(rng, opts.onlink, [opts.to] + opts.exclude)
    count = [0]

    def one():
        src = addrs.onlink() if count[0] % 2 == 0 else addrs.offlink()
        syn = tcp_syn(src, send.to, rng.randrange(1024, 65536), opts.port, rng.getrandbits(32))
        send.ip(ipv4(src, send.to, socket.IPPROTO_TCP, syn, rng.getrandbits(16)),
                random_mac(rng))
        count[0] += 1

    run(opts, [(opts.rate, one)])
    return "sent syn=%d" % count[0]


def arp_ping_flood(opts, rng, send):
    if send.mac is None:
        raise SystemExit("arp-ping needs --packet")
    addrs = Addresses(rng, opts.onlink, [opts.to, opts.peer] + opts.exclude)
    hosts = {}
    while len(hosts) < opts.sources:
        hosts[addrs.onlink()] = random_mac(rng)
    hosts = list(hosts.items())
    peer = socket.inet_aton(opts.peer)
    zero = b"\x00" * 6
    multicast = b"\x01\x00\x5e\x00\x00\x01"
    counts = {"ping": 0, "arp": 0}

    def ping():
        src, mac = hosts[counts["ping"] % len(hosts)]
        msg = icmp_echo(0x4242, counts["ping"] & 0xFFFF)
        send.ip(ipv4(src, send.to, socket.IPPROTO_ICMP, msg, rng.getrandbits(16)), mac)
        counts["ping"] += 1

    def arp_one():
        k = counts["arp"]
        src, mac = hosts[rng.randrange(len(hosts))]
        other = random_mac(rng)
        kind = k % 8
        if kind == 0:  # a spoofed host asks for the target: RFC 826 would learn it
            frame = ether(BROADCAST, mac, ETH_P_ARP, arp(1, mac, src, zero, send.to))
        elif kind == 1:  # gratuitous request: the peer's address is at another MAC
            frame = ether(BROADCAST, other, ETH_P_ARP, arp(1, other, peer, zero, peer))
        elif kind == 2:  # unsolicited reply to the target: the peer is at another MAC
            frame = ether(send.mac, other, ETH_P_ARP, arp(2, other, peer, send.mac, send.to))
        elif kind == 3:  # a request to the target from the peer's address, broadcast sender
            frame = ether(BROADCAST, other, ETH_P_ARP, arp(1, BROADCAST, peer, zero, send.to))
        elif kind == 4:  # gratuitous reply: the peer is at ff:ff:ff:ff:ff:ff
            frame = ether(BROADCAST, other, ETH_P_ARP, arp(2, BROADCAST, peer, BROADCAST, peer))
        elif kind == 5:  # a request to the target from the peer's address, multicast sender
            frame = ether(BROADCAST, other, ETH_P_ARP, arp(1, multicast, peer, zero, send.to))
        elif kind == 6:  # a request to the target from the subnet's broadcast address
            frame = ether(BROADCAST, other, ETH_P_ARP, arp(1, other, addrs.broadcast(), zero,
                                                           send.to))
        else:  # another spoofed host asks for the target, by unicast
            frame = ether(send.mac, mac, ETH_P_ARP, arp(1, mac, src, zero, send.to))
        send.frame(frame)
        counts["arp"] += 1

    run(opts, [(opts.ping_rate, ping), (opts.arp_rate, arp_one)])
    return "sent ping=%d arp=%d" % (counts["ping"], counts["arp"])


def run(opts, streams):
    """Call each stream's function `rate` times a second until --seconds pass or stdin
    reaches EOF. Behind schedule (a slow machine), a stream skips ahead instead of bursting."""
    seconds = min(opts.seconds, MAX_SECONDS)
    start = time.monotonic()
    end = start + seconds
    due = [start for _ in streams]
    left = [int(rate * seconds) + 1 for rate, _ in streams]  # a hard count bound as well
    stdin = sys.stdin.fileno()
    while any(n > 0 for n in left):
        now = time.monotonic()
        if now >= end:
            break
        i = min((j for j in range(len(streams)) if left[j] > 0), key=lambda j: due[j])
        wait = due[i] - now
        if wait > 0:
            r, _, _ = select.select([stdin], [], [], min(wait, end - now))
            if r and not os.read(stdin, 4096):
                break  # EOF: the test is done with us
            continue
        rate, fn = streams[i]
        fn()
        left[i] -= 1
        due[i] = max(due[i] + 1.0 / rate, now - 0.1)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("syn", "arp-ping"))
    p.add_argument("--to", required=True, help="the target (our stack's) address")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--peer", help="the legitimate peer's address (arp-ping claims it)")
    p.add_argument("--onlink", required=True, help="the subnet, e.g. 10.9.0.0/24")
    p.add_argument("--exclude", action="append", default=[], help="never spoof this address")
    p.add_argument("--raw", action="store_true", help="IP packets with IP_HDRINCL")
    p.add_argument("--packet", help="Ethernet frames on this interface (AF_PACKET)")
    p.add_argument("--mac", help="the target's MAC (with --packet)")
    p.add_argument("--rate", type=float, default=100.0, help="SYNs per second")
    p.add_argument("--ping-rate", type=float, default=160.0)
    p.add_argument("--arp-rate", type=float, default=60.0)
    p.add_argument("--sources", type=int, default=60, help="spoofed on-link hosts (arp-ping)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    opts = p.parse_args(argv)
    if bool(opts.raw) == bool(opts.packet) or (opts.packet and not opts.mac):
        p.error("give --raw, or --packet DEV with --mac")
    if opts.mode == "arp-ping" and not opts.peer:
        p.error("arp-ping needs --peer")
    rng = random.Random(opts.seed)
    send = Sender(opts, rng)
    summary = (syn_flood if opts.mode == "syn" else arp_ping_flood)(opts, rng, send)
    print(summary, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
