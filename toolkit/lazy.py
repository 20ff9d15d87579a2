"""Standard-library modules loaded on first use, to keep ``train`` start-up short.

``tarfile``, ``zipfile`` (which pulls in bz2 and lzma), ``tempfile`` and ``concurrent.futures`` cost
tens of milliseconds to import and most jobs never need them (code baked into the image, nothing
to extract). The recipe is the one in the importlib documentation.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """The module ``name``, imported for real the first time an attribute is read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # `import concurrent.futures` elsewhere expects the attribute on the package
        setattr(importlib.import_module(parent), child, module)
    return module
