"""The policies that ship with scx_pyland."""

from scx_pyland.policies.fifo import FifoPolicy

BUILTIN = {"fifo": FifoPolicy}
