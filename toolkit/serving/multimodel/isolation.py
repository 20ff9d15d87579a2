"""Importing one model's code without seeing another model's modules of the same name.

Two models whose code folders both have ``inference.py`` and a sibling ``util.py`` must each get their
own. Python has one ``sys.modules``, so a model's code is imported under a lock with its folder first
on ``sys.path`` and with any loaded module of a name the folder defines hidden; afterwards the
modules that came from the folder are moved out of ``sys.modules`` (the model's functions keep them
alive through their globals) and the folder is taken off ``sys.path``.

Limits: an ``import util`` that runs later, inside a handler function at request time, no longer
finds the model's folder (import siblings at the top of inference.py or in model_fn); packages
installed from a model's requirements.txt are shared by every model (two models cannot use two
versions of one package).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Optional

_LOCK = threading.Lock()


def defined_names(folder: Path) -> set[str]:
    """The top-level module and package names ``folder`` provides."""
    names = set()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return names
    for entry in entries:
        if entry.suffix == ".py" and entry.is_file():
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
    return names


def _owned(name: str, names: set[str]) -> bool:
    return name.split(".", 1)[0] in names


def _from(module: ModuleType, folder: str) -> bool:
    """Whether ``module`` was loaded from a file (or is a package) inside ``folder``."""
    where = getattr(module, "__file__", None)
    if where:
        return str(Path(where).resolve()).startswith(folder)
    paths = getattr(module, "__path__", None) or []
    return any(str(Path(p).resolve()).startswith(folder) for p in paths)


@contextmanager
def isolated_imports(code_dir: Optional[Path]) -> Iterator[dict[str, ModuleType]]:
    """Import inside the block as if ``code_dir`` were the only code folder; yields the modules
    that came from it (filled in when the block ends), which belong to the model from then on."""
    moved: dict[str, ModuleType] = {}
    if code_dir is None:
        yield moved
        return
    folder = str(code_dir.resolve())
    prefix = folder.rstrip("/") + "/"
    names = defined_names(code_dir)
    with _LOCK:
        hidden = {n: m for n, m in sys.modules.items() if _owned(n, names)}
        for name in hidden:
            del sys.modules[name]
        sys.path.insert(0, folder)
        try:
            yield moved
        finally:
            for name, module in list(sys.modules.items()):
                if module is not None and (_owned(name, names) or _from(module, prefix)):
                    moved[name] = sys.modules.pop(name)
            while folder in sys.path:
                sys.path.remove(folder)
            for other in (str(code_dir), prefix):
                while other in sys.path:
                    sys.path.remove(other)
            sys.modules.update(hidden)
