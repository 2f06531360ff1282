"""The processors' cheaper checks (issue 12: printable ASCII skips the control-character
regex, text shorter than a bot token skips its regex, the redactor's plain strings inline)
render every line as the processors before them did, byte for byte.

The reference below is the processors' code as it was before those checks (commit 501e493),
copied verbatim but for its names; the helpers it calls (:func:`mask_url_passwords`,
:func:`mask_userinfo`, the patterns) are unchanged."""

from __future__ import annotations

import enum
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.logs import (
    _BOT_TOKEN,
    _BOT_TOKEN_MIN,
    _CONTROL,
    _CONTROL_NO_LF,
    _PRIVACY_MARK,
    _SCALARS,
    MASK,
    ControlEscaper,
    Redactor,
    _escape,
    _JSONRenderer,
    _secret_key,
    escape_controls,
    mask_url_passwords,
    mask_userinfo,
)

BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
SECRETS = ("hunter2", "s3cr:et")


class _OldRedactor:
    """``Redactor`` text/value/_item/__call__ as of 501e493."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = tuple(sorted(secrets, key=len, reverse=True))

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        if ":" not in value:
            return value
        value = _BOT_TOKEN.sub(MASK, value)
        if "://" in value:
            value = mask_url_passwords(value)
            if "..." in value:
                value = _PRIVACY_MARK.sub(MASK, value)
        if "@" not in value:
            return value
        return mask_userinfo(value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self._item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, BaseException | bytes | bytearray | set | frozenset):
            return self.text(repr(value))
        return value

    def _item(self, key: object, value: Any) -> Any:
        if (
            isinstance(key, str)
            and _secret_key(key)
            and isinstance(value, str | bytes | bytearray)
            and value
        ):
            return MASK
        return self.value(value)

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key in list(event_dict):
            if key.startswith("_"):
                continue
            value = event_dict[key]
            kind = type(value)
            if kind is str:
                event_dict[key] = MASK if value and _secret_key(key) else self.text(value)
            elif value is not None and kind not in _SCALARS:
                event_dict[key] = self._item(key, value)
        return event_dict


def _old_escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    pattern = _CONTROL_NO_LF if keep_newlines else _CONTROL
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


class _OldEscaper:
    """``ControlEscaper`` as of 501e493."""

    def __init__(self, keep_lines: frozenset[str] = frozenset()) -> None:
        self.keep_lines = keep_lines

    def value(self, value: Any, *, keep_newlines: bool = False) -> Any:
        if isinstance(value, str):
            return _old_escape_controls(value, keep_newlines=keep_newlines)
        if isinstance(value, dict):
            return {
                (_old_escape_controls(k) if isinstance(k, str) else k): self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key in list(event_dict):
            if key.startswith("_"):
                continue
            value = event_dict[key]
            kind = type(value)
            if kind is str:
                pattern = _CONTROL_NO_LF if key in self.keep_lines else _CONTROL
                if pattern.search(value) is not None:
                    event_dict[key] = pattern.sub(_escape, value)
            elif value is not None and kind not in _SCALARS:
                event_dict[key] = self.value(value, keep_newlines=key in self.keep_lines)
            if _CONTROL.search(key) is not None:
                value = event_dict.pop(key)
                event_dict[_old_escape_controls(key)] = value
        return event_dict


class Tone(enum.StrEnum):
    LOUD = "lo\x1bud"
    CALM = "calm"


#: every kind of character the processors treat apart: printable ASCII, the C0 controls and
#: DEL, C1 (CSI U+009B), bidi marks and overrides, line separators, lone surrogates, other
#: non-ASCII (é, …), and the pieces of secrets (colons, ``://``, ``@``, bot tokens)
_pieces = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(max_codepoint=0x1F),
    st.sampled_from(
        ["\x7f", "\x9b", "\x85", "\u061c", "\u200e", "\u202e", "\u2028", "\u2066", "\ud800"]
    ),
    st.sampled_from(["é", "…", "\u00a0", "\u3000", "\ufeff", "\U0001f600"]),
    st.sampled_from(
        [":", "://", "@", "...", BOT, "A" * 30, "12:", "https://bob:pw@host/x", "u:p@h"]
    ),
    st.sampled_from(SECRETS),
)
_text = st.lists(_pieces, max_size=16).map("".join)
_long_text = st.lists(_pieces, min_size=40, max_size=120).map("".join)
_keys = st.one_of(
    st.sampled_from(
        [
            "event",
            "key",
            "timestamp",
            "level",
            "api_key",
            "password",
            "token_file",
            "_record",
            "stack",
            "exception",
            "x\x1by",
            "x\ny",
            "caf\u00e9",
            "bi\u202edi",
        ]
    ),
    _text,
)
_scalars = st.one_of(
    st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(), st.just(Tone.LOUD)
)
_leaves = st.one_of(
    _text,
    _long_text,
    _scalars,
    st.binary(max_size=8),
    st.frozensets(_text, max_size=2),
    st.builds(ValueError, _text),
)
_values: st.SearchStrategy[Any] = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(_keys, st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
)
_events = st.dictionaries(_keys, _values, max_size=8)


def _render(event: dict[str, Any], keep: frozenset[str], *, old: bool) -> str:
    """The JSON line the redactor, the escaper and the JSON renderer make of ``event``."""
    if old:
        redactor: Any = _OldRedactor(SECRETS)
        escaper: Any = _OldEscaper(keep)
    else:
        redactor = Redactor()
        for secret in SECRETS:
            redactor.register(secret)
        escaper = ControlEscaper(keep)
    out = escaper(None, "info", redactor(None, "info", dict(event)))
    return str(_JSONRenderer()(None, "info", out))


@settings(max_examples=400)
@given(_events, st.booleans())
@example(
    {
        "event": "alert.fired",
        "key": "margin_ratio|hyperliquid:0x1111\u20261111/cross#7",
        "severity": "critical",
        "value": 0.93,
        "threshold": 0.8,
        "muted": False,
        "level": "info",
        "timestamp": "2026-11-30T19:00:00.123456Z",
    },
    False,
)
@example({"event": f"token {BOT}", "x\x1by": "a\x9bb\u202ec", "password": "hunter2"}, False)
@example({"stack": "line 1\nline 2\x1b", "exception": ["a\nb"], "_record": "\x1b"}, True)
@example({"k": {"api_key": b"raw", "n": [("\u2028", Tone.LOUD)]}, "url": "s://u:s3cr:et@h"}, True)
@example({"e": "1:" + "A" * 30, "f": "1:" + "A" * 29, "g": "x" * 26 + "hunter2"}, False)
# a key with a control character whose escaped spelling is a later key: the escaped value
# moved there is what that later key reads (as before), not the value it held
@example({"x\ny": "a\x1b", "x\\ny": "b\x1b"}, False)
@example({"x\ny": {"k": 1}, "x\\ny": "b\u2028", "z": "c"}, True)
def test_a_line_renders_as_the_processors_before_the_fast_checks_rendered_it(
    event: dict[str, Any], keep_stack: bool
) -> None:
    keep = frozenset({"exception", "stack"}) if keep_stack else frozenset()
    assert _render(event, keep, old=False) == _render(event, keep, old=True)


def test_printable_ascii_holds_no_character_the_escaper_rewrites() -> None:
    """Why ``isascii() and isprintable()`` may skip the regex: of the 128 ASCII characters,
    those the pattern matches (C0 and DEL, 33 of them) are exactly the unprintable ones."""
    ascii_chars = [chr(c) for c in range(128)]
    matched = {c for c in ascii_chars if _CONTROL.search(c)}
    unprintable = {c for c in ascii_chars if not c.isprintable()}
    assert matched == unprintable
    assert len(matched) == 32 + 1  # 0x00-0x1f and 0x7f
    assert escape_controls("plain ascii: ok") == "plain ascii: ok"
    assert escape_controls("a\x1bb") == "a\\x1bb"
    assert escape_controls("a\nb", keep_newlines=True) == "a\nb"
    assert escape_controls("é\u202e") == "é\\u202e"


def test_the_shortest_bot_token_is_as_long_as_the_check_skipping_its_regex() -> None:
    """``1:`` and 30 token characters (2 + 30 = 32) match; one fewer does not, nor does a
    27-character timestamp."""
    assert _BOT_TOKEN_MIN == 32
    assert _BOT_TOKEN.search("1:" + "A" * 30) is not None
    assert _BOT_TOKEN.search("1:" + "A" * 29) is None
    assert Redactor().text("1:" + "A" * 30) == MASK
    assert Redactor().text("2026-11-30T19:00:00.123456Z") == "2026-11-30T19:00:00.123456Z"
