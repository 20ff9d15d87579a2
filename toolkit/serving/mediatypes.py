"""Content-Type and Accept parsing: MIME parameters, comma lists and q-values.

Results are cached by the raw header value, so a client that sends the same headers on every
request (all of them do) pays for the parsing once.
"""

from __future__ import annotations

import functools
from typing import Optional

ANY = "*/*"


@functools.lru_cache(maxsize=256)
def bare(header: str) -> str:
    """``'Application/JSON; charset=utf-8'`` -> ``'application/json'``."""
    return header.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=256)
def charset(header: str) -> Optional[str]:
    """The charset parameter of a Content-Type, lower-case and unquoted: ``'text/csv; charset="Latin-1"'``
    -> ``'latin-1'``; None when there is none."""
    for param in header.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


@functools.lru_cache(maxsize=256)
def parse_accept(header: str) -> tuple[str, ...]:
    """The media types of an Accept header, best first (q descending, then as written).

    Types with ``q=0`` are dropped; an empty header gives ``()``.
    """
    ranked = []
    for position, part in enumerate(header.split(",")):
        media, *params = part.split(";")
        media = media.strip().lower()
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, position, media))
    return tuple(media for _, _, media in sorted(ranked))


def matches(pattern: str, media: str) -> bool:
    """Whether an Accept entry (``text/*``, ``*/*`` or exact) covers ``media``."""
    if pattern in (ANY, media):
        return True
    if pattern.endswith("/*"):
        return media.startswith(pattern[:-1])
    return False


def negotiate(header: Optional[str], default: str, supported: tuple[str, ...]) -> Optional[str]:
    """The media type to answer with, or None when nothing in ``supported`` is acceptable.

    A missing, empty or ``*/*`` Accept means ``default`` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT).
    """
    wanted = parse_accept(header) if header else ()
    if not wanted or wanted[0] == ANY:
        wanted = (bare(default), *wanted)
    for pattern in wanted:
        if pattern == ANY:
            return bare(default) if bare(default) in supported else (supported[0] if supported else None)
        for media in supported:
            if matches(pattern, media):
                return media
    return None


def preferred(header: Optional[str], default: str) -> str:
    """The client's first choice, for a user ``output_fn`` that does its own encoding."""
    wanted = parse_accept(header) if header else ()
    if not wanted or "*" in wanted[0]:
        return bare(default)
    return wanted[0]
