# Counters: RFC 4022 (TCP-MIB) names, plus the stack's own drops and pool events.
# SPDX-License-Identifier: MIT
#
# The counters are attributes of one Stats object: net.stats.tcpInSegs += 1 costs what any
# attribute costs. Their names, in order (and what each counts), are in statnames.py, read
# only when a Stats is made and when the counters are listed (items(), NAMES).

import sys as _sys


def _names():
    """Every counter's name, in order (a new list).

    statnames.py is imported for this and forgotten again (sys.modules and the package):
    from a .mpy file its 1.5 KB string would otherwise stay on the heap for ever, for what
    only Stats() and a listing of the counters read. Frozen or in ROMFS it costs no RAM.
    """
    from . import statnames

    names = statnames.TEXT.split()
    full = statnames.__name__  # "stack.statnames"
    dot = full.rfind(".")
    _sys.modules.pop(full, None)
    try:
        delattr(_sys.modules[full[:dot]], full[dot + 1:])
    except (KeyError, AttributeError):  # pragma: no cover - already gone
        pass
    return names


def __getattr__(name):
    # PEP 562: NAMES, the tuple of every counter's name in order, made when asked for.
    if name == "NAMES":
        return tuple(_names())
    if name == "_lazy":
        return True
    raise AttributeError(name)


# A MicroPython built without module __getattr__ would never call it: the tuple now.
if not getattr(_sys.modules.get(__name__), "_lazy", False):  # pragma: no cover
    NAMES = tuple(_names())


class Stats:
    """Counters as attributes (net.stats.tcpInSegs) and by name (net.stats["tcpInSegs"])."""

    def __init__(self):
        for name in _names():
            setattr(self, name, 0)

    def __getitem__(self, name):
        return getattr(self, name)

    def items(self):
        return [(name, getattr(self, name)) for name in _names()]

    def __repr__(self):
        return "Stats(%s)" % ", ".join("%s=%d" % kv for kv in self.items() if kv[1])
