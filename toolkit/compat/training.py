"""How the user's training process gets the stand-ins, and how a stand-in says what it does not cover.

``train`` appends ``importpath/`` to the child's PYTHONPATH (after the user's own entries), so
``import sagemaker_training`` or ``import sagemaker_containers`` works in a script written for the AWS
containers. A real installed package always wins: see ``importpath/_toolkit_stand_in.py``. Nothing
here runs in ``train`` itself beyond building that one path string.

A stand-in covers what public training scripts use (docs/compatibility.md lists it); any other name
raises ``NotCovered``, an ImportError that names the stand-in and what to do instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import ModuleSpec
from typing import Any, Callable, Collection, Optional, Sequence

IMPORT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "importpath")
# what to do instead, per package, when a name is not covered
ADVICE = {
    "sagemaker_training": "add sagemaker-training to the job's requirements.txt (an installed sagemaker_training is "
                          "always used instead of the stand-in) or read the SM_* variables instead",
    "sagemaker_containers": "sagemaker-containers itself does not import on Python 3.10 or later: use "
                            "sagemaker_training.environment or the SM_* variables instead",
}


def pythonpath(existing: Optional[str]) -> str:
    """``existing`` with the stand-ins' folder appended (once)."""
    entries = [p for p in (existing or "").split(os.pathsep) if p]
    if IMPORT_DIR not in entries:
        entries.append(IMPORT_DIR)
    return os.pathsep.join(entries)


class NotCovered(ImportError):
    """A name of an AWS package that the toolkit's stand-in does not provide."""


def not_covered(qualified: str, covered: Collection[str] = ()) -> NotCovered:
    root = qualified.split(".", 1)[0]
    has = f" (it has: {', '.join(sorted(covered))})" if 0 < len(covered) <= 12 else ""
    advice = ADVICE.get(root, f"install the real {root} in the job (it is always used instead of the stand-in)")
    return NotCovered(f"{qualified} is not covered by sagemaker-toolkit's stand-in for {root}{has}; {advice} "
                      f"(docs/compatibility.md lists what is covered)", name=qualified)


def module_getattr(module: str, covered: Collection[str] = (), submodules: Sequence[str] = ()) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for a stand-in: submodules load on first use, other names are
    ``NotCovered``. Dunder names stay plain AttributeErrors, as tools probing a module expect."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if name in submodules:
            return importlib.import_module(f"{module}.{name}")
        raise not_covered(f"{module}.{name}", covered or submodules)

    return __getattr__


class _Loader:
    def __init__(self, error: NotCovered) -> None:
        self.error = error

    def create_module(self, spec: ModuleSpec) -> None:
        raise self.error

    def exec_module(self, module: Any) -> None:  # pragma: no cover - create_module always raises
        raise self.error


class MissingSubmodules:
    """Last on ``sys.meta_path``: ``import <stand-in>.<x>`` for an ``x`` the stand-in does not have
    fails with ``NotCovered`` rather than a bare ModuleNotFoundError."""

    toolkit_stand_in = True  # importpath/_toolkit_stand_in.py skips this finder

    def __init__(self) -> None:
        self.roots: dict[str, Collection[str]] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[ModuleSpec]:
        parent = fullname.rpartition(".")[0]
        if parent not in self.roots:
            return None
        return ModuleSpec(fullname, _Loader(not_covered(fullname, self.roots[parent])))


def guard(package: str, submodules: Sequence[str]) -> Callable[[str], Any]:
    """Call from a stand-in package's ``__init__``: returns its ``__getattr__`` and makes imports of
    submodules it does not have fail with ``NotCovered``."""
    finder = next((f for f in sys.meta_path if isinstance(f, MissingSubmodules)), None)
    if finder is None:
        finder = MissingSubmodules()
        sys.meta_path.append(finder)
    if not package.startswith("toolkit."):  # loaded under the AWS package's own name
        finder.roots[package] = submodules
    return module_getattr(package, submodules=submodules)
