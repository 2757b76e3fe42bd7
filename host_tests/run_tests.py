# Runs the core tests without pytest: on CPython, MicroPython unix and MicroPython WebAssembly.
# MIT licence.
#
#   micropython host_tests/run_tests.py [-v] [module ...]
#   node host_tests/wasm_run.mjs host_tests/run_tests.py [-v] [module ...]
#   python3 host_tests/run_tests.py [-v] [module ...]
#   micropython -X heapsize=300k host_tests/run_tests.py --profile board [module ...]
#
# Collects like pytest does by default (functions named test*, classes named Test* with
# methods named test*, each method on a fresh instance) so both see the same tests. Ends with
# the line "N passed, N failed" and exits 1 if anything failed.
#
# Fixture sizes (sizing.py): a MicroPython heap under 1 MiB (a board's) gets the "board"
# profile, which sizes the in-memory pipes and fixture Stacks to fit ~190 KiB; --profile host
# or --profile board forces one. The emulated Cortex-M boards (tools/mcu.py) run this file.
#
# MicroPython has no inspect, os.path or traceback module, hence the plain string and dir()
# work below.
import gc
import sys


def _add_paths():
    # Put host_tests/ and the repo root first on sys.path, found from this file's own path.
    path = __file__
    if not path.startswith("/"):
        import os

        path = os.getcwd() + "/" + path
    here = path[: path.rfind("/")]
    root = here[: here.rfind("/")]
    for p in (root, here):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


def _print_exc(e):
    # Tracebacks go to stdout so they stay next to their FAIL line.
    if hasattr(sys, "print_exception"):  # pragma: no cover (MicroPython)
        sys.print_exception(e, sys.stdout)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stdout)


def _has_init(cls):
    # MicroPython shows no __init__ at all on a class without one; CPython shows object's.
    init = getattr(cls, "__init__", None)
    return init is not None and init is not object.__init__


def _call_method(cls, name):
    if _has_init(cls):
        # pytest refuses to collect such classes; fail here too so nothing is silently lost.
        raise TypeError("test class %s defines __init__; use setup() instead" % cls.__name__)
    obj = cls()
    setup = getattr(obj, "setup", None)
    if setup is not None:
        setup()
    try:
        getattr(obj, name)()
    finally:
        teardown = getattr(obj, "teardown", None)
        if teardown is not None:
            teardown()


def _tests(module):
    # Yields (label, callable) in a fixed order: sorted names, not definition order.
    mname = module.__name__
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        if isinstance(obj, type):
            if name.startswith("Test"):
                for meth in sorted(dir(obj)):
                    if meth.startswith("test") and callable(getattr(obj, meth)):
                        yield (
                            "%s.%s.%s" % (mname, name, meth),
                            lambda c=obj, m=meth: _call_method(c, m),
                        )
        elif name.startswith("test") and callable(obj):
            yield "%s.%s" % (mname, name), obj


def labels(name):
    """The labels of module name's tests, in the order run() runs them."""
    return [label for label, _ in _tests(__import__(name))]


def run(names, verbose=False, profile=None, only=None):
    """Run the named test modules; return (passed, failed). profile: see sizing.py (None:
    chosen from the heap). It must be chosen before the modules are first imported.
    only: run just the test with this label (a board runs a heavy one on a fresh heap)."""
    import sizing

    sizing.use(profile or sizing.auto())
    if verbose:
        print("fixture profile: %s" % sizing.PROFILE)
    passed = failed = 0
    for mname in names:
        try:
            module = __import__(mname)
            tests = list(_tests(module))
        except Exception as e:
            failed += 1
            print("FAIL %s (import)" % mname)
            _print_exc(e)
            continue
        if only is not None:
            tests = [t for t in tests if t[0] == only]
            if not tests:
                failed += 1
                print("FAIL %s (no such test)" % only)
        for label, fn in tests:
            gc.collect()  # the unix port's default heap is only 2 MiB
            try:
                try:
                    fn()
                finally:
                    sizing.after_test()
            except Exception as e:
                failed += 1
                print("FAIL %s" % label)
                _print_exc(e)
            else:
                passed += 1
                if verbose:
                    print("ok %s" % label)
    return passed, failed


def main(argv):
    _add_paths()
    verbose = "-v" in argv
    profile = None
    names = []
    args = iter(argv)
    for a in args:
        if a == "--profile":
            profile = next(args, None)
        elif a != "-v":
            names.append(a)
    if not names:
        from host_tests import MODULES

        names = MODULES
    passed, failed = run(names, verbose, profile)
    print("%d passed, %d failed" % (passed, failed))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
