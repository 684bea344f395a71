"""A pause of the cycle collector around synchronous work that allocates a great deal.

Parsing a request of 1,000 events, or transforming 100, makes tens of thousands of objects;
each allocation counts toward a collection, and a collection of the older generations walks
every object the process keeps (the sandbox's received events, the gateway's hash caches).
Paused for the duration of one synchronous step (nothing else runs meanwhile on the event
loop), the collector runs once afterwards instead of dozens of times during it, so nothing
piles up.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:  # left off if someone else turned it off
            gc.enable()
