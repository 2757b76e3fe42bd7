# The LAN9118/LAN9220 link (stack/link/lan9118.py) against a register model of the chip
# (host_tests/lan9118_model.py) standing in for machine.mem32. MIT licence.
#
# Core test module: CPython (pytest), the MicroPython unix and WebAssembly ports and the
# emulated Cortex-M boards (run_tests.py). Every test ends by checking that the model saw no
# misuse (an empty FIFO read, an unknown register, a bad TX command...).

from lan9118_model import ID_REV, LAN9118Model
from testing import expect_raises

from stack import Stack
from stack.link.lan9118 import LAN9118

MAC = b"\x52\x54\x00\x12\x34\x56"
PEER = b"\x02\x00\x00\x00\x77\x01"
BASE = 0x40200000


def frame(n, seq=0, dst=MAC):
    out = bytearray(n)
    out[0:6] = dst
    out[6:12] = PEER
    out[12] = 0x08
    out[13] = 0x00
    for i in range(14, n):
        out[i] = (i * 7 + seq * 13 + 0xC0) & 0xFF  # high bytes: big (or negative) words
    return bytes(out)


def make(signed=False, **kw):
    chip = LAN9118Model(BASE, mac=MAC, signed=signed, eeprom=kw.pop("eeprom", True))
    link = LAN9118(BASE, mem32=chip, **kw)
    return chip, link


def clean(chip):
    assert chip.clean(), chip.misuse


def test_reset_checks_chip_and_sets_mac_filter_tx():
    chip, link = make()
    assert link.chip == ID_REV
    assert link.mac == MAC  # from the chip (its EEPROM), no mac given
    assert chip.mac_cr & 0x0C == 0x0C  # TXEN | RXEN
    assert chip.mac_cr & 0x00080000  # all multicast passes (mDNS)
    assert not chip.mac_cr & 0x00040000  # not promiscuous
    assert chip.tx_cfg & 2  # TX_ON
    assert chip.hw_cfg & 0x00100000  # MBO
    assert link.mtu == 1500
    assert link.link_up()
    clean(chip)


def test_mac_given_is_written_and_no_eeprom_gives_a_local_one():
    mine = b"\x02\x11\x22\x33\x44\x55"
    chip, link = make(mac=mine)
    assert link.mac == mine and chip.mac == mine
    clean(chip)
    chip, link = make(eeprom=False)
    assert link.mac[0] == 0x02 and len(link.mac) == 6 and chip.mac == link.mac
    clean(chip)
    chip, link = make(promiscuous=True)
    assert chip.mac_cr & 0x00040000
    expect_raises(ValueError, make, mac=b"\x01\x00\x00\x00\x00\x01")  # multicast
    expect_raises(ValueError, make, mtu=1501)


def test_no_chip_and_stuck_reset_raise_oserror():
    chip = LAN9118Model(BASE)
    e = expect_raises(OSError, LAN9118, BASE + 0x1000, mem32=chip)
    assert "BYTE_TEST" in str(e), e
    chip = LAN9118Model(BASE, reset_reads=10 ** 9)
    e = expect_raises(OSError, LAN9118, BASE, mem32=chip, reset_timeout_ms=20)
    assert "soft reset" in str(e), e
    chip = LAN9118Model(BASE)
    chip.pmt_ready = False
    e = expect_raises(OSError, LAN9118, BASE, mem32=chip, reset_timeout_ms=20)
    assert "READY" in str(e), e


def _roundtrip_rx(signed):
    chip, link = make(signed=signed)
    buf = bytearray(1600)
    assert link.recv_into(buf) == 0
    for k, n in enumerate((14, 15, 16, 17, 60, 61, 62, 63, 64, 590, 1513, 1514, 1518)):
        f = frame(n, k)
        assert chip.receive(f)
        for i in range(len(buf)):
            buf[i] = 0xA5
        got = link.recv_into(buf)
        assert got == n, (n, got)
        assert bytes(buf[:n]) == f, n
        assert buf[n] == 0xA5 and buf[n + 3] == 0xA5, n  # nothing past the frame written
        assert not chip.rx_data and not chip.rx_status, n
    assert link.recv_into(buf) == 0
    assert link.rx_frames == 13
    clean(chip)


