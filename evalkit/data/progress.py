"""Progress of long steps: a hook the command line turns into a progress bar.

The library never prints. A long step runs inside :func:`stage`; whoever wants to show
or time the steps installs a listener with :func:`listening` (the CLI draws a bar on a
terminal, ``benchmarks/national.py`` records each stage's time). With no listener a
stage costs a function call.

A listener is any object with ``start(name, total)``, ``advance(amount)`` and
``finish(name, seconds)``; ``total`` is None for a step of unknown length.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

_listeners: list = []


@contextmanager
def listening(listener):
    """Install ``listener`` for the steps run inside the ``with`` block."""
    _listeners.append(listener)
    try:
        yield listener
    finally:
        _listeners.remove(listener)


@contextmanager
def stage(name: str, total: int | None = None):
    """Run a named step; yields ``advance(amount)`` to report work done out of ``total``."""
    listeners = list(_listeners)
    started = time.perf_counter()
    for listener in listeners:
        listener.start(name, total)

    def advance(amount: int = 1) -> None:
        for listener in listeners:
            listener.advance(amount)

    try:
        yield advance
    finally:
        seconds = time.perf_counter() - started
        for listener in listeners:
            listener.finish(name, seconds)


class StageTimes:
    """A listener that records each stage's wall time, in order (for benchmarks)."""

    def __init__(self):
        self.times: list[tuple[str, float]] = []

    def start(self, name, total):
        pass

    def advance(self, amount):
        pass

    def finish(self, name, seconds):
        self.times.append((name, seconds))
