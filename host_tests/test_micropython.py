# Runs every core test module (host_tests.MODULES) under MicroPython unix and WebAssembly.
# MIT licence.
import re

import mp
import pytest

from host_tests import MODULES

RUNNERS = {"unix": mp.run_unix, "wasm": mp.run_wasm}


@pytest.mark.parametrize("port", sorted(RUNNERS))
@pytest.mark.parametrize("module", MODULES)
def test_core_module(module, port):
    proc = RUNNERS[port]("host_tests/run_tests.py", module)
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", last)
    if proc.returncode != 0 or not m or m.group(2) != "0" or int(m.group(1)) < 1:
        pytest.fail(
            f"{module} on {port}: exit {proc.returncode}, last line {last!r}\n"
            f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}",
            pytrace=False,
        )
