"""msgspec Structs for configuration tables, and the error mapper that keeps messages human.

The configuration's tables are declared as ``msgspec.Struct`` classes with
``forbid_unknown_fields=True``; :func:`convert` turns a raw TOML table into one and maps every
``msgspec.ValidationError`` to ``ConfigError(file, "key.path", problem)``:

* an unknown key names the nearest valid key (``unknown key; did you mean 'level'?``) or
  lists the valid ones;
* a type problem is said in words (``expected true or false, got the number 1``);
* the field types below parse the configuration's own syntaxes with their own messages:
  :class:`Seconds` (durations, :func:`monitor.units.duration_seconds`), :class:`Interval`
  (a duration > 0), :class:`Fraction`
  (``0.8`` or ``"80%"``), :class:`Number` (a finite number), :class:`Text` (a non-empty
  string, stripped), :class:`Name` (a :class:`Text` without control or format characters:
  account names and labels), :class:`Symbol` (the same rule for an instrument's symbol).

:func:`hidden_char` is that rule for other strings (the symbols of manual positions).

Messages go through :func:`monitor.logs.redact`, so a secret never appears in an error.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec

from monitor.errors import ConfigError
from monitor.logs import redact
from monitor.units import describe, duration_seconds, fraction

T = TypeVar("T")


class Seconds(float):
    """A duration in seconds (``30``, ``"15s"``, ``"5m"``, ``"2h"``, ``"1d"``), ≥ 0."""


class Interval(float):
    """A duration that must be > 0 (an interval, a deadline, a timeout)."""


class Fraction(float):
    """A fraction: a number (``0.8``) or a percent string (``"80%"``)."""


class Number(float):
    """A finite number (an integer or a float; not a boolean, not a string)."""


class Text(str):
    """A non-empty string, surrounding blanks stripped."""

    __slots__ = ()


class Name(Text):
    """A :class:`Text` shown to people as a name (an account's name, a label): no control
    (Unicode category Cc) or format (Cf) character in it. Those include the bidi marks,
    embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
    U+061C), which make a name display as another (Trojan Source), and the zero-width space
    and byte-order mark (U+200B, U+FEFF), which make two names look alike; nor a line or
    paragraph separator (U+2028, U+2029: Zl, Zp), which splits a one-line log line or alert
    title in two (every other line break, NEL U+0085 too, is a Cc). The zero-width
    non-joiner and joiner (U+200C, U+200D) are allowed: Persian and Indic words and emoji
    sequences need them; so are the tags of a subdivision flag (🏴, tag digits or lower-case
    letters, U+E007F: England, Scotland, Wales), and only there. The error names the first
    refused character's code point (``U+202E``)."""

    __slots__ = ()


class Symbol(Text):
    """A :class:`Text` naming an instrument as its venue writes it (``BTC``, ``xyz:TSLA``,
    ``@107``, ``BTC/USDT:USDT``): no control or format character, as in a :class:`Name`."""

    __slots__ = ()


def _hook(tp: type, value: Any) -> Any:
    try:
        return _typed(tp, value)
    except OverflowError:  # an integer past float's range (a JSON book may hold any number)
        raise ValueError("must be finite, got an integer out of range") from None


def _typed(tp: type, value: Any) -> Any:
    if tp is Seconds:
        return Seconds(duration_seconds(value))
    if tp is Interval:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isnan(value):
                raise ValueError(f"must be finite, got {value!r}")
            if value <= 0:
                raise ValueError(f"must be > 0, got {value!r}")
        secs = duration_seconds(value)
        if secs <= 0:
            raise ValueError(f"must be > 0, got {value!r}")
        return Interval(secs)
    if tp is Fraction:
        return Fraction(fraction(value))
    if tp is Number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {describe(value)}")
        if not math.isfinite(value):
            raise ValueError(f"must be finite, got {value!r}")
        return Number(value)
    if tp is Text or tp is Name or tp is Symbol:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a non-empty string, got {describe(value)}")
        text = value.strip()
        if tp is not Text:
            _check_name(text, "symbol" if tp is Symbol else "name")
        return tp(text)
    raise NotImplementedError(tp)


