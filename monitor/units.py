"""The configuration's two units syntaxes, one everywhere (pure).

* **Durations**: a number of seconds (``30``, ``0.5``) or a string of a number and a unit:
  ``"250ms"``, ``"15s"``, ``"5m"``, ``"2h"``, ``"1d"`` (``"1.5h"`` = 5400 s). Never negative,
  never NaN or infinite. Every interval key of the configuration takes this syntax.
* **Fractions**: a number (``0.8``) or a percent string (``"80%"`` = 0.8). Every key that
  holds a fraction (ratios, distances, drawdowns, hysteresis) takes this syntax.

:func:`duration_seconds` and :func:`fraction` raise :class:`ValueError` whose text is the
problem in words (for the caller to attach a file and a key path); :func:`parse_duration`
raises :class:`~monitor.errors.ConfigError` itself.
"""

from __future__ import annotations

import math
import re
from typing import Final

from monitor.errors import ConfigError

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT: Final[dict[str | None, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    None: 1.0,
}
_PERCENT: Final = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")

DURATION_HINT: Final = "a duration like 30 (seconds), '15s', '5m', '2h' or '1d'"
FRACTION_HINT: Final = "a number like 0.8 or a percent string like '80%'"


def describe(value: object) -> str:
    """``value`` in words for a message: "the string 'x'", "the number 3", "a table"."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def duration_seconds(value: object) -> float:
    """Seconds (≥ 0, finite) from a number of seconds or ``"<number><ms|s|m|h|d>"``.

    Raises ValueError naming the problem and the expected syntax.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HINT}, got {describe(value)}")
    if isinstance(value, int | float):
        secs = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        secs = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(f"expected {DURATION_HINT}, got {describe(value)}")
    if not math.isfinite(secs):
        raise ValueError(f"a duration must be finite, got {value!r}")
    if secs < 0:
        raise ValueError(f"a duration must be ≥ 0, got {value!r}")
    return secs


def fraction(value: object) -> float:
    """A finite number from a number (``0.8``) or a percent string (``"80%"`` → 0.8).

    No range is implied (callers check theirs). Raises ValueError naming the problem.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {FRACTION_HINT}, got {describe(value)}")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str) and (m := _PERCENT.match(value)):
        out = float(m.group(1)) / 100.0
    else:
        raise ValueError(f"expected {FRACTION_HINT}, got {describe(value)}")
    if not math.isfinite(out):
        raise ValueError(f"must be finite, got {value!r}")
    return out


def duration_arg(text: str) -> float:
    """An ``argparse`` type: seconds from a command-line duration (``30``, ``15s``, ``2m``), the
    same syntax as the configuration's. Raises ``argparse.ArgumentTypeError`` (argparse prints
    it as ``argument --timeout: expected a duration like …``)."""
    import argparse  # noqa: PLC0415 -- only the command line needs it

    try:
        number: object = float(text)
    except ValueError:
        number = text.strip()
    try:
        return duration_seconds(number)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_duration(value: object, source: str, path: str) -> float:
    """Seconds from a duration (see the module doc); raises ``ConfigError(source, path, …)``."""
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise ConfigError(source, path, str(exc)) from None
