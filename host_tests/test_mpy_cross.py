# Every file under stack/ and boards/ must compile with mpy-cross: as portable bytecode, and for
# the boards' architectures (RP2040: armv6m, ESP32: xtensawin). MIT licence.
import re
import subprocess

import mp
import pytest

SOURCE_DIRS = ("stack", "boards")
# Plain bytecode mode rejects viper/native code, so such files are compiled only for a -march.
NATIVE = re.compile(r"@micropython\.(viper|native)\b")


def _sources():
    # Globbed when the test runs, so files added after collection are not missed.
    found = []
    for d in SOURCE_DIRS:
        found += sorted(p for p in (mp.ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)
    return found


@pytest.mark.parametrize("march", [None, "armv6m", "xtensawin"])
def test_compiles(march, tmp_path):
    tool = mp.mpy_cross_cmd()
    # With no Python files yet this passes trivially; any file that exists is compiled.
    sources = [s for s in _sources() if march or not NATIVE.search(s.read_text())]
    errors = []
    for src in sources:
        rel = src.relative_to(mp.ROOT)
        out = tmp_path / (str(rel).replace("/", "__") + ".mpy")
        cmd = [tool, "-o", str(out), str(rel)] + (["-march=" + march] if march else [])
        proc = subprocess.run(cmd, cwd=mp.ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            errors.append(f"{rel}:\n{proc.stdout}{proc.stderr}")
    assert not errors, f"mpy-cross -march={march} failed for:\n" + "\n".join(errors)


# Thumb-1 (armv6m) has no long branch: past 2 KB of native code the emitter jumps with
# `ldr r1, [pc, #0]; add pc, r1` and a word after them, a PC-relative load that assumes the
# code starts 4-byte aligned. Frozen code need not be (mpy-tool emits it as a byte array):
# the Cortex-M0 board jumped into nowhere from a 2.3 KB viper function that ran when compiled
# on the board. So every native function must stay short enough to need no such jump.
_LONG_JUMP = bytes.fromhex("00498f44")  # ldr r1, [pc, #0]; add pc, r1 (little-endian)
# The same assumption loads every constant wider than 16 bits (that is not 8 bits shifted):
# `ldr rN, [pc, #0]; b 1f; .word value`. Misaligned, the load reads 2 bytes off: the Cortex-M0
# board computed ticks & 0x3FFFFFFF as ticks & 0xFFFFE001. One such load per function is the
# emitter's own (the signature it reports when called with the wrong number of arguments);
# any other is a constant in our code: compute it instead ((1 << 30) - 1 from a variable).
_WIDE_CONSTANT = re.compile(rb"\x00[\x48-\x4f]\x01\xe0")  # ldr rN, [pc, #0]; b +2


def test_armv6m_native_code_has_no_long_jumps(tmp_path):
    tool = mp.mpy_cross_cmd()
    checked = []
    for src in _sources():
        text = src.read_text()
        if not NATIVE.search(text):
            continue
        rel = src.relative_to(mp.ROOT)
        out = tmp_path / (str(rel).replace("/", "__") + ".mpy")
        subprocess.run([tool, "-march=armv6m", "-o", str(out), str(rel)], cwd=mp.ROOT,
                       check=True, capture_output=True)
        code = out.read_bytes()
        assert _LONG_JUMP not in code, (
            f"{rel}: a native function over 2 KB of armv6m code (a long jump): split it")
        functions = len(NATIVE.findall(text))
        assert len(_WIDE_CONSTANT.findall(code)) <= functions, (
            f"{rel}: a constant wider than 16 bits in armv6m native code: compute it")
        checked.append(rel)
    assert {"_checksum_viper.py", "_tcp_viper.py"} <= {p.name for p in checked}, checked
    # The wide constant's pattern is what the emitter writes for one.
    wide = tmp_path / "wide.py"
    wide.write_text("import micropython\n@micropython.viper\ndef f(x: int) -> int:\n"
                    "    return x & 0x3FFFFFFF\n")
    subprocess.run([tool, "-march=armv6m", "-o", str(tmp_path / "wide.mpy"), str(wide)],
                   check=True, capture_output=True)
    assert len(_WIDE_CONSTANT.findall((tmp_path / "wide.mpy").read_bytes())) == 2
    # The pattern is what the emitter writes: a function of 300 branches has it.
    big = tmp_path / "big.py"
    big.write_text("import micropython\n@micropython.viper\ndef f(buf) -> int:\n"
                   "    p = ptr8(buf)\n" + "".join(
                       "    if p[%d] == %d:\n        return %d\n" % (i % 50, i % 200, i)
                       for i in range(300)) + "    return 0\n")
    subprocess.run([tool, "-march=armv6m", "-o", str(tmp_path / "big.mpy"), str(big)],
                   check=True, capture_output=True)
    assert _LONG_JUMP in (tmp_path / "big.mpy").read_bytes()


def test_native_field_indexes_match_tcp():
    # The viper kernels name tcp.py's field indexes (and iface.py's knobs) as constants of
    # their own, `_SND_UNA = const(11)`: viper folds only constants of its own file.
    from stack import tcp

    text = (mp.ROOT / "stack" / "_tcp_viper.py").read_text()
    named = dict(re.findall(r"^_([A-Z][A-Z0-9_]*) = const\((\d+)\)$", text, re.M))
    fields = {k: int(v) for k, v in named.items() if not k.startswith("K_")}
    assert len(fields) > 30, fields
    for name, index in fields.items():
        assert getattr(tcp, name) == index, name
    # The knobs, in the order iface.py fills them.
    iface = (mp.ROOT / "stack" / "iface.py").read_text()
    order = re.search(r"self\.knobs = array\(\"i\", \(([^)]*)\)\)", iface, re.S).group(1)
    order = [w.strip().split(".")[-1] for w in order.replace("\n", " ").split(",")]
    knobs = {k[2:]: int(v) for k, v in named.items() if k.startswith("K_")}
    want = {"MSS": "mss", "ACK_DELAY": "ack_delay_ms", "RTO_MIN": "rto_min_ms",
            "RTO_MAX": "rto_max_ms", "RTO_INITIAL": "rto_initial_ms",
            "KEEPALIVE": "keepalive_ms or 0", "IP_OFF": "ip_off", "IDENT": "0"}
    assert len(knobs) == len(order) == len(want), (knobs, order)
    for name, index in knobs.items():
        assert order[index] == want[name], (name, order)
