"""The policies that ship with scx_pyland, and loading a user's policy by name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from scx_pyland.policies.ceiling import CeilingPolicy
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import Policy

BUILTIN: dict[str, type[Policy]] = {"rustland": RustlandPolicy, "fifo": FifoPolicy,
                                    "ceiling": CeilingPolicy}


class PolicyLoadError(Exception):
    """A --policy that names no usable policy class; the message says why."""


def load_policy_class(spec: str) -> type[Policy]:
    """A built-in name ('rustland', 'fifo', 'ceiling'), 'module:Class' or 'path/to/file.py:Class'."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name:
        raise PolicyLoadError(
            f"unknown policy {spec!r}: use one of {', '.join(BUILTIN)}, or MODULE:CLASS, or FILE.py:CLASS")
    try:
        module = _import(module_name)
    except PolicyLoadError:
        raise
    except Exception as err:
        raise PolicyLoadError(f"cannot import policy module {module_name!r}: "
                              f"{type(err).__name__}: {err}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PolicyLoadError(f"policy module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise PolicyLoadError(f"{spec!r} is not a subclass of scx_pyland.policy.Policy")
    return cls


def _import(module_name: str):
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise PolicyLoadError(f"no policy file {module_name!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would
    return importlib.import_module(module_name)