def test_receive_every_length_and_alignment():
    _roundtrip_rx(False)


def test_receive_with_signed_mem32_words_as_micropython_reads_them():
    _roundtrip_rx(True)


def test_receive_into_a_memoryview_and_several_waiting():
    chip, link = make(signed=True)
    frames = [frame(60 + 13 * k, k) for k in range(6)]
    for f in frames:
        chip.receive(f)
    store = bytearray(1600)
    mv = memoryview(store)
    for f in frames:
        n = link.recv_into(mv)
        assert bytes(mv[:n]) == f
    assert link.recv_into(mv) == 0
    clean(chip)


def _send_all(signed):
    chip, link = make(signed=signed)
    sent = []
    for k, n in enumerate((14, 15, 42, 60, 61, 62, 63, 1000, 1513, 1514)):
        f = frame(n, k, dst=PEER)
        link.send(f if k & 1 else memoryview(bytearray(f)))
        sent.append(f)
    assert chip.sent == sent
    assert len(chip.tx_status) <= 1  # popped at each send
    link.send(frame(1515))
    assert link.tx_too_long == 1 and len(chip.sent) == len(sent)
    assert link.tx_frames == 10
    clean(chip)


def test_send_every_length():
    _send_all(False)


def test_send_with_signed_mem32():
    _send_all(True)


def test_tx_status_error_is_counted():
    chip, link = make()
    chip.tx_status_flags = 0x8000
    link.send(frame(60))
    link.send(frame(60))  # pops the first frame's status
    assert link.tx_errors == 1
    clean(chip)


def test_bad_frames_are_dropped_and_fifos_stay_in_step():
    chip, link = make(signed=True)
    buf = bytearray(1514)
    good = frame(100, 1)
    chip.receive(frame(80, 2), flags=0x8000 | 0x0002)  # ES + CRC error
    chip.receive(good)
    assert link.recv_into(buf) == 100 and bytes(buf[:100]) == good
    assert link.rx_errors == 1
    chip.receive(frame(80, 3), flags=0x40000000)  # filter fail
    chip.receive(frame(1518, 4))  # VLAN-sized: longer than this buffer
    chip.receive(frame(14, 5)[:10])  # runt (shorter than an Ethernet header)
    chip.receive(good)
    assert link.recv_into(buf) == 100 and bytes(buf[:100]) == good
    assert (link.rx_errors, link.rx_too_long, link.rx_runts) == (2, 1, 1)
    assert not chip.rx_data and not chip.rx_status
    clean(chip)


def test_many_bad_frames_take_several_calls_but_never_block():
    chip, link = make()
    for k in range(9):
        chip.receive(frame(64, k), flags=0x8000)
    chip.receive(frame(64, 99))
    buf = bytearray(1514)
    got = [link.recv_into(buf) for _ in range(4)]
    assert got == [0, 0, 64, 0], got  # 4 drops per call at most
    assert link.rx_errors == 9
    clean(chip)


def test_status_claiming_more_than_the_data_fifo_holds_resyncs():
    chip, link = make()
    buf = bytearray(1514)
    chip.receive(frame(64), length=1200)  # status says 1200 bytes; 68 are there
    assert link.recv_into(buf) == 0
    assert link.rx_resyncs == 1 and not chip.rx_data and not chip.rx_status
    chip.receive(frame(2000 - 4), length=2000)  # longer than any frame
    assert link.recv_into(buf) == 0 and link.rx_resyncs == 2
    chip.receive(frame(64, 7))
    assert link.recv_into(buf) == 64 and bytes(buf[:64]) == frame(64, 7)
    clean(chip)  # never read an empty FIFO


