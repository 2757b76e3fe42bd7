# boot.py: runs first at every reset (and soft reset), before main.py.
# SPDX-License-Identifier: MIT
#
# Keep it small and safe: a failure here happens before the REPL tools can reach the board.
# The network is brought up in main.py, so a broken config still leaves a working REPL.

import gc

gc.collect()
