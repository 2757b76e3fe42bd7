# Echo latency and idle wake-ups of the asyncio driver over the W5500 emulator, with the INT
# pin (ThreadSafeFlag, link.irq()) and without it (timed looks). MicroPython unix port; run
# by tools/bench.py (measure_w5500_int). MIT licence.
#
#   micropython host_tests/bench_w5500_int.py [PINGS] [IDLE_S] [IDLE_PINGS]
#
# Prints "key value" lines: w5500_idle_wakeups_{int,poll} (driver polls per idle second,
# after the first second, which the driver counts as busy), and per ping one
# w5500_echo_us_{int,poll} line (pings every 10-40 ms, so the driver without INT is in its
# busy mode: looks every 5 ms) or w5500_echo_idle_us_{int,poll} line (a ping after more
# than a second of quiet: looks every 50 ms): microseconds from an ICMP echo request entering
# the emulated chip's RX ring (emu.receive, which also makes INTn fall and calls the pin's
# irq handler) to the reply's SEND. The "wire" is a task of the same event loop, so the INT
# figure is the wake-up path and the stack's work, without a board's interrupt latency.
# On the unix port each event-loop turn waits ~1 ms while any non-fd object (the INT flag,
# or our sockets) is in asyncio's IO queue: extmod/modselect.c's POSIX path calls poll()
# with a 1 ms timeout before it asks such objects; bare-metal ports ask first, then wait.
# The INT path takes two turns (the flag's watcher, then the driver): ~2.2 ms here.

import asyncio
import sys
import time

import stack.aio as aio
from stack import Stack
from stack.link.w5500 import W5500
from tools.w5500emu import W5500Emulator

MAC = b"\x02\x00\x00\x00\x55\x01"
PEER = b"\x02\x00\x00\x00\x55\x02"
OUR_IP = b"\x0a\x00\x00\x02"
PEER_IP = b"\x0a\x00\x00\x01"


def _csum(b):
    s = 0
    for i in range(0, len(b) - 1, 2):
        s += (b[i] << 8) | b[i + 1]
    if len(b) & 1:
        s += b[-1] << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def arp_request():
    f = bytearray(60)
    f[0:6] = b"\xff" * 6
    f[6:12] = PEER
    f[12:14] = b"\x08\x06"
    f[14:22] = b"\x00\x01\x08\x00\x06\x04\x00\x01"
    f[22:28] = PEER
    f[28:32] = PEER_IP
    f[38:42] = OUR_IP
    return bytes(f)


def echo_request(seq):
    icmp = bytearray(8 + 56)
    icmp[0] = 8  # echo request
    icmp[4:6] = b"\x12\x34"
    icmp[6] = seq >> 8 & 0xFF
    icmp[7] = seq & 0xFF
    for i in range(56):
        icmp[8 + i] = i
    c = _csum(icmp)
    icmp[2] = c >> 8
    icmp[3] = c & 0xFF
    ip = bytearray(20)
    ip[0] = 0x45
    n = 20 + len(icmp)
    ip[2] = n >> 8
    ip[3] = n & 0xFF
    ip[8] = 64
    ip[9] = 1
    ip[12:16] = PEER_IP
    ip[16:20] = OUR_IP
    c = _csum(ip)
    ip[10] = c >> 8
    ip[11] = c & 0xFF
    return MAC + PEER + b"\x08\x00" + bytes(ip) + bytes(icmp)


def run(use_int, pings, idle_s, idle_pings):
    emu = W5500Emulator(seed=5)
    drv = W5500(emu, emu.cs, rst=emu.rst, int_pin=emu.int if use_int else None, mac=MAC)
    net = Stack(drv, ip="10.0.0.2", prefix=24)
    polls = [0]
    poll = net.poll

    def counting_poll():
        polls[0] += 1
        return poll()

    net.poll = counting_poll
    sent_at = [0]
    lat = []
    arp = [0]

    def on_transmit(frame):
        if frame[12:14] == b"\x08\x06":
            arp[0] += 1
        elif frame[12:14] == b"\x08\x00" and frame[23] == 1 and frame[34] == 0:
            lat.append(time.ticks_diff(time.ticks_us(), sent_at[0]))

    emu.on_transmit = on_transmit
    x = [12345]

    def rand(n):
        v = x[0]
        v ^= (v << 13) & 0xFFFFFFFF
        v ^= v >> 17
        v ^= (v << 5) & 0xFFFFFFFF
        x[0] = v
        return v % n

    async def main():
        aio.ensure_driver(net)
        emu.receive(arp_request())
        for _ in range(200):
            await asyncio.sleep_ms(10)
            if arp[0]:
                break
        await asyncio.sleep_ms(1100)  # past the driver's first, busy, second
        before = polls[0]
        await asyncio.sleep_ms(idle_s * 1000)
        wakeups = (polls[0] - before) / idle_s
        for i in range(pings + idle_pings):
            await asyncio.sleep_ms(10 + rand(31) if i < pings else 1100 + rand(200))
            sent_at[0] = time.ticks_us()
            emu.receive(echo_request(i))
            for _ in range(500):
                if len(lat) > i:
                    break
                await asyncio.sleep_ms(1)
            else:
                raise RuntimeError("no echo reply to ping %d" % i)
        return wakeups

    try:
        wakeups = asyncio.run(main())
    finally:
        aio.stop_driver(net)
    return wakeups, lat[:pings], lat[pings:]


def main(argv):
    pings = int(argv[0]) if argv else 100
    idle_s = int(argv[1]) if len(argv) > 1 else 2
    idle_pings = int(argv[2]) if len(argv) > 2 else 5
    for use_int, name in ((True, "int"), (False, "poll")):
        wakeups, busy, idle = run(use_int, pings, idle_s, idle_pings)
        print("w5500_idle_wakeups_%s %s" % (name, wakeups))
        for v in busy:
            print("w5500_echo_us_%s %d" % (name, v))
        for v in idle:
            print("w5500_echo_idle_us_%s %d" % (name, v))


if __name__ == "__main__":
    main(sys.argv[1:])
