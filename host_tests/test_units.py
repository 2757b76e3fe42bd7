# Table tests for the small pieces: seq.py, ringbuf.py, assembler.py, the checksum kernels.
# MIT licence.

from stack import port, seq
from stack.assembler import Assembler
from stack.ringbuf import RingBuffer


def _wire(v):
    return bytes(((v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))


def test_seq_from_wire_table():
    # (base, wire, offset): across the 32-bit wrap, behind the base, and far away.
    table = (
        (0x00000000, 0x00000005, 5),
        (0xFFFFFFF0, 0x00000005, 0x15),
        (0xFFFFFFF0, 0xFFFFFFE0, -0x10),
        (0x00000010, 0xFFFFFFF0, -0x20),
        (0x12345678, 0x12345678 + (1 << 28) - 1, (1 << 28) - 1),
        (0x12345678, 0x12345678 + (1 << 28), seq.FAR),
        (0x12345678, 0x12345678 - (1 << 28), -(1 << 28)),
        (0x12345678, 0x92345678, seq.FAR),
    )
    for base, wire, want in table:
        hi, lo = seq.halves(base)
        got = seq.from_wire(_wire(wire & 0xFFFFFFFF), 0, hi, lo)
        assert got == want, (hex(base), hex(wire), got, want)


def test_seq_to_wire_round_trip():
    buf = bytearray(4)
    for base in (0, 0xFFFFFFFF, 0xFFFF0000, 0x0000FFFF, 0x80000000):
        hi, lo = seq.halves(base)
        for rel in (0, 1, 0xFFFF, 0x10000, seq.REBASE_AT, -1, -0x10001):
            seq.to_wire(buf, 0, hi, lo, rel)
            assert buf == _wire((base + rel) & 0xFFFFFFFF), (hex(base), rel)
            assert seq.from_wire(buf, 0, hi, lo) == rel


def test_seq_add_halves_and_wire_after():
    hi, lo = seq.halves(0xFFFFFFFF)
    assert seq.add_halves(hi, lo, 65537) == seq.halves(0x10000)
    assert seq.add_halves(0, 0, -1) == seq.halves(0xFFFFFFFF)
    a = seq.halves(0xFFFFFFF0)
    b = seq.halves(0x00000010)
    assert seq.wire_after(b[0], b[1], a[0], a[1])  # after, across the wrap
    assert not seq.wire_after(a[0], a[1], b[0], b[1])
    assert not seq.wire_after(a[0], a[1], a[0], a[1])  # equal is not after


def test_ringbuf_wraps_and_keeps_order():
    r = RingBuffer(8)
    out = bytearray(8)
    mv = memoryview(out)
    assert r.write(memoryview(b"abcdef")) == 6
    assert r.read_into(mv[:4]) == 4 and out[:4] == b"abcd"
    assert r.write(memoryview(b"ghijklmn")) == 6  # only 6 fit
    assert r.count == 8 and r.free() == 0
    assert r.read_into(mv) == 8 and out == b"efghijkl"


def test_ringbuf_write_at_then_commit():
    r = RingBuffer(8)
    r.write(memoryview(b"xyz"))
    r.consume(3)
    assert r.write_at(2, memoryview(b"CD")) == 2  # out of order, across the end
    assert r.count == 0
    r.write_at(0, memoryview(b"AB"))
    r.commit(4)
    out = bytearray(4)
    r.copy_out(0, memoryview(out), 4)
    assert out == b"ABCD"
    assert r.write_at(4, memoryview(b"123456")) == 0  # beyond free space: nothing


def test_ringbuf_copies_at_every_alignment_and_wrap():
    # write_from/copy_out use the viper copy (port.copy_viper) when both addresses are even
    # and a slice otherwise: every pairing of offsets, lengths around its 32-byte turns and
    # every wrap point must give the same bytes as a plain list model.
    from stack import ringbuf

    size = 80
    ring = memoryview(bytearray(size))
    src = bytearray(range(1, 101))
    dest = bytearray(120)
    for head in (0, 1, 2, 3, 45, 79):
        for at in (0, 1, 2, 3):
            for n in (0, 1, 2, 31, 32, 33, 34, 66, 70):
                for i in range(size):
                    ring[i] = 0
                assert ringbuf.write_from(ring, head, 0, 0, src, at, n) == n
                model = [0] * size
                for k in range(n):
                    model[(head + k) % size] = src[at + k]
                assert list(ring) == model, (head, at, n)
                for out_at in (0, 1, 2):
                    for k in range(len(dest)):
                        dest[k] = 0xEE
                    ringbuf.copy_out(ring, head, 0, dest, n, out_at)
                    assert dest[out_at:out_at + n] == src[at:at + n], (head, at, n, out_at)
                    assert dest[out_at + n] == 0xEE and (out_at == 0 or dest[out_at - 1] == 0xEE)


def test_copy_kernel_refuses_odd_addresses():
    from stack import port

    if port.copy_viper is None:
        return  # no native emitter here (CPython, WebAssembly): rings copy by slice
    dst = bytearray(40)
    src = bytes(range(40))
    assert port.copy_viper(dst, 1, src, 0, 10) == 0 and not any(dst)
    assert port.copy_viper(dst, 0, src, 3, 10) == 0 and not any(dst)
    assert port.copy_viper(dst, 2, src, 4, 33) == 1 and dst[2:35] == src[4:37]
    assert not any(dst[:2]) and not any(dst[35:])


def test_segment_finish_native_equals_python():
    # tcp.py finishes each segment with port.tcp4_out where there is viper, else with
    # _finish_plain: the same bytes for every kind of field value, wrap and flag.
    from stack import port, tcp

    if port.tcp4_out is None:
        return  # no native emitter here (CPython, WebAssembly): only the Python one runs
    x = 99
    for k in range(60):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        total = 40 + (x >> 3) % 90
        rels = (0, 1, -1, 0xFFFF, 0x10000, (1 << 27) - 1, -(1 << 27), x >> 4)
        srel, rrel = rels[k % 8], rels[(k // 8) % 8]
        shi, slo, rhi, rlo = (x >> 7) & 0xFFFF, (x >> 1) & 0xFFFF, x & 0xFFFF, (x >> 13) & 0xFFFF
        flags = (0x10, 0x18, 0x11, 0x04, 0x14, 0x02, 0x12, 0x19)[k % 8]
        wnd, ident = (x >> 5) & 0xFFFF, (x >> 9) & 0xFFFF
        a = bytearray(200)
        for i in range(len(a)):
            a[i] = (i * 31 + k) & 0xFF
        b = bytearray(a)
        port.tcp4_out(a, 14, total, ident, shi, slo, srel, rhi, rlo, rrel, flags, wnd)
        tcp._finish_plain(b, 14, total, ident, shi, slo, srel, rhi, rlo, rrel, flags, wnd)
        assert a == b, (k, total, srel, rrel, flags)


def test_assembler_table():
    # (ranges added, advance by, extra readable, ranges left)
    table = (
        (((10, 20),), 10, 10, ()),
        (((10, 20), (30, 40)), 10, 10, ((10, 20),)),
        (((10, 20), (30, 40)), 5, 0, ((5, 15), (25, 35))),
        (((10, 20), (20, 30)), 10, 20, ()),  # touching ranges merged
        (((10, 20), (15, 40)), 10, 30, ()),  # overlapping merged
        (((30, 40), (10, 20), (50, 60)), 35, 5, ((10, 20),)),  # rcv_nxt moves 40
    )
    for adds, adv, extra, left in table:
        a = Assembler(4)
        for s, e in adds:
            assert a.add(s, e)
        assert a.advance(adv) == extra, (adds, adv)
        got = a.ranges()
        assert got == left, (adds, got)


def test_assembler_full_refuses():
    a = Assembler(2)
    assert a.add(10, 20) and a.add(30, 40)
    assert not a.add(50, 60)
    assert a.add(20, 30)  # merging needs no new slot
    assert a.used == 1 and a.total() == 30


def test_assembler_against_a_byte_model():
    # Random ranges (a fixed LCG: the same run everywhere) against a set of held offsets.
    x = 7
    for _ in range(300):
        a = Assembler(3)
        held = set()  # offsets beyond rcv_nxt that are held
        for _ in range(12):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            start = 1 + x % 60
            end = start + 1 + (x >> 8) % 15
            before = a.ranges()
            if a.add(start, end):
                held.update(range(start, end))
            else:
                assert len(before) == 3 and a.ranges() == before
            if x & 0x300 == 0:
                n = 1 + (x >> 12) % 20  # n in-order bytes arrive: rcv_nxt moves n
                held = set(o - n for o in held if o - n >= 0)
                k = 0  # held bytes now at rcv_nxt onwards are readable too
                while k in held:
                    k += 1
                assert a.advance(n) == k
                held = set(o - k for o in held if o >= k)
            model = []
            for o in sorted(held):
                if model and model[-1][1] == o:
                    model[-1][1] = o + 1
                else:
                    model.append([o, o + 1])
            assert a.ranges() == tuple((s, e) for s, e in model), (a.ranges(), model)
            assert a.total() == len(held)


def test_tcb_field_names_match_their_indexes():
    from stack import tcp
    from stack import Stack
    from stack.link.pipe import pipe

    # FIELDS (the read-only names) must list the fields in the order of their constants.
    assert len(tcp.FIELDS) == tcp.ASM + 1
    for i, name in enumerate(tcp.FIELDS):
        assert getattr(tcp, name.upper()) == i, name
    a, _ = pipe(mtu=1500, depth=1)
    tcb = Stack(a, ip="10.0.0.1", tcbs=1).tcbs[0]
    tcb.v[tcp.SND_MSS] = 1234
    assert tcb.snd_mss == 1234 and tcb.state == tcp.CLOSED and not tcb.in_use
    # A timer that is off is OFF in the array and None by name; one that runs, its tick.
    assert tcb.v[tcp.REXMIT_AT] == tcp.OFF and tcb.rexmit_at is None
    tcb.v[tcp.REXMIT_AT] = 0
    assert tcb.rexmit_at == 0
    assert tcb.parent is None and tcb.owner is None
    assert not hasattr(tcb, "no_such_field")
    assert len(tcb.v) == tcp.N_FIELDS


def test_checksum_kernels_agree():
    # The chosen kernel (bigint on CPython, viper on unix MicroPython) against the loop.
    assert "disagreed" not in port.CHECKSUM_KERNEL, port.CHECKSUM_KERNEL
    data = bytearray(1501)
    x = 12345
    for i in range(len(data)):
        x = (x * 1103 + 17) & 0xFFFF
        data[i] = x & 0xFF
    cases = [(0, 0), (0, 1), (1, 2), (0, 1500), (3, 1501), (7, 64), (34, 1454), (35, 1454)]
    # Every start alignment with every tail length (the viper kernel loads aligned words).
    cases += [(s, s + n) for s in range(8) for n in range(12)]
    # ... and across the kernel's 32-byte turns, with every tail after them.
    cases += [(s, s + n) for s in range(4) for n in range(28, 70)]
    for start, end in cases:
        for acc in (0, 6, 0xFFFF):
            want = port.fold_checksum(port.checksum_plain(data, start, end, acc))
            got = port.fold_checksum(port.checksum(data, start, end, acc))
            assert got == want, (port.CHECKSUM_KERNEL, start, end, acc)
    # A view that starts at an odd address, as a slice of a frame buffer can.
    view = memoryview(data)[1:]
    for start, end in ((0, 1000), (1, 1001), (2, 7)):
        want = port.fold_checksum(port.checksum_plain(view, start, end, 0))
        assert port.fold_checksum(port.checksum(view, start, end, 0)) == want, (start, end)
    full = bytearray(b"\xff" * 1500)  # the largest sum a frame can make
    assert port.fold_checksum(port.checksum(full, 0, 1500, 0xFFFF)) == port.fold_checksum(
        port.checksum_plain(full, 0, 1500, 0xFFFF))
    big = bytearray(b"\xff" * 32768)  # the largest sum the kernel is made for (see its bound)
    assert port.fold_checksum(port.checksum(big, 0, 32768, 0xFFFF)) == port.fold_checksum(
        port.checksum_plain(big, 0, 32768, 0xFFFF))
    zeros = bytearray(40)
    assert port.fold_checksum(port.checksum(zeros, 0, 40, 1)) == 1
    ones = bytearray(b"\xff\xff" * 3)
    assert port.fold_checksum(port.checksum(ones, 0, 6, 0)) == port.fold_checksum(
        port.checksum_plain(ones, 0, 6, 0))


def test_checksum_known_ipv4_header():
    # The classic example header (checksum field 0xb861 included): sums to 0xFFFF.
    hdr = bytes((0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0, 1,
                 0xc0, 0xa8, 0, 0xc7))
    assert port.fold_checksum(port.checksum(hdr, 0, 20, 0)) == 0xFFFF


def test_ticks_wrap():
    top = port.ticks_add(0, -1)
    assert port.ticks_diff(port.ticks_add(top, 5), top) == 5
    assert port.ticks_add(top, 1) == 0
    assert port.ticks_diff(0, top) == 1
