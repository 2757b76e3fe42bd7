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


def test_armv6m_native_code_has_no_long_jumps(tmp_path):
    tool = mp.mpy_cross_cmd()
    checked = []
    for src in _sources():
        if not NATIVE.search(src.read_text()):
            continue
        rel = src.relative_to(mp.ROOT)
        out = tmp_path / (str(rel).replace("/", "__") + ".mpy")
        subprocess.run([tool, "-march=armv6m", "-o", str(out), str(rel)], cwd=mp.ROOT,
                       check=True, capture_output=True)
        assert _LONG_JUMP not in out.read_bytes(), (
            f"{rel}: a native function over 2 KB of armv6m code (a long jump): split it")
        checked.append(rel)
    assert any(p.name == "_checksum_viper.py" for p in checked), checked
    # The pattern is what the emitter writes: a function of 300 branches has it.
    big = tmp_path / "big.py"
    big.write_text("import micropython\n@micropython.viper\ndef f(buf) -> int:\n"
                   "    p = ptr8(buf)\n" + "".join(
                       "    if p[%d] == %d:\n        return %d\n" % (i % 50, i % 200, i)
                       for i in range(300)) + "    return 0\n")
    subprocess.run([tool, "-march=armv6m", "-o", str(tmp_path / "big.mpy"), str(big)],
                   check=True, capture_output=True)
    assert _LONG_JUMP in (tmp_path / "big.mpy").read_bytes()
