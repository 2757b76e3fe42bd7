# Freeze the stack and one board file into a custom MicroPython firmware.
# SPDX-License-Identifier: MIT
#
#     cd micropython/ports/rp2
#     make BOARD=W5100S_EVB_PICO FROZEN_MANIFEST=/path/to/repo/firmware/manifest.py \
#          STACK_BOARD=w5500_evb_pico
#
# See firmware/README.md. STACK_BOARD (environment or make variable) picks the file from
# boards/; the port's own frozen modules (asyncio, ...) stay in via the include below.
# boot.py, main.py and config.py stay on the filesystem, so they can be edited without a
# rebuild (`make deploy` copies them; with the stack frozen, only they need copying).

import os

# A port without a boards/manifest.py (ports/qemu, the emulated board) sets
# STACK_PORT_MANIFEST=0 (tools/emuboard.py does).
if os.environ.get("STACK_PORT_MANIFEST", "1") != "0":
    include("$(PORT_DIR)/boards/manifest.py")

board = os.environ.get("STACK_BOARD", "w5500_evb_pico")
# All of stack/ (link/ included: the host-only links cost flash, never RAM, unless imported).
package("stack", base_path="..")
package("boards", files=[board + ".py"], base_path="..")
