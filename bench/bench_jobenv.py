"""How long an in-process local job's own environment takes to make and to reuse
(toolkit/local/jobenv.py), with uv and with ``python -m venv``: ``python bench/bench_jobenv.py``.

Prints one line per way; nothing is installed (requirements are empty), so this is the floor a job
pays before its own installs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

from toolkit.local import jobenv

RUNS = 5


def measure(with_uv: bool) -> list[tuple[float, float]]:
    times = []
    for _ in range(RUNS):
        work = Path(tempfile.mkdtemp(prefix="bench-jobenv-"))
        try:
            patch = mock.patch.object(jobenv, "uv_path", return_value=None) if not with_uv else mock.MagicMock()
            with patch:
                started = time.perf_counter()
                jobenv.prepare(work, work / "job", "", {})
                made = time.perf_counter() - started
                started = time.perf_counter()
                assert jobenv.prepare(work, work / "job", "", {}).reused
                times.append((made, time.perf_counter() - started))
        finally:
            shutil.rmtree(work)
    return times


def main() -> None:
    ways = [("python -m venv", False)] + ([("uv venv", True)] if jobenv.uv_path({}) else [])
    for label, with_uv in ways:
        times = measure(with_uv)
        made = ", ".join(f"{m:.3f}" for m, _ in times)
        reused = ", ".join(f"{r * 1000:.2f}" for _, r in times)
        print(f"{label}: made in {made} s; reused in {reused} ms")


if __name__ == "__main__":
    main()
