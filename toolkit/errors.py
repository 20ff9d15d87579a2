"""Errors that carry what the user must see: one line, an exit code, an HTTP status.

A ``ToolkitError`` is a problem with the job's input (configuration, code, data), not a bug:
the CLI prints its message as one line, writes it to the failure file and exits with
``exit_code``; the server answers with ``status``. Anything else is a bug and keeps its traceback
in the log.
"""

from __future__ import annotations

from toolkit.redact import redact


class ToolkitError(Exception):
    """A problem the user can fix; its message is one line that says what and how."""

    exit_code: int = 2
    status: int = 500

    def __init__(self, message: str, *, exit_code: int | None = None, status: int | None = None):
        text = " ".join(str(message).split()) if "\n" in str(message) else str(message)
        super().__init__(redact(text))  # a URI's credentials never reach the log or the failure file
        if exit_code is not None:
            self.exit_code = exit_code
        if status is not None:
            self.status = status


class ConfigError(ToolkitError):
    """A SageMaker configuration file or variable is missing, malformed or inconsistent."""


class CodeError(ToolkitError):
    """The user's code cannot be found, fetched, installed or started."""


class FetchError(CodeError):
    """Code could not be fetched from its URI (S3, git, https, local)."""


class ArchiveError(FetchError):
    """An archive is unsafe, corrupt or too large to extract."""


class ClientError(ToolkitError):
    """A request the client must change (HTTP 4xx); raise it from a handler to answer 4xx."""

    status = 400

    def __init__(self, message: str, status: int = 400):
        super().__init__(message, status=status)
