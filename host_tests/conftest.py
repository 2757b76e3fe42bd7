# pytest glue for host_tests/. MIT licence.
#
# Core test modules are written for MicroPython too, so they import helpers by bare name
# (`import testing`, `from micropython import const`) and never import pytest. This file makes
# pytest see them the way run_tests.py does.
import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
# host_tests/ first (helpers), then the repo root (`import stack`, which gives CPython const()).
for _p in (_ROOT, _HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

REQUIRE_ALL = os.environ.get("STACK_REQUIRE_ALL") == "1"


def pytest_configure(config):
    # pytest silently ignores Test* classes with __init__ (only a warning); run_tests.py
    # would run them. Make it an error so both runners see the same tests.
    config.addinivalue_line("filterwarnings", "error::pytest.PytestCollectionWarning")


@pytest.fixture(autouse=True)
def _core_setup(request):
    # Core test classes use setup()/teardown(), which run_tests.py also calls; pytest itself
    # only knows setup_method().
    obj = request.instance
    if obj is not None and hasattr(obj, "setup"):
        obj.setup()
    yield
    if obj is not None and hasattr(obj, "teardown"):
        obj.teardown()


def _forbid_skip(report):
    # With STACK_REQUIRE_ALL=1 (CI), a test skipped for a missing tool or permission has not
    # passed: report it as failed. Expected failures (xfail) are left alone.
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but STACK_REQUIRE_ALL=1 forbids skips: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    return _forbid_skip((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    # Module-level pytest.skip()/importorskip() skip at collection, not in a test.
    return _forbid_skip((yield))
