"""Fetcher for ``https://`` and ``http://`` URLs: an archive (extracted as it streams in) or a
single file. Standard library only. Server errors (5xx, 429) and dropped connections are
retried with backoff; a user name and password in the URL are sent as Basic authentication and
never logged."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Mapping, Optional, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from toolkit import download
from toolkit.errors import FetchError
from toolkit.hookspecs import hookimpl
from toolkit.redact import mask_uri

TIMEOUT = 60.0  # seconds without a byte before a read gives up (then it is retried)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def transient(exc: BaseException) -> bool:
    import http.client
    import socket
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_STATUSES
    if isinstance(exc, urllib.error.URLError):
        return not isinstance(exc.reason, (socket.gaierror, str)) or "timed out" in str(exc.reason)
    return isinstance(exc, (download.TransferError, http.client.HTTPException, ConnectionError, TimeoutError))


def explain(exc: BaseException, shown: str) -> FetchError:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        hint = {
            401: "the server wants credentials (put them in the URL as https://user:password@host/...)",
            403: "access denied; check the URL's credentials or the server's permissions",
            404: "not found; check the submit directory",
        }.get(exc.code, exc.reason or "")
        return FetchError(f"{shown}: HTTP {exc.code}: {hint}".rstrip(": "))
    if isinstance(exc, urllib.error.URLError):
        return FetchError(f"{shown}: cannot connect ({exc.reason}); check the host name and the network")
    return FetchError(f"{shown}: download failed: {download.describe(exc)}")


@hookimpl
def toolkit_fetch_schemes() -> Sequence[str]:
    return ["http", "https"]


@hookimpl
def toolkit_fetch_code(uri: str, dest: Path, env: Mapping[str, str]) -> Optional[Path]:
    if not uri.startswith(("https://", "http://")):
        return None
    import http.client
    import urllib.request

    parts = urlsplit(uri)
    shown = mask_uri(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path or "/", parts.query, ""))
    request = urllib.request.Request(clean, headers={"User-Agent": "sagemaker-toolkit"})
    if parts.username is not None:
        import base64

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    name = posixpath.basename(unquote(parts.path).rstrip("/")) or "index.html"

    def attempt() -> Path:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            plain = not response.headers.get("Content-Encoding")
            expected = int(length) if length and length.isdigit() and plain else None
            with download.ReadAhead(response, expected=expected) as body:
                return download.unpack_or_place(body, dest, name, shown, env)  # type: ignore[arg-type]

    try:
        return download.with_retries(attempt, transient=transient, tries=download.attempts(env), what=shown)
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, download.TransferError) as exc:
        raise explain(exc.cause if isinstance(exc, download.TransferError) else exc, shown) from exc
