"""Numbers as people read them (pure): significant digits at any magnitude, never ``4e+07``.

Every function takes ``None`` (and NaN/inf) and returns ``"—"`` for it: an unknown figure is
shown as unknown, never as a reassuring zero.

* :func:`num`: ``sig`` significant digits whatever the magnitude, thousands grouped, trailing
  zeros dropped, no exponent: ``0.0000130``→``0.000013``, ``0.00001043``→``0.00001043``,
  ``40000000``→``40,000,000``, ``40707.07``→``40,707.1`` (integer digits are never cut).
* :func:`price` (6 significant digits) and :func:`size` (8): entry and liquidation prices of
  a micro-priced coin stay distinguishable (``0.000013`` vs ``0.0000104``).
* :func:`money`: quote-currency amounts with two decimals (``-3,785.45``); an amount below
  one unit keeps 3 significant digits (``0.000412``) so a small cost never prints ``0.00``.
* :func:`pct`: a fraction as a percentage (``0.1234``→``12.34%``), small ones with
  significant digits (``0.0000123``→``0.0012%``).
* :func:`duration`/:func:`hours`: ``3 d 4 h``, ``5 h 12 min``, ``7 min``, ``45 s``.
* :func:`short_id`: ``0x1111…1111`` for ids longer than a table column allows.
"""

from __future__ import annotations

import math

DASH = "—"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def num(x: float | None, sig: int = 6, *, sign: bool = False, group: bool = True) -> str:
    """``x`` with ``sig`` significant digits (at least every integer digit), grouped by
    thousands (unless ``group`` is false), trailing zeros dropped, never in exponent form.
    ``sign``: ``+`` on positives."""
    if x is None or not math.isfinite(x):
        return DASH
    if x == 0.0:
        return "+0" if sign else "0"
    ax = -x if x < 0 else x
    places = sig - 1 - math.floor(math.log10(ax))
    places = max(places, 0)
    text = format(ax, _spec(places, group))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    prefix = "-" if x < 0 else ("+" if sign else "")
    return prefix + text


#: format specs ``,.{places}f`` (grouped) and ``.{places}f`` for the usual places
_SPECS: dict[bool, tuple[str, ...]] = {
    True: tuple(f",.{n}f" for n in range(40)),
    False: tuple(f".{n}f" for n in range(40)),
}


def _spec(places: int, group: bool) -> str:
    """The format spec of :func:`num`: ``places`` decimals, thousands grouped or not."""
    if places < 40:
        return _SPECS[group][places]
    return f"{',' if group else ''}.{places}f"


def price(x: float | None) -> str:
    """A price: 6 significant digits (``97,123.5``, ``0.0000104347``)."""
    return num(x, 6)


def size(x: float | None, *, sign: bool = False) -> str:
    """A position size in base units: 8 significant digits (``40,000,000``, ``0.0015``)."""
    return num(x, 8, sign=sign)


def money(x: float | None, *, sign: bool = False) -> str:
    """A quote-currency amount: ``1,234.56``; below 1 in magnitude, 3 significant digits."""
    if x is None or not math.isfinite(x):
        return DASH
    if x == 0.0:
        return "0.00"
    if abs(x) < 0.995:
        return num(x, 3, sign=sign)
    text = f"{x:,.2f}"
    return f"+{text}" if sign and x > 0 else text


def pct(x: float | None, places: int = 2, *, sign: bool = False) -> str:
    """The fraction ``x`` as a percentage with ``places`` decimals; a non-zero value that
    would round to zero keeps 2 significant digits instead (never a false ``0.00%``)."""
    if x is None or not math.isfinite(x):
        return DASH
    p = x * 100.0
    text = format(p, _spec(places, False)) if places >= 0 else f"{p:.{places}f}"
    if p != 0.0 and float(text) == 0.0:
        text = num(p, 2)
    if sign and p > 0 and not text.startswith("+"):
        text = "+" + text
    return f"{text}%"


def duration(seconds: float | None) -> str:
    """``seconds`` as the two largest units: ``3 d 4 h``, ``5 h 12 min``, ``7 min 5 s``,
    ``45 s``; days are grouped (``9,355 d 14 h``). The smaller unit is cut, not rounded up,
    so a runway is never overstated. Negative durations are shown as 0 s."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    s = max(int(seconds), 0)
    days, rem = divmod(s, 86400)
    hrs, rem = divmod(rem, 3600)
    mins, secs = divmod(rem, 60)
    if days:
        return f"{days:,} d {hrs} h" if hrs else f"{days:,} d"
    if hrs:
        return f"{hrs} h {mins} min" if mins else f"{hrs} h"
    if mins:
        return f"{mins} min {secs} s" if secs else f"{mins} min"
    return f"{secs} s"


def hours(h: float | None) -> str:
    """A number of hours as :func:`duration` shows it (a funding runway: ``9 d 8 h``)."""
    if h is None or not math.isfinite(h):
        return DASH
    return duration(h * 3600.0)


def ago(seconds: float | None) -> str:
    """``3 min 5 s ago``; ``—`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    return f"{duration(seconds)} ago"


def short_id(text: str, width: int = 13) -> str:
    """``text`` if it fits ``width`` characters, else its first 6 and last 4 characters
    around ``…`` (``0x1111111111111111111111111111111111111111`` → ``0x1111…1111``)."""
    if len(text) <= max(width, 11):
        return text
    return f"{text[:6]}…{text[-4:]}"


def short_scope(scope_key: str, width: int = 13) -> str:
    """A scope key ``VENUE:ACCOUNT/SCOPE`` with its account shortened by :func:`short_id`
    (``hyperliquid:0x1111…1111/cross``); anything else unchanged."""
    venue, sep, rest = scope_key.partition(":")
    if not sep:
        return scope_key
    account, slash, scope = rest.rpartition("/")
    if not slash:
        return f"{venue}:{short_id(rest, width)}"
    return f"{venue}:{short_id(account, width)}/{scope}"
