"""scx_pyland: a Linux sched_ext CPU scheduler whose policy is written in Python."""

from scx_pyland._version import __version__