#: the Unicode categories a name refuses: controls (Cc: C0, DEL, C1, NEL among them), format
#: characters (Cf) and the line and paragraph separators (Zl U+2028, Zp U+2029), which end a
#: line wherever ``str.splitlines``, a chat client or a terminal reads them (every other
#: line break ``str.splitlines`` knows is a Cc)
_HIDDEN: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: format characters a name may hold: the zero-width non-joiner and joiner (Persian and Indic
#: spelling, emoji sequences such as 👩‍💻)
_JOINERS: Final = frozenset("\u200c\u200d")
#: a subdivision flag (Unicode TS #51 emoji tag sequence: 🏴 England, Scotland, Wales): the
#: black flag, tag letters and digits (format characters), a cancel tag; its tags are kept
_TAG_FLAG: Final = re.compile(
    "\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f"
)


def hidden_char(text: str) -> str | None:
    """The first character of ``text`` that a :class:`Name` refuses, as its code point and
    Unicode name (``"U+202E (RIGHT-TO-LEFT OVERRIDE)"``), or None: a control (Cc) or format
    (Cf) character but the joiners and a subdivision flag's tags, or a line or paragraph
    separator (U+2028, U+2029: Zl, Zp). Other characters
    :meth:`str.isprintable` refuses (a no-break space, a private use or unassigned code
    point) pass. Text that :meth:`str.isprintable` accepts has none (the quick test)."""
    if text.isprintable():
        return None
    for char in _TAG_FLAG.sub("\U0001f3f4", text):
        if unicodedata.category(char) in _HIDDEN and char not in _JOINERS:
            code = f"U+{ord(char):04X}"
            what = unicodedata.name(char, "")
            return f"{code} ({what})" if what else code
    return None


def hidden_problem(named: str, what: str = "name") -> str:
    """The message for a ``what`` (``name``, ``symbol``) holding the character ``named``
    (as :func:`hidden_char` gives it)."""
    return (
        f"holds {named}, an invisible control, format or line-breaking character that can "
        f"make an alert show another {what} than this one: remove it"
    )


def _check_name(text: str, what: str = "name") -> None:
    """Raise ``ValueError`` naming the first character of ``text`` :func:`hidden_char`
    finds."""
    named = hidden_char(text)
    if named is not None:
        raise ValueError(hidden_problem(named, what))


_AT: Final = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<key>.*)`$", re.S)
_EXPECTED: Final = re.compile(r"^Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`$")
_SEGMENT: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_WORDS: Final = {
    "bool": "true or false",
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "int | float": "a number",
    "object": "a table",
    "array": "a list",
}


def join(prefix: str, key: str | int) -> str:
    """``prefix.key`` or ``prefix[i]`` (``key`` alone at the top)."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def field_names(tp: type[msgspec.Struct]) -> tuple[str, ...]:
    """The TOML keys of a Struct, in declaration order."""
    return tuple(f.encode_name for f in msgspec.structs.fields(tp))


def unknown_key(key: str, valid: Sequence[str], source: str, path: str) -> ConfigError:
    """``ConfigError`` for an unknown key, naming the nearest valid key (or all of them)."""
    near = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(valid)})"
    return ConfigError(source, path, redact(f"unknown key{hint}"))


def convert(raw: Any, tp: type[T], source: str, prefix: str = "") -> T:
    """``raw`` (a TOML table) as the Struct ``tp``; raise ``ConfigError(source, path, …)``
    with the key path under ``prefix``."""
    try:
        return msgspec.convert(raw, tp, strict=True, dec_hook=_hook)
    except msgspec.ValidationError as exc:
        raise _map(str(exc), raw, tp, source, prefix) from None


def _map(text: str, raw: Any, tp: type, source: str, prefix: str) -> ConfigError:
    m = _AT.match(text)
    msg, at = (m.group("msg"), m.group("path") or "") if m else (text, "")
    segments: list[str | int] = [
        s.group(1) if s.group(1) is not None else int(s.group(2)) for s in _SEGMENT.finditer(at)
    ]
    path = prefix
    for seg in segments:
        path = join(path, seg)
    if u := _UNKNOWN.match(msg):
        key = u.group("key")
        return unknown_key(key, _fields_at(tp, segments), source, join(path, key))
    value = _value_at(raw, segments)
    if e := _EXPECTED.match(msg):
        want = e.group("want")
        words = _WORDS.get(want, want.replace("`", ""))
        return ConfigError(source, path or None, redact(f"expected {words}, got {describe(value)}"))
    return ConfigError(source, path or None, redact(msg))


def _value_at(raw: Any, segments: Sequence[str | int]) -> Any:
    for seg in segments:
        found = (isinstance(seg, int) and isinstance(raw, list) and seg < len(raw)) or (
            isinstance(seg, str) and isinstance(raw, Mapping) and seg in raw
        )
        if not found:
            return None
        raw = raw[seg]
    return raw


def _fields_at(tp: Any, segments: Sequence[str | int]) -> tuple[str, ...]:
    """The valid keys of the Struct found at ``segments`` below ``tp`` (empty if none)."""
    info: Any = msgspec.inspect.type_info(tp)
    for seg in segments:
        info = _struct_of(info)
        if isinstance(seg, int) and isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        elif isinstance(seg, str) and isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == seg), None)
        elif isinstance(seg, str) and isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return ()
    info = _struct_of(info)
    if isinstance(info, msgspec.inspect.StructType):
        return tuple(f.encode_name for f in info.fields)
    return ()


def _struct_of(info: Any) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        for t in info.types:
            if isinstance(t, msgspec.inspect.StructType | msgspec.inspect.ListType):
                return t
    return info
