"""Last-resort launcher: any other file in the code directory, executed directly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from toolkit.environment import TrainingEnv
from toolkit.errors import CodeError
from toolkit.hookspecs import hookimpl
from toolkit.types import Command


@hookimpl(trylast=True)
def toolkit_launch(
    entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv
) -> Optional[Command]:
    path = code_dir / entry_point
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        raise CodeError(
            f"entry point {path} is not executable: make it executable (chmod +x), "
            f"or use a .py or .sh file"
        )
    return Command([str(path.resolve()), *args], cwd=code_dir, name="executable")
