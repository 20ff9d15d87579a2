"""Small value types passed between the core and plugins.

They are immutable records (``typing.NamedTuple``: a frozen dataclass costs about ten times as
much to define, on every job start). Make a changed copy with ``._replace(cwd=...)``.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Mapping, NamedTuple, Optional, Sequence

_NOTHING: Mapping = MappingProxyType({})


class Command(NamedTuple):
    """What a launcher wants run: the core decides how (process group, signals, logs, exit code).

    ``argv`` is executed as given, never re-split by a shell. ``env`` is added on top of the
    toolkit's SM_* variables; ``cwd`` defaults to the code directory.
    """

    argv: Sequence[str]
    cwd: Optional[Path] = None
    env: Mapping[str, str] = _NOTHING
    name: str = ""


class Outcome(NamedTuple):
    """How a training run ended, given to ``toolkit_after_training``."""

    exit_code: int
    command: Optional[Command]
    failure: str = ""
    durations: Mapping[str, float] = _NOTHING

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0
