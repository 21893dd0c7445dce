"""scx_pyland: a Linux sched_ext CPU scheduler whose policy is written in Python."""

__version__ = "0.1.0"
