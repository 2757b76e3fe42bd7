# Hand-built ARP/IPv4/UDP frames for link tests, and a probe that drives
# stack.link.packet.Packet by itself (no TCP stack). Runs on CPython and MicroPython unix.
# MIT licence.
#
# As a script (test_links.py starts it inside a namespace with `ip netns exec`):
#
#   micropython host_tests/packet_probe.py answer IFNAME IP [TIMEOUT_S]
#       open Packet(IFNAME); answer the ARP request for IP; wait for one UDP datagram to IP;
#       print "udp <sport> <dport> <payload hex>"; send it back reversed from IP; exit 0.
#       Prints "ready <our mac hex> <filter> <recv method>" first, "arp <asker ip>" on the ARP.
#   micropython host_tests/packet_probe.py open IFNAME
#       print "ok" or "error <errno> <message>" for Packet(IFNAME).
#   micropython host_tests/packet_probe.py burst IFNAME [TIMEOUT_S]
#       print "ready ..." as answer does; once frames arrive, wait for the rest of the burst,
#       then read every waiting frame: "frame <len> <hex>" each, then "skipped <n>" (frames
#       the link consumed without returning) and "done".
#
# The builders are deliberately independent of the stack's codecs: the kernel's acceptance of
# what they build (it drops bad IPv4/UDP checksums) is what checks them.
import struct
import sys

try:
    from micropython import heap_lock, heap_unlock
except ImportError:  # CPython (or a port without heap_lock): the calls just run
    heap_lock = heap_unlock = None

try:
    from time import sleep_ms, ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def sleep_ms(ms):
        time.sleep(ms / 1000)


ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
BROADCAST = b"\xff" * 6


def ip_bytes(text):
    return bytes(int(x) for x in text.split("."))


def ip_text(b):
    return ".".join(str(x) for x in b)


def checksum(data, acc=0):
    # Internet checksum of data (RFC 1071), folded and complemented.
    n = len(data)
    for i in range(0, n - 1, 2):
        acc += (data[i] << 8) | data[i + 1]
    if n & 1:
        acc += data[n - 1] << 8
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF


def udp_checksum(src, dst, udp):
    pseudo = src + dst + struct.pack(">BBH", 0, 17, len(udp))
    c = checksum(pseudo + udp)
    return c or 0xFFFF


def ipv4_udp(src, dst, sport, dport, payload, ident=0x1234, ttl=64):
    """An IPv4 packet (no options, DF) carrying one UDP datagram; correct checksums."""
    udp = bytearray(struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload)
    struct.pack_into(">H", udp, 6, udp_checksum(src, dst, bytes(udp)))
    hdr = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, ttl,
                                17, 0, src, dst))
    struct.pack_into(">H", hdr, 10, checksum(hdr))
    return bytes(hdr) + bytes(udp)


def ether(dst, src, ethertype, payload):
    return dst + src + struct.pack(">H", ethertype) + payload


def arp_reply(our_mac, our_ip, asker_mac, asker_ip):
    """Ethernet frame: ARP reply "our_ip is at our_mac", to the asker."""
    arp = struct.pack(">HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 2, our_mac, our_ip, asker_mac,
                      asker_ip)
    return ether(asker_mac, our_mac, ETH_ARP, arp)


def parse_arp_request(frame):
    """(sender mac, sender ip, target ip) of an Ethernet ARP request, else None."""
    if len(frame) < 42 or frame[12] != 0x08 or frame[13] != 0x06:
        return None
    if frame[20] != 0 or frame[21] != 1:  # oper 1 = request
        return None
    return bytes(frame[22:28]), bytes(frame[28:32]), bytes(frame[38:42])


