"""The virtual clock: a queue of events in virtual time, run in order.

Nothing here knows about CPUs or tasks. An event is a function and its arguments,
due at a time in ns; events due at the same time run in the order they were
scheduled. Time only moves when the next event is taken, so a function that runs
"takes no time": whatever costs CPU time is modelled by scheduling its end later.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Engine:
    """The virtual clock (``now``, ns since the simulation started) and its events."""

    __slots__ = ("now", "_queue", "_seq", "_stopped")

    def __init__(self) -> None:
        self.now = 0
        self._queue: list[tuple[int, int, Callable[..., Any], tuple]] = []
        self._seq = 0
        self._stopped = False

    def at(self, time_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) at time_ns (ns; a time already past runs at the next step,
        at the current time). Raises nothing: an event cannot be taken back, so an
        event that may become stale carries a token its function checks."""
        self._seq += 1
        heapq.heappush(self._queue, (time_ns if time_ns > self.now else self.now, self._seq, fn, args))

    def clock(self) -> int:
        """The current virtual time (ns): what a policy's now_ns() reads in the simulator."""
        return self.now

    def stop(self) -> None:
        """End run() after the event running now; the clock stays at its time."""
        self._stopped = True

    def run(self, until_ns: int) -> None:
        """Run every event due up to until_ns (ns), in order, then leave the clock at
        until_ns, or where stop() was called. Exceptions from an event propagate (the
        clock stays at its time)."""
        queue = self._queue
        pop = heapq.heappop
        while queue and queue[0][0] <= until_ns:
            time_ns, _, fn, args = pop(queue)
            self.now = time_ns
            fn(*args)
            if self._stopped:
                return
        self.now = until_ns

    @property
    def pending(self) -> int:
        """Events not run yet."""
        return len(self._queue)
