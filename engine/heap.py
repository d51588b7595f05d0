"""The cyclic garbage collector, settled once a process has started.

What a process builds at start (modules, pydantic models, XSD schemas, compiled XPath and
regular expressions, connection pools, pipelines) lives as long as the process, yet every
collection of the oldest generation walked all of it again: measured on the 2-core VM
(``bench/mllp_ingest.py``), four such collections in a run took 253 ms, the longest 90 ms,
during which no sender got an ACK. :func:`settle` freezes what exists once startup is done
(``gc.freeze``: moved to a generation the collector never walks; it is still freed if it
becomes garbage and the process ends) and raises the youngest generation's threshold, so that
the many short-lived objects of each message (parsed segments, rows) are collected in fewer,
equally short passes.
"""

from __future__ import annotations

import gc

#: Allocations (net of frees) between two collections of the youngest generation (CPython's
#: default: 700).
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, freeze what is left, and collect the young generation less often.
    Called again (a reload), it freezes what was built since."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
