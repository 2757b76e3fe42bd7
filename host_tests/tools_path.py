# Lets tests import modules from tools/ (bench.py). MIT licence.

import importlib
import sys

import mp

TOOLS = mp.ROOT / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
bench = importlib.import_module("bench")
