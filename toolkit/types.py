"""Small value types passed between the core and plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence


@dataclass(frozen=True)
class Command:
    """What a launcher wants run: the core decides how (process group, signals, logs, exit code).

    ``argv`` is executed as given, never re-split by a shell. ``env`` is added on top of the
    toolkit's SM_* variables; ``cwd`` defaults to the code directory.
    """

    argv: Sequence[str]
    cwd: Optional[Path] = None
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class Outcome:
    """How a training run ended, given to ``toolkit_after_training``."""

    exit_code: int
    command: Optional[Command]
    failure: str = ""
    durations: Mapping[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0
