"""``toolkit local clean``: remove job folders (and the job environments) from the work folder.

What counts as a job is what the emulator writes there: a training job's folder with its
``<name>.json`` beside it, an endpoint's or transform's folder (one with a ``model`` folder), and
the per-job environments under ``.venvs``. Anything else in the work folder is left alone, so a
work folder shared with other files is safe to clean.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from toolkit.errors import ConfigError
from toolkit.local.channels import make_writable
from toolkit.local.progress import human_bytes

VENVS = ".venvs"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (links not followed, each file counted once)."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def parse_age(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare number is days) -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise ConfigError(f"--older-than {text!r}: expected a number and a unit, e.g. 30m, 12h, 7d or 2w")
    return float(match.group(1)) * UNITS[match.group(2) or "d"]


@dataclass(frozen=True)
class Entry:
    """One thing the emulator made: its paths, its name, when it was last changed."""

    name: str
    paths: tuple[Path, ...]
    mtime: float

    @property
    def bytes(self) -> int:
        return sum(folder_bytes(p) if p.is_dir() else p.stat().st_size for p in self.paths if p.exists())


def _is_job_folder(path: Path) -> bool:
    if (path.parent / f"{path.name}.json").is_file():
        return True
    if (path / "model").is_dir():
        return True
    return any((host / "input" / "config").is_dir() for host in path.glob("algo-*"))


def entries(workdir: Path) -> list[Entry]:
    """Every job folder (with its describe file) and job environment in ``workdir``, by name."""
    if not workdir.is_dir():
        return []
    found: list[Entry] = []
    for path in sorted(workdir.iterdir()):
        if path.is_dir() and path.name != VENVS and _is_job_folder(path):
            describe = workdir / f"{path.name}.json"
            paths = (path, describe) if describe.exists() else (path,)
            found.append(Entry(path.name, paths, max(p.stat().st_mtime for p in paths)))
        elif path.suffix == ".json" and not (workdir / path.stem).exists() and path.stem[:1].isalnum():
            found.append(Entry(path.stem, (path,), path.stat().st_mtime))  # a job that failed before its folder
    venvs = workdir / VENVS
    if venvs.is_dir():
        for path in sorted(venvs.iterdir()):
            if path.is_dir():
                lock = path.with_suffix(".lock")
                paths = (path, lock) if lock.exists() else (path,)
                found.append(Entry(f"{VENVS}/{path.name}", paths, _last_used(path)))
    return found


def _last_used(venv: Path) -> float:
    marker = venv / "last-used"
    return (marker if marker.exists() else venv).stat().st_mtime


def select(found: Sequence[Entry], names: Iterable[str], everything: bool,
           older_than: Optional[float], now: Optional[float] = None) -> list[Entry]:
    """What to remove: the named jobs, or all, or those unchanged for ``older_than`` seconds
    (names and an age together: the named ones that are that old)."""
    names = list(names)
    if not names and not everything and older_than is None:
        raise ConfigError("say what to remove: job names, --all, or --older-than AGE (e.g. 7d)")
    by_name = {e.name: e for e in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(e.name for e in found if not e.name.startswith(VENVS)) or "none"
        raise ConfigError(f"no job named {missing[0]!r} in this work folder (jobs here: {known})")
    chosen = [by_name[n] for n in names] if names else list(found)
    if older_than is not None:
        cutoff = (now if now is not None else time.time()) - older_than
        chosen = [e for e in chosen if e.mtime < cutoff]
    return chosen


def remove(entry: Entry) -> int:
    """Delete the entry; the bytes it held."""
    size = entry.bytes
    for path in entry.paths:
        if path.is_dir() and not path.is_symlink():
            make_writable(path)  # FastFile channels are read-only
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return size


def tidy(workdir: Path) -> None:
    """Drop the environments' folder once the last environment is gone."""
    venvs = workdir / VENVS
    if venvs.is_dir() and not any(venvs.iterdir()):
        venvs.rmdir()


def describe_size(path: Path) -> str:
    """``631.2 MB`` for the job summary."""
    return human_bytes(folder_bytes(path))
