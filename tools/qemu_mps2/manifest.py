# What the emulated board's firmware freezes (tools/emuboard.py builds it). MIT licence.
#
# firmware/manifest.py as a user's board gets it (all of stack/, the board file from
# STACK_BOARD=qemu_mps2), plus what ports/qemu lacks: asyncio (the port has no C _asyncio,
# so task.py too) and _boot.py (the RAM-disk filesystem; emuboard.c runs it at every reset).
import os

include(os.path.join(os.environ["STACK_ROOT"], "firmware", "manifest.py"))
package("asyncio", base_path="$(MPY_DIR)/extmod", opt=3)
module("_boot.py")
