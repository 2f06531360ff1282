"""apprise's privacy form of a URL (its own debug lines: ``Loaded Telegram URL: tgram://1...0/``)
keeps a token's first and last characters, or its last four (``...abcd``); the log redactor
masks those marks inside a URL, so no character of a token reaches a log line, whatever
level the daemon runs at. Text with three dots elsewhere is left alone."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from monitor.logs import configure_logging, redact, reset_logging

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SID = "AC" + "a" * 32


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


def test_apprises_debug_lines_carry_no_character_of_a_token() -> None:
    import apprise

    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    apprise.Apprise.instantiate(f"tgram://{TG_TOKEN}/-1001234", suppress_exceptions=True)
    apprise.Apprise.instantiate(
        f"twilio://{SID}:{'b' * 32}@12345678901/19876543210", suppress_exceptions=True
    )
    loaded = [
        doc["event"]
        for doc in map(json.loads, out.getvalue().splitlines())
        if str(doc["event"]).startswith("Loaded ")
    ]
    assert len(loaded) == 2  # apprise wrote its two debug lines, through our processors
    tg, twilio = loaded
    assert tg.startswith("Loaded Telegram URL: tgram://***/-1001234/")
    assert "1...0" not in tg
    assert twilio.startswith("Loaded Twilio URL: twilio://***:***@")
    assert "...aaaa" not in twilio


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("tgram://1...0/-100/", "tgram://***/-100/"),
        ("pover://u...G@a...i/", "pover://***@***/"),
        ("slack://T...2/A...D/T...Q//", "slack://***/***/***//"),
        ("twilio://...aaaa:***@host", "twilio://***:***@host"),
        ("json://h.io/?token=...wxyz&x=1", "json://h.io/?token=***&x=1"),
    ],
)
def test_privacy_marks_inside_a_url_are_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "loading... done: 3 of 4",
        "waiting...",
        "see https://example.com/docs and so on...",
        "hyperliquid:0x1111…1111@xyz",  # the one-character ellipsis of a short address
    ],
)
def test_three_dots_outside_a_url_mark_are_left_alone(text: str) -> None:
    assert redact(text) == text
