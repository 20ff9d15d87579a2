"""The one parser for the toolkit's numeric settings (variables such as TOOLKIT_STOP_GRACE_SECONDS,
SAGEMAKER_MODEL_SERVER_TIMEOUT, TOOLKIT_MAX_EXTRACT_BYTES, and counts given in hyperparameters).

Every numeric setting goes through ``number`` (or ``parse_number`` for a value already in hand),
so all of them refuse the same things with the same kind of line: text that is not a number,
``nan`` and ``inf`` (Python's float() accepts both, and a timeout of nan or a limit of inf
turns into a crash loop or no limit at all), a fraction where a whole number is meant, and values
outside the allowed range. The error says what was given and what would be right; its class
(ConfigError by default) decides the exit code, 2.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Union

from toolkit.errors import ConfigError, ToolkitError

Number = Union[int, float]


def parse_number(
    value: Any,
    what: str,
    *,
    whole: bool = False,
    minimum: Optional[Number] = None,
    maximum: Optional[Number] = None,
    example: Any = None,
    error: type[ToolkitError] = ConfigError,
) -> Number:
    """``value`` (text or a number) as a finite int (``whole=True``) or float within
    [``minimum``, ``maximum``]; else ``error`` naming ``what`` (e.g. ``TOOLKIT_X='nan'``)."""
    kind = "a whole number" if whole else "a number"
    hint = f"; expected e.g. {example}" if example is not None else ""
    if isinstance(value, bool):
        raise error(f"{what} is not {kind}{hint}")
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else value
    except ValueError:
        raise error(f"{what} is not {kind}{hint}") from None
    if not math.isfinite(number):
        raise error(f"{what} is not a finite number{hint}")
    if whole:
        if number != int(number) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
            raise error(f"{what} is not {kind}{hint}")
        number = int(number)
    if minimum is not None and number < minimum:
        raise error(f"{what} is below {minimum}{hint}")
    if maximum is not None and number > maximum:
        raise error(f"{what} is above {maximum}{hint}")
    return number


def number(
    environ: Mapping[str, Any],
    name: str,
    default: Number,
    *,
    whole: bool = False,
    minimum: Optional[Number] = None,
    maximum: Optional[Number] = None,
    error: type[ToolkitError] = ConfigError,
) -> Number:
    """The variable ``name`` from ``environ`` as ``parse_number`` reads it; ``default`` when it is
    unset or empty."""
    raw = str(environ.get(name, "") or "").strip()
    if not raw:
        return default
    return parse_number(raw, f"{name}={raw!r}", whole=whole, minimum=minimum, maximum=maximum,
                        example=f"{name}={default:g}" if isinstance(default, float) else f"{name}={default}",
                        error=error)


DEFAULT_GRACE = 110.0  # inside SageMaker's 120 s between SIGTERM and SIGKILL

# The numeric settings a training run reads at some step (some only for a remote fetch): checked
# all at once when the run starts, so a bad value fails the job at once whatever the code's location.
# name: (default, whole, minimum)
TRAINING_NUMBERS: dict[str, tuple[Number, bool, Number]] = {
    "TOOLKIT_STOP_GRACE_SECONDS": (DEFAULT_GRACE, False, 0),
    "TOOLKIT_FETCH_ATTEMPTS": (4, True, 1),
    "TOOLKIT_MAX_EXTRACT_BYTES": (20 * 1024**3, True, 1),
    "TOOLKIT_MAX_EXTRACT_MEMBERS": (1_000_000, True, 1),
    "TOOLKIT_MAX_EXTRACT_RATIO": (100, True, 0),
}


def check_training(environ: Mapping[str, Any]) -> None:
    """Parse every numeric training setting once, so a bad one is a ConfigError before any work."""
    for name, (default, whole, minimum) in TRAINING_NUMBERS.items():
        number(environ, name, default, whole=whole, minimum=minimum)


def stop_grace(environ: Mapping[str, Any]) -> float:
    """TOOLKIT_STOP_GRACE_SECONDS: how long a stopped child (the job, pip) may take to exit
    before its process group gets SIGKILL."""
    return float(number(environ, "TOOLKIT_STOP_GRACE_SECONDS", DEFAULT_GRACE, minimum=0))


def positive_seconds(environ: Mapping[str, Any], name: str, default: float) -> float:
    """A number of seconds above 0 from ``name`` (``default`` when unset): intervals, polls."""
    value = float(number(environ, name, default, minimum=0))
    if value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive number of seconds")
    return value
