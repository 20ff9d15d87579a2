"""Standard-library modules loaded on first use, to keep ``train`` start-up short.

``tarfile``, ``zipfile`` (which pulls in bz2 and lzma), ``tempfile``, ``shutil`` and ``random``
cost milliseconds to import and most jobs never need them (code baked into the image, nothing
to extract). ``lazy(name)`` is a stand-in that imports the module the first time one of its
attributes is read. It is a plain object, not a module in ``sys.modules`` (as
importlib.util.LazyLoader would make): finding a module's spec ahead of time costs most of what
the import would, and pluggy's look at a plugin's attributes (``isinstance``) would load such a
module at once.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Lazy:
    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """The module ``name``, imported for real the first time an attribute is read."""
    return _Lazy(name)
