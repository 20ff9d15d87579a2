"""Makes the stand-ins importable by name in the serve process: ``import sagemaker_inference`` in the
user's inference.py gets ``toolkit/compat/sagemaker_inference`` when the real package is not installed.

``install()`` appends ``StandInFinder`` to ``sys.meta_path``. Being last, it is asked only after the
normal import system found nothing, so an installed sagemaker-inference always wins, and nothing is
imported until the user's code imports it. Its submodules are then found in the stand-in's folder; one
the stand-in does not have fails with an ImportError that names the stand-in and says what to do.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any, Optional, Sequence

HERE = Path(__file__).resolve().parent

# the top-level names this finder serves, and what to install for the real package
STAND_INS = {"sagemaker_inference": "sagemaker-inference"}

MARKER = "__toolkit_stand_in__"


def not_provided(name: str) -> str:
    """The one-line reason a name of a real package is missing from its stand-in."""
    top = name.partition(".")[0]
    return (f"toolkit's stand-in for {top} does not provide {name}; pip install {STAND_INS.get(top, top)} "
            f"to use the real one (see docs/compatibility.md)")


class StandInFinder:
    """A meta path finder for the packages in ``STAND_INS``, meant to be the last one."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Any = None) -> Optional[ModuleSpec]:
        top, _, rest = fullname.partition(".")
        if top not in STAND_INS:
            return None
        if not rest:
            folder = HERE / top
            return importlib.util.spec_from_file_location(top, folder / "__init__.py",
                                                          submodule_search_locations=[str(folder)])
        if getattr(sys.modules.get(top), MARKER, False):
            # a plain ImportError: `from pkg import name` turns a ModuleNotFoundError into its own message
            raise ImportError(not_provided(fullname), name=fullname)
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached (importlib.invalidate_caches calls this)."""


def install(meta_path: Optional[list] = None) -> None:
    """Append the finder to ``meta_path`` (``sys.meta_path``) unless it is there already."""
    finders = sys.meta_path if meta_path is None else meta_path
    if not any(isinstance(f, StandInFinder) for f in finders):
        finders.append(StandInFinder())
