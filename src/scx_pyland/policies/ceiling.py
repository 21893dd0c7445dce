"""ceiling: benchmark only. The fifo policy's worker cycle run by the extension in
C++ (``Scheduler.run_fifo_ceiling``), with no Python in the loop: the same BPF
object, rings and decisions as ``fifo``, so the difference between the two is the
cost of Python. It measures what the transport can do; it is not a policy to
write your own from.

Without a kernel (replays, tests) it behaves exactly as fifo.
"""

from __future__ import annotations

from scx_pyland.policies.fifo import FifoPolicy


class CeilingPolicy(FifoPolicy):
    name = "ceiling"
    #: The worker runs Scheduler.run_fifo_ceiling instead of enqueue/dispatch.
    runs_in_cxx = True
