"""Launcher for Python entry points: a ``.py`` file (nested paths fine) or a module name."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from toolkit.environment import TrainingEnv
from toolkit.hookspecs import hookimpl
from toolkit.types import Command

MODULE_NAME = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"  # compiled on first use: most entry points are files


def _is_module(name: str, code_dir: Path) -> bool:
    if not re.fullmatch(MODULE_NAME, name):
        return False
    base = code_dir.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()


@hookimpl
def toolkit_launch(
    entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv
) -> Optional[Command]:
    if entry_point.endswith(".py") and (code_dir / entry_point).is_file():
        return Command([sys.executable, entry_point, *args], cwd=code_dir, name="python")
    if _is_module(entry_point, code_dir):
        return Command([sys.executable, "-m", entry_point, *args], cwd=code_dir, name="python -m")
    return None
