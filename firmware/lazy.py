# Code kept in the ~100 KB heap only while it runs: a module imported for a call (or a mode)
# and forgotten afterwards, so the collector takes its bytecode back. app/, drivers/ and net/
# use it; it imports nothing of theirs.
import gc
import sys


def call(module, function, *args):
    """module.function(*args), module (a dotted name) loaded for the call only.

    For an async function this returns the coroutine, and the module is dropped before its
    body runs: the caller collects after awaiting it (app/main.py does for app.boot).
    """
    __import__(module)
    try:
        return getattr(sys.modules[module], function)(*args)
    finally:
        drop(module)
        # At once, so what the caller allocates next reuses the module's blocks rather than
        # landing beyond them: without it the memory test's courier pickup ran out at 100K.
        gc.collect()


def drop(module):
    """Forget a loaded module: its sys.modules entry and its name in its package."""
    sys.modules.pop(module, None)
    package, _, name = module.rpartition(".")
    pkg = sys.modules.get(package)
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)
