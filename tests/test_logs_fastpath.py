"""The log processors' fast paths (plain strings and scalars handled inline, regexes skipped
where they cannot match, a prebuilt JSON encoder) give exactly what the general paths give."""

from __future__ import annotations

import enum
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.logs import (
    _BOT_TOKEN,
    _PRIVACY_MARK,
    MASK,
    ControlEscaper,
    Redactor,
    configure_logging,
    escape_controls,
    mask_url_passwords,
    mask_userinfo,
    reset_logging,
)

BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"


class Tone(enum.StrEnum):
    LOUD = "lo\x1bud"


#: text that may hold colons, URLs, bot tokens, secret-looking words and control characters
_text = st.lists(
    st.sampled_from(
        [
            *"ab:/@9_-x ",
            "://",
            "s://u:p@h",
            "12:",
            "A" * 31,
            BOT,
            "\x1b",
            "\n",
            "\u202e",
            "é",
            "...",
        ]
    ),
    max_size=12,
).map("".join)
_keys = st.sampled_from(
    ["key", "event", "api_key", "password", "x\x1by", "x\ny", "_record", "stack"]
)
_values: st.SearchStrategy[Any] = st.one_of(
    _text,
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.just(Tone.LOUD),
    st.lists(_text, max_size=3),
    st.tuples(_text, st.integers()),
    st.dictionaries(st.one_of(_text, st.integers()), _text, max_size=3),
)
_events = st.dictionaries(_keys, _values, max_size=6)


def _reference_text(secrets: tuple[str, ...], value: str) -> str:
    """Redactor.text before the fast path: every pattern on every string."""
    for secret in secrets:
        if secret in value:
            value = value.replace(secret, MASK)
    value = _BOT_TOKEN.sub(MASK, value)
    value = mask_url_passwords(value)
    if "://" in value:  # apprise's marks are masked only inside a URL
        value = _PRIVACY_MARK.sub(MASK, value)
    return mask_userinfo(value)


def _reference_escaper(keep: frozenset[str], event: dict[str, Any]) -> dict[str, Any]:
    """ControlEscaper.__call__ before the fast path: the general value() on every value."""
    esc = ControlEscaper(keep)
    for key in list(event):
        if key.startswith("_"):
            continue
        value = esc.value(event[key], keep_newlines=key in keep)
        safe = escape_controls(key)
        if safe != key:
            del event[key]
        event[safe] = value
    return event


@given(_text, st.lists(st.sampled_from(["ab", "u:p", "x"]), max_size=2))
@example(f"a {BOT} b", [])
@example("see https://user:pw@host/x", [])
@example("s://u:p@h and 12:" + "A" * 31, ["x"])
@example("u:p@h and a:b:c@x", [])
@example("tgram://1...9/ and x...y", [])
def test_redactor_text_equals_every_pattern_applied(text: str, secrets: list[str]) -> None:
    r = Redactor()
    for s in secrets:
        r.register(s)
    assert r.text(text) == _reference_text(r._secrets, text)


@given(_events)
@example({"x\ny": "a", "event": f"e {BOT}", "url": "s://u:p@h"})
def test_redactor_event_equals_the_general_item_path(event: dict[str, Any]) -> None:
    r = Redactor()
    r.register("u:p")
    expected = {k: (v if k.startswith("_") else r._item(k, v)) for k, v in event.items()}
    got = r(None, "info", dict(event))
    assert list(got.items()) == list(expected.items())  # same keys, order and values
    assert all(type(got[k]) is type(expected[k]) for k in got)


@given(_events, st.booleans())
@example({"x\ny": "a", "stack": "1\n2", "k": "\x1b"}, True)
def test_control_escaper_equals_the_general_value_path(
    event: dict[str, Any], keep_stack: bool
) -> None:
    keep = frozenset({"stack"}) if keep_stack else frozenset()
    expected = _reference_escaper(keep, dict(event))
    got = ControlEscaper(keep)(None, "info", dict(event))
    assert list(got.items()) == list(expected.items())
    assert all(type(got[k]) is type(expected[k]) for k in got)


@pytest.fixture
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


@pytest.mark.usefixtures("_reset")
def test_json_line_is_what_structlogs_json_renderer_writes() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    value = {"nested": [1.5, float("inf"), None, "é\x1b"], "obj": object()}
    structlog.get_logger().info("alert.fired", key="k|hyperliquid:0xab/cross", value=value)
    line = out.getvalue().rstrip("\n")
    event = json.loads(line)
    # the same dict through structlog's own renderer gives the same text, byte for byte
    reference = structlog.processors.JSONRenderer(sort_keys=False)(None, "info", event)
    assert re.sub(r'"obj": "[^"]*"', "", line) == re.sub(r'"obj": "[^"]*"', "", str(reference))
    assert '"obj": "<object object at 0x' in line  # the fallback: repr of the object
    assert "\\u00e9\\\\x1b" in line  # ASCII-only, the control escaped then JSON-escaped
