"""The one way the stand-ins for sagemaker_inference, sagemaker_training and sagemaker_containers
become importable, and the one way a stand-in says what it does not cover.

``importpath/`` holds one small redirect module per AWS package name and nothing else. It goes on
the import path after everything else, so a user's own module of that name wins:

- ``serve`` appends it to ``sys.path`` (``add_to_sys_path``) just before it imports inference.py;
- ``train`` and ``process`` append it to their child's PYTHONPATH (``pythonpath``);
- the reference images also name it in a ``.pth`` file, for the jobs that bypass ``train`` (SDK v3).

A redirect module, when imported, loads the real package if one is importable from anywhere else
(``importpath/_toolkit_stand_in.py``), else the stand-in (``toolkit/compat/<name>/``) under the AWS
package's own name. Nothing is imported until the user's code imports the name; ``train``,
``process`` and ``serve`` themselves only add a path string.

A stand-in covers what public code uses (docs/compatibility.md lists it); any other name raises
``NotCovered``, an ImportError that names the stand-in and what to do instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import ModuleSpec
from typing import Any, Callable, Collection, Optional, Sequence

IMPORT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "importpath")
DOCS = "docs/compatibility.md"
# per package: what to do instead when a name is not covered, and the section listing what is covered
ADVICE = {
    "sagemaker_inference": ("pip install sagemaker-inference to use the real one (an installed package always wins)",
                            "the-sagemaker_inference-module"),
    "sagemaker_training": ("add sagemaker-training to the job's requirements.txt to use the real one (an installed "
                           "package always wins), or read the SM_* variables",
                           "the-sagemaker_training-and-sagemaker_containers-modules"),
    "sagemaker_containers": ("sagemaker-containers does not import on Python 3.10 or later: use "
                             "sagemaker_training.environment or the SM_* variables",
                             "the-sagemaker_training-and-sagemaker_containers-modules"),
}


def pythonpath(existing: Optional[str]) -> str:
    """``existing`` (a PYTHONPATH value) with the stand-ins' folder appended (once): for a child process."""
    entries = [p for p in (existing or "").split(os.pathsep) if p]
    if IMPORT_DIR not in entries:
        entries.append(IMPORT_DIR)
    return os.pathsep.join(entries)


def add_to_sys_path(path: Optional[list[str]] = None) -> None:
    """Append the stand-ins' folder to ``path`` (``sys.path``) unless it is there already: for this process."""
    entries = sys.path if path is None else path
    if IMPORT_DIR not in entries:
        entries.append(IMPORT_DIR)


class NotCovered(ImportError):
    """A name of an AWS package that the toolkit's stand-in does not provide."""


def not_covered(qualified: str, covered: Collection[str] = ()) -> NotCovered:
    """The one error for a name a stand-in does not have: which stand-in, what it has, what to do."""
    root = qualified.split(".", 1)[0]
    has = f" (it has: {', '.join(sorted(covered))})" if 0 < len(covered) <= 12 else ""
    advice, section = ADVICE.get(root, (f"install the real {root} (it is always used instead of the stand-in)", ""))
    where = f"{DOCS}#{section}" if section else DOCS
    return NotCovered(f"{qualified} is not covered by sagemaker-toolkit's stand-in for {root}{has}; {advice}; "
                      f"see {where}", name=qualified)


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

    def invalidate_caches(self) -> None:
        """Nothing cached (importlib.invalidate_caches calls this)."""


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
