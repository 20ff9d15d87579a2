"""Rules for names and data that come from outside: config files, archives, entry points.

Each rule is written once here and used wherever such input arrives, so an archive member, an S3
key under a prefix and ``sagemaker_program`` are held to the same idea of "a path inside a folder".
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

MAX_DEPTH = 100  # no SageMaker config, hyperparameter or request comes near it; json would recurse to a crash
# SageMaker's own pattern for a channel name (CreateTrainingJob's InputDataConfig.ChannelName)
CHANNEL_NAME = r"[A-Za-z0-9.\-_]{1,64}"


class Unsafe(ValueError):
    """A name or a value that breaks a rule; the message says which, for the caller to prefix."""


def relative_path(name: str) -> str:
    """``name`` as a clean relative path (``a/./b/`` -> ``a/b``) that cannot leave the folder it is
    joined to, or ``Unsafe``: absolute (``/x``, ``\\x``, ``C:x``) or with a ``..`` component
    anywhere (``a/../../x``, ``./../x``; ``a/../b`` too, although it stays inside: no real
    archive or entry point needs it, and one rule is easier to trust than two)."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise Unsafe("has an absolute path")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Unsafe("points outside the destination ('..')")
    if "\x00" in clean:
        raise Unsafe("contains a NUL character")
    return "/".join(parts)


def check_data(data: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``Unsafe`` when decoded JSON nests deeper than ``max_depth`` or holds a NUL in a key
    or a string (no command line or environment variable can carry one). Iterative: a check for
    deep nesting must not itself recurse."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = ((None, v) for v in value)
        else:
            if isinstance(value, str) and "\x00" in value:
                raise Unsafe(f"has a NUL character in the value {_short(value)}")
            continue
        if depth > max_depth:
            raise Unsafe(f"is nested more than {max_depth} levels deep")
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                raise Unsafe(f"has a NUL character in the key {_short(key)}")
            stack.append((item, depth + 1))


def check_channel_name(name: str) -> None:
    if not re.fullmatch(CHANNEL_NAME, name) or name in (".", ".."):
        raise Unsafe(f"channel name {_short(name)} is not a SageMaker channel name "
                     f"(1-64 of A-Z a-z 0-9 . - _, e.g. train)")


def check_variable_name(kind: str, name: str) -> None:
    """A name that becomes part of an environment variable (SM_HP_<KEY>, SM_CHANNEL_<NAME>)."""
    if "=" in name or "\x00" in name:
        raise Unsafe(f"{kind} {_short(name)} cannot be part of an environment variable name "
                     f"(it has '=' or NUL); rename it, e.g. {_example(name)!r}")


def _example(name: str) -> str:
    return re.sub(r"[=\x00]", "_", name)


def _short(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def file_and_folder(names: Iterable[str]) -> Optional[tuple[str, str]]:
    """(a, a/b) when relative path ``a`` is given both as a file and as a folder of another name
    (an S3 prefix can hold both keys ``p/a`` and ``p/a/b``; a file system cannot), else None."""
    files = set(names)
    for name in sorted(files):
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                return parent, name
    return None
