"""Fetcher for ``https://`` and ``http://`` URLs: an archive (extracted as it streams in) or a
single file. Standard library only. Server errors (5xx, 429) and dropped connections are
retried with backoff; a user name and password in the URL are sent as Basic authentication and
never logged. TLS certificates are verified against the system's CAs, or the bundle that
SSL_CERT_FILE (else REQUESTS_CA_BUNDLE) names in the job's environment."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from toolkit import download
from toolkit.errors import FetchError
from toolkit.hookspecs import hookimpl
from toolkit.redact import mask_uri

if TYPE_CHECKING:
    import ssl

TIMEOUT = 60.0  # seconds without a byte before a read gives up (then it is retried)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Where a private CA's certificates (PEM) are found, first set wins: OpenSSL's own variable (curl and
# Python honour it too), then requests' (common in images that use it). Either replaces the system's
# CAs, as it does for those tools.
CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def tls_context(env: Mapping[str, str], shown: str) -> ssl.SSLContext:
    """Certificate checking as ``ssl.create_default_context`` does it, with the CA bundle of the
    first of CA_BUNDLE_VARIABLES set in ``env`` instead of the system's."""
    import ssl

    for name in CA_BUNDLE_VARIABLES:
        bundle = str(env.get(name, "") or "").strip()
        if bundle:
            try:
                return ssl.create_default_context(cafile=bundle)
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise FetchError(f"{shown}: cannot use {name}={bundle} as the CA bundle ({reason}); "
                                 "it must name a readable file of PEM certificates") from exc
    return ssl.create_default_context()


def transient(exc: BaseException) -> bool:
    import http.client
    import socket
    import ssl
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_STATUSES
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            return False  # the same certificate again: no use asking twice
        return not isinstance(exc.reason, (socket.gaierror, str)) or "timed out" in str(exc.reason)
    return isinstance(exc, (download.InterruptedRead, http.client.HTTPException, ConnectionError, TimeoutError))


def explain(exc: BaseException, shown: str, host: str = "") -> FetchError:
    import ssl
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        hint = {
            401: "the server wants credentials (put them in the URL as https://user:password@host/...)",
            403: "access denied; check the URL's credentials or the server's permissions",
            404: "not found; check the submit directory",
        }.get(exc.code, exc.reason or "")
        return FetchError(f"{shown}: HTTP {exc.code}: {hint}".rstrip(": "))
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, ssl.SSLCertVerificationError):
        why = exc.reason.verify_message or exc.reason.reason or str(exc.reason)
        return FetchError(f"{shown}: the TLS certificate of {host} failed verification ({why}); if the server's "
                          f"certificate comes from a private CA, set {' or '.join(CA_BUNDLE_VARIABLES)} to that "
                          "CA's certificate (PEM)")
    if isinstance(exc, urllib.error.URLError):
        return FetchError(f"{shown}: cannot connect ({exc.reason}); check the host name and the network")
    return FetchError(f"{shown}: download failed: {download.describe(exc)}")


@hookimpl
def toolkit_fetch_schemes() -> Sequence[str]:
    return ["http", "https"]


@hookimpl
def toolkit_fetch_code(uri: str, dest: Path, settings: Mapping[str, str]) -> Optional[Path]:
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

    context = tls_context(settings, shown) if parts.scheme == "https" else None

    def attempt() -> Path:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            length = response.headers.get("Content-Length")
            plain = not response.headers.get("Content-Encoding")
            expected = int(length) if length and length.isdigit() and plain else None
            with download.ReadAhead(response, expected=expected) as body:
                return download.unpack_or_place(body, dest, name, shown, settings)  # type: ignore[arg-type]

    try:
        return download.with_retries(attempt, transient=transient, tries=download.attempts(settings), what=shown)
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, download.InterruptedRead) as exc:
        raise explain(exc.cause if isinstance(exc, download.InterruptedRead) else exc, shown, host) from exc
