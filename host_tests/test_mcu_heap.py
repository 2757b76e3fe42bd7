# The heap tool (tools/mcu_heap.py) must not rot: on the emulated board, its --tiny figures
# (`import stack` frozen, from a ROMFS image, from .mpy files) come out, positive and from
# the right place. Not budgets: no figure is compared with issue 14's targets here (make bench
# prints those). CPython only (pytest); no root. MIT licence.
#
# Three QEMU boots (one QEMU at a time, always killed), about 30 s once the two firmwares
# are built (cached; a first build takes about 25 s each). A clone without ../shared (no
# pinned MicroPython source) or without QEMU skips this module in one line, as test_mcu.py
# does; with STACK_REQUIRE_ALL=1 (CI) that fails instead.
import os
import sys

import pytest

import mp

sys.path.insert(0, os.path.join(str(mp.ROOT), "tools"))
import mcu_heap  # noqa: E402

_problem = mcu_heap.prerequisites()
if _problem:
    pytest.skip("heap on the emulated board: " + _problem, allow_module_level=True)


def test_tiny_run_gives_every_import_figure():
    lines = []
    res = mcu_heap.measure(mcu_heap.TINY, log=lines.append)
    for key in ("frozen", "romfs", "mpy"):
        # _import() checked that stack came from the frozen modules, /rom/lib or /lib.
        held = res["heap_import_stack_" + key]
        free = res["free_after_import_" + key]
        largest = res["largest_block_after_import_" + key]
        assert isinstance(held, int) and held > 0, (key, res)
        assert 0 < largest <= free < 190 * 1024, (key, res)
    assert len(lines) == 3, lines  # one progress line per way of loading it
    print("emulated M3, heap kept by import stack: frozen %d B, ROMFS %d B, .mpy %d B" % (
        res["heap_import_stack_frozen"], res["heap_import_stack_romfs"],
        res["heap_import_stack_mpy"]))


def test_cli_skips_in_one_line_without_qemu(monkeypatch, capsys):
    monkeypatch.setattr(mcu_heap, "prerequisites", lambda: "missing qemu-system-arm")
    assert mcu_heap.main(["--tiny"]) == 2
    err = capsys.readouterr().err
    assert err == "mcu_heap: skipped: missing qemu-system-arm\n", err