def parse_ipv4_udp(packet):
    """(src, dst, sport, dport, payload) of an IPv4/UDP packet with valid checksums, else
    None. Checks the header checksum and (if non-zero) the UDP checksum."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    ihl = (packet[0] & 15) * 4
    total = (packet[2] << 8) | packet[3]
    if total > len(packet) or checksum(bytes(packet[:ihl])) != 0:
        return None
    src, dst = bytes(packet[12:16]), bytes(packet[16:20])
    udp = bytes(packet[ihl:total])
    ulen = (udp[4] << 8) | udp[5]
    if ulen > len(udp) or ulen < 8:
        return None
    udp = udp[:ulen]
    if (udp[6] or udp[7]) and checksum(src + dst + struct.pack(">BBH", 0, 17, ulen) + udp):
        return None
    return src, dst, (udp[0] << 8) | udp[1], (udp[2] << 8) | udp[3], udp[8:]


def parse_ether_udp(frame):
    if len(frame) < 14 or frame[12] != 0x08 or frame[13] != 0x00:
        return None
    return parse_ipv4_udp(memoryview(frame)[14:])


# --- the probe ----------------------------------------------------------------------------

def _open(ifname):
    from stack.link.packet import Packet

    return Packet(ifname)


def main_open(ifname):
    try:
        link = _open(ifname)
    except OSError as e:
        print("error", e.args[0], e.args[1] if len(e.args) > 1 else "")
        return 1
    link.close()
    print("ok")
    return 0


def main_answer(ifname, ip, timeout_s):
    link = _open(ifname)
    our_ip = ip_bytes(ip)
    buf = bytearray(link.mtu + 14)
    mv = memoryview(buf)
    method = "recv_into" if hasattr(link._sock, "recv_into") else "readinto"
    print("ready", link.mac.hex() if hasattr(link.mac, "hex") else link.mac, link.filter,
          method)
    locked = heap_lock is not None
    start = ticks_ms()
    while ticks_diff(ticks_ms(), start) < timeout_s * 1000:
        # Receiving allocates a small peeked header per frame on MicroPython (see
        # packet.py); sending must not allocate (checked below).
        n = link.recv_into(mv)
        if not n:
            sleep_ms(2)
            continue
        frame = bytes(mv[:n])
        arp = parse_arp_request(frame)
        if arp is not None and arp[2] == our_ip:
            link.send(memoryview(arp_reply(link.mac, our_ip, arp[0], arp[1])))
            print("arp", ip_text(arp[1]))
            continue
        udp = parse_ether_udp(frame)
        if udp is not None and udp[1] == our_ip:
            src, dst, sport, dport, payload = udp
            print("udp", sport, dport, payload.hex() if hasattr(payload, "hex") else payload)
            echo = bytes(reversed(payload))
            reply = memoryview(ether(frame[6:12], link.mac, ETH_IPV4,
                                     ipv4_udp(our_ip, src, dport, sport, echo)))
            if locked:
                heap_lock()
            try:
                link.send(reply)
            finally:
                if locked:
                    heap_unlock()
            print("sent", len(reply))
            if locked:
                print("heap locked")  # send() ran with the heap locked
            link.close()
            return 0
    print("timeout")
    link.close()
    return 2


def main_burst(ifname, timeout_s):
    # Frames queued back to back must come out one by one, each with its own length (the
    # MicroPython unix port's readinto() would glue them; packet.py peeks to prevent it).
    link = _open(ifname)
    buf = bytearray(link.mtu + 14)
    print("ready", link.mac.hex() if hasattr(link.mac, "hex") else link.mac, link.filter)
    start = ticks_ms()
    n = 0
    while not n and ticks_diff(ticks_ms(), start) < timeout_s * 1000:
        n = link.recv_into(buf)
        if not n:
            sleep_ms(2)
    if not n:
        print("timeout")
        return 2
    sleep_ms(300)  # the rest of the burst is queued in the kernel by now
    for _ in range(256):
        print("frame", n, bytes(buf[:n]).hex())
        n = link.recv_into(buf)
        if not n:
            break
    print("skipped", getattr(link, "skipped", 0))
    print("done")
    link.close()
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "open":
        return main_open(argv[1])
    if len(argv) >= 2 and argv[0] == "burst":
        return main_burst(argv[1], float(argv[2]) if len(argv) > 2 else 10)
    if len(argv) >= 3 and argv[0] == "answer":
        return main_answer(argv[1], argv[2], float(argv[3]) if len(argv) > 3 else 10)
    print("usage: packet_probe.py answer IFNAME IP [TIMEOUT_S] | open IFNAME"
          " | burst IFNAME [TIMEOUT_S]")
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
