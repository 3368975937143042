"""Pause Python's cyclic garbage collector while an export becomes dicts.

Why: parsing and mapping a 10-year export allocate about a million small dicts,
lists and strings that all stay alive until the import ends. Each time the number
of surviving objects grows by a quarter, CPython runs a full collection that walks
every one of them, and finds nothing: the rows and resources are trees without
reference cycles, freed by reference counting alone. Profiles of the benchmark
export showed these collections as two thirds of the mapping time (1.7 s of 2.4 s).

The pause is process-wide, so it is counted: nested or concurrent users (threads
of one server) re-enable the collector only when the last one leaves, and only if
it was enabled when the first one came in. Cyclic garbage made meanwhile by other
threads is collected then.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.was_enabled = False

    def enter(self) -> None:
        with self.lock:
            if self.users == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.users += 1

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.was_enabled:
                gc.enable()


_PAUSE = _Pause()


@contextmanager
def gc_paused() -> Iterator[None]:
    _PAUSE.enter()
    try:
        yield
    finally:
        _PAUSE.leave()