def test_tx_fifo_full_waits_then_drops_and_counts():
    chip, link = make(tx_timeout_ms=2)
    chip.tx_drain = False
    f = frame(1514, dst=PEER)
    for _ in range(3):  # 3 x (1516 + 8) bytes fit in 4608
        link.send(f)
    assert link.tx_full == 0
    link.send(f)
    assert link.tx_full == 1 and len(chip.held) == 3
    chip.tx_drain = True
    chip.drain()
    link.send(f)
    assert chip.sent == [f] * 4 and link.tx_full == 1
    clean(chip)


def test_stack_answers_arp_and_ping_over_the_link():
    chip, link = make(signed=True)
    net = Stack(link, ip="10.0.0.2", prefix=24, tcbs=1, rx_buf=512, tx_buf=512, tw_slots=1)
    net.poll()
    del chip.sent[:]  # the stack's own announcement (gratuitous ARP)
    arp = (b"\xff" * 6 + PEER + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + PEER
           + b"\x0a\x00\x00\x01" + b"\x00" * 6 + b"\x0a\x00\x00\x02" + b"\x00" * 18)
    chip.receive(arp)
    net.poll()
    assert len(chip.sent) == 1
    reply = chip.sent[0]
    assert reply[0:6] == PEER and reply[6:12] == MAC and reply[12:14] == b"\x08\x06"
    assert reply[20:22] == b"\x00\x02" and reply[28:32] == b"\x0a\x00\x00\x02"
    # ICMP echo request 10.0.0.1 -> 10.0.0.2, 200 bytes of payload.
    payload = bytes((i * 3) & 0xFF for i in range(200))
    icmp = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + payload)
    _csum_into(icmp, 2)
    ip = bytearray(b"\x45\x00" + (20 + len(icmp)).to_bytes(2, "big") + b"\x00\x01\x00\x00"
                   + b"\x40\x01\x00\x00" + b"\x0a\x00\x00\x01\x0a\x00\x00\x02")
    _csum_into(ip, 10)
    chip.receive(MAC + PEER + b"\x08\x00" + bytes(ip) + bytes(icmp))
    net.poll()
    assert len(chip.sent) == 2
    echo = chip.sent[1]
    assert echo[12:14] == b"\x08\x00" and echo[34] == 0  # echo reply
    assert echo[42:42 + 200] == payload
    clean(chip)


def _csum_into(b, at):
    s = 0
    for i in range(0, len(b) - 1, 2):
        s += (b[i] << 8) | b[i + 1]
    if len(b) & 1:
        s += b[-1] << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    b[at] = s >> 8
    b[at + 1] = s & 0xFF


def test_viper_kernels_match_the_plain_path_where_the_port_has_them():
    # The kernels read and write a real address: here one word of a bytearray plays the
    # FIFO port (every read gives the same word; every write lands on it).
    try:
        from stack.link import _lan9118_viper as k

        import uctypes
    except (ImportError, SyntaxError):  # WebAssembly rejects the viper decorator
        k = uctypes = None
    if k is None or not k.FAST:
        # No native emitter (CPython, WebAssembly): the link must not ask for the kernels.
        chip, link = make(fast=True)
        assert link.stats["fast"] is False
        return
    word = bytearray(b"\x01\x82\xc3\x44")
    fifo = uctypes.addressof(word)
    for n in (0, 1, 2, 3, 4, 5, 7, 8, 61):
        buf = bytearray(b"\xee" * 70)
        k.rx_copy(fifo, buf, n, (n + 4 + 3) // 4)
        want = (bytes(word) * 20)[:n]
        assert bytes(buf[:n]) == want and buf[n] == 0xEE, n
    for n in (1, 2, 3, 4, 6, 9):
        data = bytes(range(0xF0, 0xF0 + n))
        k.tx_copy(fifo, data, n)
        last = data[(n - 1) // 4 * 4:]
        assert bytes(word) == last + b"\x00" * (4 - len(last)), (n, bytes(word))
    k.rx_skip(fifo, 5)
