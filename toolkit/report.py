"""What SageMaker reads when a job ends: the failure file (its first line becomes the job's
FailureReason, at most 1024 bytes) and the success file, both written whole or not at all."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from toolkit.log import log
from toolkit.redact import mask_argv, redact

FAILURE_LIMIT = 1024  # SageMaker keeps no more of the failure file as FailureReason


# --------------------------------------------------------------------------------------------
# Outcome files
# --------------------------------------------------------------------------------------------


def truncate_utf8(text: str, limit: int = FAILURE_LIMIT) -> bytes:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file beside it, then a rename).

    The temporary name is made from the PID rather than with tempfile, which is not worth
    importing on every job start for this: the folder is the job's own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_failure(path: Path, message: str) -> None:
    """Write the failure file unless the user's code already wrote one (theirs knows best)."""
    try:
        if path.is_file() and path.stat().st_size > 0:
            log.info("keeping the failure file the job wrote: %s", path)
            return
        write_atomic(path, truncate_utf8(redact(message)))
    except OSError as exc:
        log.error("cannot write the failure file %s: %s", path, exc)


TRACEBACK = "Traceback (most recent call last):"


def error_line(stderr_tail: str) -> str:
    """The most telling line of a failed run's stderr.

    After Python's last ``Traceback (most recent call last):`` header come the frames (indented)
    and then the exception line (``ValueError: bad input``), which is the one. Lines after it
    (the rest of a multi-line message, an atexit handler's or a logger's last words such as
    ``wandb: Waiting for W&B process...``) are not. Without a traceback (a shell script, a
    program in another language), the last non-empty line.
    """
    lines = [ln.rstrip() for ln in stderr_tail.splitlines() if ln.strip()]
    if not lines:
        return ""
    last_tb = max((i for i, ln in enumerate(lines) if ln.lstrip().startswith(TRACEBACK)), default=-1)
    if last_tb >= 0:
        for ln in lines[last_tb + 1:]:
            if not ln[:1].isspace():
                return ln.strip()
    return lines[-1].strip()


def failure_report(stderr_tail: str, exit_code: int, argv: list[str]) -> str:
    """The failure file for a run that exited non-zero, most useful first, within 1024 bytes."""
    first = error_line(stderr_tail) or f"process exited with code {exit_code}"
    head = [first, f"Exit code: {exit_code}", f"Command: {shlex.join(mask_argv(argv))}"]
    text = "\n".join(head)
    rest = [ln for ln in stderr_tail.splitlines() if ln.strip()]
    if rest:
        budget = FAILURE_LIMIT - len(text.encode()) - len("\nLast lines of stderr:\n")
        picked: list[str] = []
        for ln in reversed(rest):
            size = len(ln.encode()) + 1
            if size > budget:
                break
            picked.insert(0, ln)
            budget -= size
        if picked:
            text += "\nLast lines of stderr:\n" + "\n".join(picked)
    return text
