"""Launcher for shell scripts: ``/bin/sh script.sh args...``, each argument passed whole."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from toolkit.environment import TrainingEnv
from toolkit.hookspecs import hookimpl
from toolkit.types import Command


@hookimpl
def toolkit_launch(
    entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv
) -> Optional[Command]:
    if entry_point.endswith(".sh") and (code_dir / entry_point).is_file():
        return Command(["/bin/sh", entry_point, *args], cwd=code_dir, name="shell")
    return None
