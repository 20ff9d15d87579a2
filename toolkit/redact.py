"""The one rule for secrets in everything the toolkit logs, writes or raises.

A value is secret when its name says so (``looks_secret``): hyperparameters, settings, variables,
command-line options, keys nested in dict hyperparameters, a URI's query parameters. Besides,
every URI in a message loses its user information (``https://user:******@host``) whatever its
name, because a password or token put there has no name to go by. The functions here are what
the log (both the toolkit's own writer and ``logging``'s handler), the failure file, ToolkitError
messages, ``toolkit env`` and the plugin trace call: change the rule here and it changes
everywhere.

Standard library only, and only ``re`` and ``json`` (already loaded by every ``train``). The URI
patterns are compiled on first use (``re`` keeps them): most ``train`` runs log no URI at all.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

# Words that make a name secret, matched in the name upper-cased with ``-``, ``_``, ``.`` and
# spaces removed, so ``api_key``, ``apiKey``, ``API-KEY``, ``pass_word`` and ``Pass.Phrase`` all
# count. Masking too much costs a log line's detail; masking too little leaks a credential.
SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "TOKEN", "KEY", "PRIVATE", "CREDENTIAL",
                "AUTH", "COOKIE", "SIGNATURE")
# Query parameters that carry a credential under a name with none of the words (Azure SAS ``sig``,
# OAuth ``code``).
SECRET_QUERY_NAMES = frozenset({"SIG", "CODE"})
MASK = "******"

_SEPARATORS = str.maketrans("", "", "-_.")  # and whitespace, which str.split() drops
# scheme://userinfo@ : the userinfo is everything up to the last '@' before the host's end
_USERINFO = r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#'\"]+)@"
# name=value inside a URI's query or fragment (the value stops at & # and whitespace/quotes)
_QUERY_PARAM = r"(?P<sep>[?&#;])(?P<name>[^=&#\s'\"]+)=(?P<value>[^&#\s'\"]*)"
_URI = r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*"


def looks_secret(name: object) -> bool:
    """Whether a variable, hyperparameter, option or query parameter name suggests a secret value."""
    folded = "".join(str(name).split()).translate(_SEPARATORS).upper()
    return any(word in folded for word in SECRET_WORDS)


def mask_uri(uri: str) -> str:
    """``uri`` with its user information masked (``user:******@`` or ``******@``) and the values
    of secret-looking query and fragment parameters masked."""
    return re.sub(_URI, lambda m: _mask_one_uri(m.group(0)), uri)


def _mask_one_uri(uri: str) -> str:
    def userinfo(m: re.Match[str]) -> str:
        user, colon, _password = m.group("userinfo").partition(":")
        if colon:
            return f"{m.group('scheme')}{user}:{MASK}@"
        if m.group("scheme").lower().rstrip(":/").endswith(("http", "https")):
            return f"{m.group('scheme')}{MASK}@"  # https://TOKEN@host: the user name is the token
        return m.group(0)  # ssh://git@host: a user name, not a secret

    def param(m: re.Match[str]) -> str:
        name = m.group("name")
        if m.group("value") and (looks_secret(name) or name.upper() in SECRET_QUERY_NAMES):
            return f"{m.group('sep')}{name}={MASK}"
        return m.group(0)

    masked = re.sub(_USERINFO, userinfo, uri, count=1)
    return re.sub(_QUERY_PARAM, param, masked) if ("?" in masked or "#" in masked) else masked


def redact(text: str) -> str:
    """Free text (a log line, an error, the failure file) with every URI in it masked."""
    text = str(text)
    return mask_uri(text) if "://" in text else text


def mask_value(value: Any) -> Any:
    """A copy of a value for display: nested mappings masked by key, lists element by element,
    argv-like lists (``["--api_key", "x"]``) by option, strings as URIs; a string that holds a
    JSON object or array (SM_HPS, SM_TRAINING_ENV) is masked inside and written back compactly."""
    if isinstance(value, Mapping):
        return mask(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple keeps its type
        return type(value)._make(mask_value(v) for v in value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) for v in value) and any(v.startswith("-") for v in value):
            return mask_argv(value)
        return [mask_value(v) for v in value]
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("{", "[") and looks_secret_anywhere(value):
            try:
                decoded = json.loads(value)
            except (ValueError, RecursionError):
                return redact(value)
            return json.dumps(mask_value(decoded), sort_keys=True, separators=(",", ":"))
        return redact(value)
    return value


def looks_secret_anywhere(text: str) -> bool:
    """Cheap pre-check: could ``text`` hold a secret name or a URI at all?"""
    return "://" in text or looks_secret(text)


def mask(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``mapping`` for display: values of secret-looking keys replaced, at any depth."""
    return {k: (MASK if looks_secret(k) and v not in (None, "") else mask_value(v)) for k, v in mapping.items()}


def mask_argv(argv: Sequence[str]) -> list[str]:
    """argv for display: the value after a secret-looking option (``--api-token x``) is masked, so
    is the value part of ``--password=x`` and of ``api_key=x`` inside a dict hyperparameter
    (``--config api_key=x,lr=1``), and every URI's credentials."""
    shown: list[str] = []
    for i, arg in enumerate(argv):
        prev = argv[i - 1] if i else ""
        if prev.startswith("-") and "=" not in prev and looks_secret(prev):
            shown.append(MASK)
        elif arg.startswith("-") and "=" in arg and " " not in arg and looks_secret(arg.partition("=")[0]):
            shown.append(f"{arg.partition('=')[0]}={MASK}")
        elif "=" in arg and not arg.startswith("-") and " " not in arg:
            shown.append(_mask_pairs(arg))
        else:
            shown.append(redact(arg))
    return shown


def _mask_pairs(arg: str) -> str:
    """``k1=v1,k2=v2`` (how a dict hyperparameter reaches argv) with secret keys' values masked."""
    if "://" in arg and "," not in arg:
        return redact(arg)
    parts = []
    for pair in arg.split(","):
        key, eq, _ = pair.partition("=")
        parts.append(f"{key}={MASK}" if eq and looks_secret(key) else redact(pair))
    return ",".join(parts)
