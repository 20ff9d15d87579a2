"""How a stand-in module on this path gives way to the real AWS package (standard library only).

On PYTHONPATH (a ``train`` / ``process`` child) this folder comes before site-packages, so a module
here is found first even when the real package is installed; on ``sys.path`` in ``serve`` or through
the images' ``.pth`` file it comes last, but an editable install's import finder is asked after it.
So when imported, a module here looks for ``name`` everywhere else the import system would look
(every other ``sys.path`` entry and every other meta path finder, editable installs included); if
found, the real package is loaded in its place. Only when nothing else provides ``name`` is the
toolkit's stand-in (``toolkit/compat/<name>/``) loaded, under the AWS package's own name, so
``from <name> import x`` and ``import <name>.x`` behave as with the real package.

This module imports nothing of the toolkit, so a real package still wins in a process whose Python
does not have the toolkit installed.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
STAND_INS = os.path.dirname(HERE)  # toolkit/compat


def _elsewhere(path: list) -> list:
    """``path`` without this folder (an empty entry is the current folder)."""
    return [p for p in path if os.path.abspath(p or os.curdir) != HERE]


def real_spec(name: str) -> Optional[Any]:
    """The spec the import system would find for ``name`` if this folder were not on the path."""
    for finder in sys.meta_path:
        if getattr(finder, "toolkit_stand_in", False):
            continue
        if finder is importlib.machinery.PathFinder:
            spec = finder.find_spec(name, _elsewhere(sys.path))
        else:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, None) if find_spec is not None else None
        if spec is not None:
            return spec
    return None


def _stand_in_spec(name: str) -> Any:
    folder = os.path.join(STAND_INS, name)
    if importlib.util.find_spec("toolkit") is None:
        raise ImportError(
            f"No module named {name!r}: sagemaker-toolkit's stand-in for it needs the Python that has "
            f"sagemaker-toolkit installed, and {sys.executable} does not; run the script with that Python "
            f"or install {name.replace('_', '-')} for this one",
            name=name,
        )
    return importlib.util.spec_from_file_location(
        name, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )


def take_over(name: str) -> ModuleType:
    """Replace the module being imported as ``name`` by the real package, or else the stand-in."""
    spec = real_spec(name) or _stand_in_spec(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the import system returns what sys.modules holds once this returns
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
