"""The policies that ship with scx_pyland, and loading a user's policy by name."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

from scx_pyland.policies.ceiling import CeilingPolicy
from scx_pyland.policies.fifo import FifoPolicy
from scx_pyland.policies.rustland import RustlandPolicy
from scx_pyland.policy import Policy

BUILTIN: dict[str, type[Policy]] = {"rustland": RustlandPolicy, "fifo": FifoPolicy,
                                    "ceiling": CeilingPolicy}


class PolicyLoadError(Exception):
    """A --policy that names no usable policy class; the message says why."""


def load_policy_class(spec: str, fresh: bool = False) -> type[Policy]:
    """A built-in name ('rustland', 'fifo', 'ceiling'), 'module:Class' or 'path/to/file.py:Class'.

    A file is read and compiled afresh on every call (never from a bytecode cache,
    which an edit within the same second can leave stale). With `fresh` (a reload),
    a module already imported is re-imported (importlib.reload); a built-in name
    always gives the same class. Raises PolicyLoadError, with a message a user can
    act on, whatever went wrong (a syntax error, an exception at import, no such
    class)."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name:
        raise PolicyLoadError(
            f"unknown policy {spec!r}: use one of {', '.join(BUILTIN)}, or MODULE:CLASS, or FILE.py:CLASS")
    try:
        module = _import(module_name, fresh)
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


def _import(module_name: str, fresh: bool = False) -> types.ModuleType:
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise PolicyLoadError(f"no policy file {module_name!r}")
        code = compile(path.read_bytes(), str(path), "exec")
        module = types.ModuleType(path.stem)
        module.__file__ = str(path)
        # In sys.modules while it runs, as an import would (dataclasses look it up
        # there); the module it replaces comes back if it fails.
        previous = sys.modules.get(path.stem)
        sys.modules[path.stem] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            if previous is None:
                sys.modules.pop(path.stem, None)
            else:
                sys.modules[path.stem] = previous
            raise
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would
    if fresh and module_name in sys.modules:
        return importlib.reload(sys.modules[module_name])
    return importlib.import_module(module_name)


def policy_file(spec: str) -> Path | None:
    """The file a policy's code comes from, to watch for changes (--watch): the
    FILE of FILE.py:CLASS, or the imported module's file for MODULE:CLASS; None for
    a built-in name or a module without a file."""
    if spec in BUILTIN:
        return None
    module_name = spec.rpartition(":")[0]
    if module_name.endswith(".py"):
        return Path(module_name)
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return Path(file) if file else None
