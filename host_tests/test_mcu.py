# The core test modules on bare-metal MicroPython, on QEMU's emulated Cortex-M boards.
# CPython only (pytest). MIT licence.
#
# tools/mcu.py builds the firmware (cached by its inputs) with stack/ frozen as boards get it
# (viper checksum compiled for armv6m) and the core tests frozen beside it, then runs each
# module of host_tests.MODULES after a soft reset, one QEMU at a time, killed at the end.
# One pytest test per module per build, so a failure names both.
#
# Builds run here (tools/mcu.py variants):
#   m0-test   micro:bit machine, Cortex-M0 (the RP2040's ARMv6-M), native emitter, 2 MiB heap
#   m0-board  the same CPU with a 190 KiB heap, as an RP2040 leaves for Python: the fixtures
#             take the "board" profile (host_tests/sizing.py)
#   m3-test   mps2-an385, Cortex-M3, 2 MiB heap
# MCU_VARIANTS=m0-test,m3-board,... picks others.
#
# Needs qemu-system-arm and gcc-arm-none-eabi (tools/need.sh installs them) and the pinned
# MicroPython source in ../shared/third_party/ (or MICROPYTHON_SRC=). A clone without
# ../shared skips this module in one line; with STACK_REQUIRE_ALL=1 (CI) that fails instead.
import os
import re
import sys

import pytest

from host_tests import MODULES

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
import mcu  # noqa: E402

VARIANTS = tuple(v for v in os.environ.get("MCU_VARIANTS", "m0-test,m0-board,m3-test")
                 .split(",") if v)

# Known failures: (heap, test label) -> why, where heap is "board" (the 190 KiB builds) or
# "test" (2 MiB). Each fails on those builds for a reason the fixture profile cannot fix: a
# test that cannot fit the heap, or a stack bug (none so far). A listed test that passes
# fails the run too, so the list can only shrink. Empty: the whole core suite passes on
# every build, the 190 KiB ones included.
KNOWN_FAILURES = {}

_problem = mcu.prerequisites()
if _problem:
    pytest.skip("emulated Cortex-M boards: " + _problem, allow_module_level=True)

_results = {}  # variant -> {module: (output, seconds)}, or the MCUError that stopped it


def _run(variant):
    if variant not in _results:
        try:
            fw = mcu.build(variant, quiet=True)
            _results[variant] = {m: (out, dt) for m, out, dt
                                 in mcu.run_modules(variant, MODULES, fw=fw)}
        except mcu.MCUError as e:
            _results[variant] = e
    res = _results[variant]
    if isinstance(res, mcu.MCUError):
        pytest.fail("%s: %s" % (variant, res), pytrace=False)
    return res


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_core_module_on_mcu(variant, module):
    out, dt = _run(variant)[module]
    res = mcu.parse_result(out)
    failed = re.findall(r"^FAIL (\S+)", out, re.M)
    heap = "board" if mcu.VARIANTS[variant]["heap"] < mcu.HEAP_TEST else "test"
    known = {label for (h, label) in KNOWN_FAILURES if h == heap
             and label.split(".")[0] == module}
    unexpected = [f for f in failed if f not in known]
    fixed = sorted(known - set(failed))
    if res is None or res[0] < 1 or unexpected or fixed or res[1] != len(failed):
        why = []
        if unexpected:
            why.append("failed: " + ", ".join(unexpected))
        if fixed:
            why.append("listed in KNOWN_FAILURES but passed (remove them): " + ", ".join(fixed))
        if res is None:
            why.append("no 'N passed, N failed' line (crash or timeout)")
        pytest.fail("%s on %s (%.1f s): %s\n--- board output\n%s"
                    % (module, variant, dt, "; ".join(why) or "no test ran", out),
                    pytrace=False)
