# The W5500's INT pin waking the asyncio driver (stack/aio.py, link.irq()): on the MicroPython
# unix port the emulated chip's INTn pin (tools/w5500emu.py) calls its irq handler when it
# falls, as a board's Pin.irq would. MIT licence.
#
# Core-style (no pytest): CPython runs it (pytest), but what it is about needs MicroPython's
# asyncio.ThreadSafeFlag, so those tests return at once there; test_w5500_host.py runs the
# module on the MicroPython unix port. Not in host_tests.MODULES: it needs tools/.
#
# No timed assertions: the counts below only grow when the machine is slow.

import asyncio

import stack.aio as aio
from stack import Stack
from stack.link.w5500 import W5500
from tools.w5500emu import Pin, W5500Emulator

MAC = b"\x02\x00\x00\x00\x55\x01"
PEER = b"\x02\x00\x00\x00\x55\x02"
OUR_IP = b"\x0a\x00\x00\x02"
PEER_IP = b"\x0a\x00\x00\x01"
_native = getattr(asyncio, "ThreadSafeFlag", None) is not None and hasattr(asyncio, "sleep_ms")


def arp_request(seq=0):
    """Who has 10.0.0.2? from PEER (60 bytes, as on a wire)."""
    f = bytearray(60)
    f[0:6] = b"\xff" * 6
    f[6:12] = PEER
    f[12:14] = b"\x08\x06"
    f[14:22] = b"\x00\x01\x08\x00\x06\x04\x00\x01"
    f[22:28] = PEER
    f[28:32] = PEER_IP
    f[38:42] = OUR_IP
    f[59] = seq
    return bytes(f)


def is_arp_reply(f):
    return len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02"


def make(use_int=True):
    emu = W5500Emulator(seed=3)
    drv = W5500(emu, emu.cs, rst=emu.rst, int_pin=emu.int if use_int else None, mac=MAC)
    net = Stack(drv, ip="10.0.0.2", prefix=24)
    polls = [0]
    poll = net.poll

    def counting_poll():
        polls[0] += 1
        return poll()

    net.poll = counting_poll
    return emu, drv, net, polls


async def _settle(net, emu):
    # The driver counts the first second after it starts as busy (5 ms looks without INT):
    # a frame answered, then more than that second, so what follows is the idle state.
    aio.ensure_driver(net)
    emu.receive(arp_request())
    for _ in range(200):
        await asyncio.sleep_ms(10)
        if emu.sent:
            break
    assert emu.sent and is_arp_reply(emu.sent[-1])
    await asyncio.sleep_ms(1100)


def _idle_second(use_int):
    emu, drv, net, polls = make(use_int)

    async def main():
        await _settle(net, emu)
        mode = aio._drivers[net].mode
        before = polls[0]
        await asyncio.sleep_ms(1000)
        return mode, polls[0] - before

    try:
        return asyncio.run(main())
    finally:
        aio.stop_driver(net)


def test_link_irq_registers_a_falling_edge_handler():
    emu = W5500Emulator()
    drv = W5500(emu, emu.cs, rst=emu.rst, int_pin=emu.int, mac=MAC)
    seen = []
    assert drv.irq(lambda pin: seen.append(pin))
    assert emu.int._trigger == Pin.IRQ_FALLING
    emu.receive(arp_request())
    assert seen == [emu.int]
    emu2 = W5500Emulator()
    assert not W5500(emu2, emu2.cs, rst=emu2.rst, mac=MAC).irq(print)  # no INT pin wired
    emu3 = W5500Emulator()
    drv3 = W5500(emu3, emu3.cs, rst=emu3.rst, int_pin=emu3.int.value, mac=MAC)
    assert not drv3.irq(print)  # a bare callable: polled, no irq()


def test_idle_driver_sleeps_with_the_int_pin():
    if not _native:
        return  # CPython: no ThreadSafeFlag (test_idle_driver_polls_without_threadsafeflag)
    mode, polls = _idle_second(True)
    print("driver polls in an idle second with the INT pin:", polls)
    assert mode == "irq"
    assert polls <= 2, polls  # IRQ_MS: one look a second in case an edge was missed


def test_idle_driver_polls_without_the_int_pin():
    if not _native:
        return
    mode, polls = _idle_second(False)
    print("driver polls in an idle second without the INT pin:", polls)
    assert mode == "timed"
    assert polls > 2, polls  # IDLE_MS: about 20; fewer only on a very slow machine


def test_a_frame_wakes_the_sleeping_driver():
    if not _native:
        return
    emu, drv, net, polls = make(True)

    async def main():
        await _settle(net, emu)
        n = len(emu.sent)
        before = polls[0]
        emu.receive(arp_request(1))  # INTn falls: the flag is set from the "IRQ"
        # The driver sleeps up to IRQ_MS; zero-length yields only, so the answer cannot
        # come from a timer: from the flag, the IO queue, the watcher and kick().
        for i in range(50):
            await asyncio.sleep_ms(0)
            if len(emu.sent) > n:
                return i, polls[0] - before
        return None, polls[0] - before

    try:
        yields, woken = asyncio.run(main())
    finally:
        aio.stop_driver(net)
    assert yields is not None, "no answer after 50 yields (the driver was not woken)"
    assert 1 <= woken <= 2, woken  # 2 only if the 1 s look fell in those few yields
    assert is_arp_reply(emu.sent[-1])


def test_irq_handler_allocates_nothing():
    # It runs in hard IRQ context on some ports (Pin.irq(..., hard=True)).
    if not _native:
        return
    import micropython

    emu, drv, net, polls = make(True)

    async def main():
        aio.ensure_driver(net)
        await asyncio.sleep_ms(0)
        handler = emu.int._handler
        micropython.heap_lock()
        try:
            handler(emu.int)
            handler(emu.int)
        finally:
            micropython.heap_unlock()

    try:
        asyncio.run(main())
    finally:
        aio.stop_driver(net)


def test_idle_driver_polls_without_threadsafeflag():
    # CPython, or a port built without ThreadSafeFlag: the timed looks of before.
    emu, drv, net, polls = make(True)
    saved = getattr(asyncio, "ThreadSafeFlag", None)
    if saved is not None:
        asyncio.ThreadSafeFlag = None

    async def main():
        aio.ensure_driver(net)
        for _ in range(3):
            await asyncio.sleep(0.01)
        return aio._drivers[net].mode

    try:
        mode = asyncio.run(main())
    finally:
        aio.stop_driver(net)
        if saved is not None:
            asyncio.ThreadSafeFlag = saved
    assert mode == "timed"
    assert polls[0] >= 1
