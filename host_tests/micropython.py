# CPython stand-in for MicroPython's built-in `micropython` module. MIT licence.
#
# Lets every core module say `from micropython import const` on both interpreters. On
# MicroPython the built-in module always wins over this file, even with host_tests/ on
# sys.path, so this is only ever seen by CPython.


def const(x):
    # MicroPython inlines const() at compile time; on CPython a plain value does the same job.
    return x


def heap_lock():
    # CPython has no GC heap to lock: allocation-free checks only mean something on MicroPython.
    # The return values mirror MicroPython's (None, then the remaining lock depth).
    return None


def heap_unlock():
    return 0
