"""Memory for multi-model endpoints: how much is left (the container's cgroup limit counts, not only
the host's), and giving freed memory back to the system after a model is unloaded."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Optional

CGROUP = Path("/sys/fs/cgroup")
MEMINFO = Path("/proc/meminfo")


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2) means no limit


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def meminfo_available(meminfo: Path = MEMINFO) -> Optional[int]:
    """MemAvailable of /proc/meminfo in bytes: the host's (or VM's) view."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_available(root: Path = CGROUP) -> Optional[int]:
    """Bytes left under this container's memory limit (cgroup v2, else v1), None with no limit.

    Reclaimable page cache (inactive_file) is not counted as used: the kernel drops it before it
    OOM-kills anything.
    """
    limit = _read_int(root / "memory.max")
    if limit is not None:
        used = (_read_int(root / "memory.current") or 0) - _stat(root / "memory.stat", "inactive_file")
        return max(limit - max(used, 0), 0)
    v1 = root / "memory"
    limit = _read_int(v1 / "memory.limit_in_bytes")
    if limit is not None and limit < (1 << 60):  # v1 says "no limit" with a huge number
        used = (_read_int(v1 / "memory.usage_in_bytes") or 0) - _stat(v1 / "memory.stat", "total_inactive_file")
        return max(limit - max(used, 0), 0)
    return None


def available_bytes(meminfo: Path = MEMINFO, cgroup: Path = CGROUP) -> Optional[int]:
    """The smaller of the host's MemAvailable and what the cgroup limit leaves; None if unknown."""
    values = [v for v in (meminfo_available(meminfo), cgroup_available(cgroup)) if v is not None]
    return min(values) if values else None


def release() -> None:
    """Return free heap memory to the system (glibc's malloc_trim); a no-op on other C libraries.

    Python frees a model's objects, but glibc keeps freed small blocks in its arenas, so the RSS
    would not drop without this.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's on Linux
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)

