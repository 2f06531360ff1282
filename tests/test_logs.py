from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from monitor.logs import (
    configure_logging,
    current_level,
    escape_controls,
    on_journal,
    parse_level,
    redact,
    register_secret,
    reset_logging,
    set_level,
)

# a module-level logger, created before any configuration, as modules in monitor/ do
log = structlog.get_logger()

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"  # 35 chars after the colon


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_have_event_level_timestamp_and_context() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)  # StringIO is not a terminal: JSON
    structlog.contextvars.bind_contextvars(venue="hyperliquid", account="0xabc")
    log.info("feed.connected", channel="allMids")
    [rec] = lines(out)
    assert rec["event"] == "feed.connected"
    assert rec["level"] == "info"
    assert rec["venue"] == "hyperliquid"
    assert rec["account"] == "0xabc"
    assert rec["channel"] == "allMids"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", rec["timestamp"])


def test_below_level_events_are_dropped_and_level_changes_at_runtime() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    log.info("quiet.one")
    log.warning("loud.one")
    set_level("debug")  # the cached logger must obey
    assert current_level() == "debug"
    log.debug("now.visible")
    set_level("error")
    log.warning("quiet.two")
    log.error("loud.two")
    assert [r["event"] for r in lines(out)] == ["loud.one", "now.visible", "loud.two"]


def test_exceptions_become_structured_and_are_redacted() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        raise RuntimeError(f"connect failed for tgram://{BOT_TOKEN}/-1001")
    except RuntimeError:
        log.exception("outbox.failed")
    [rec] = lines(out)
    assert rec["event"] == "outbox.failed"
    assert rec["level"] == "error"
    exc = rec["exception"][0]
    assert exc["exc_type"] == "RuntimeError"
    assert BOT_TOKEN not in out.getvalue()
    assert "tgram://***/-1001" in exc["exc_value"]


def test_redaction_of_tokens_url_passwords_registered_secrets_and_secret_keys() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    register_secret("hunter2-very-secret")
    log.info(
        "channel.added",
        url="mailtos://alice:p4ss%40word@smtp.example.com:587?to=bob@example.com",
        note="the code is hunter2-very-secret, keep it",
        nested={"urls": [f"tgram://{BOT_TOKEN}/42"], "password": "plain"},
        api_key="k-123",
        count=3,
    )
    text = out.getvalue()
    for secret in ("p4ss%40word", "hunter2-very-secret", BOT_TOKEN, "plain", "k-123"):
        assert secret not in text
    [rec] = lines(out)
    assert rec["url"] == "mailtos://alice:***@smtp.example.com:587?to=bob@example.com"
    assert rec["note"] == "the code is ***, keep it"
    assert rec["nested"] == {"urls": ["tgram://***/42"], "password": "***"}
    assert rec["api_key"] == "***"
    assert rec["count"] == 3


@pytest.mark.parametrize(
    "text",
    [
        "at 12:30:45 mark 95031.0 on https://api.hyperliquid.xyz/info user@example.com",
        "mailto://localhost:25?from=monitor@localhost&to=root@localhost",  # a port, no password
        "json://127.0.0.1:8080/hook#frag@x",
    ],
)
def test_redact_leaves_harmless_text_alone(text: str) -> None:
    assert redact(text) == text


def test_stdlib_loggers_go_through_the_same_processors() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.contextvars.bind_contextvars(venue="dydx")
    logging.getLogger("apprise").warning("Failed to send to %s", f"tgram://{BOT_TOKEN}/1")
    logging.getLogger("websockets.client").debug("below the level: dropped")
    [rec] = lines(out)
    assert rec["logger"] == "apprise"
    assert rec["level"] == "warning"
    assert rec["event"] == "Failed to send to tgram://***/1"
    assert rec["venue"] == "dydx"
    assert "timestamp" in rec


def test_stdlib_exception_is_structured() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("aiosqlite").exception("query failed")
    [rec] = lines(out)
    assert rec["logger"] == "aiosqlite"
    assert rec["exception"][0]["exc_type"] == "ZeroDivisionError"


def test_set_level_applies_to_stdlib_loggers() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("ccxt").debug("hidden")
    set_level("debug")
    logging.getLogger("ccxt").debug("shown")
    assert [r["event"] for r in lines(out)] == ["shown"]


def test_terminal_gets_the_console_renderer() -> None:
    out = Tty()
    configure_logging("info", "auto", stream=out)
    log.info("feed.connected", venue="okx", token=BOT_TOKEN)
    text = out.getvalue()
    assert "feed.connected" in text
    assert "venue" in text
    assert "okx" in text
    assert BOT_TOKEN not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_forced_json_on_a_terminal_and_forced_console_on_a_pipe() -> None:
    tty = Tty()
    configure_logging("info", "json", stream=tty)
    log.info("a.b")
    assert lines(tty)[0]["event"] == "a.b"
    pipe = io.StringIO()
    configure_logging("info", "console", stream=pipe)
    log.info("c.d")
    assert "c.d" in pipe.getvalue()
    assert not pipe.getvalue().lstrip().startswith("{")


def test_reconfiguring_replaces_our_root_handler_only() -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    try:
        configure_logging("info", "json", stream=io.StringIO())
        second = io.StringIO()
        configure_logging("info", "json", stream=second)
        logging.getLogger("x").warning("once")
        assert [r["event"] for r in lines(second)] == ["once"]
        assert other in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(other)


@pytest.mark.parametrize("bad", ["verbose", ""])
def test_unknown_level_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level(bad)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("info", "xml", stream=io.StringIO())


def test_journal_lines_carry_their_syslog_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal"
    with path.open("w", encoding="utf-8") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert on_journal(stream)
        configure_logging("info", "auto", stream=stream)
        log.warning("feed.stale", venue="okx")
        log.info("feed.connected")
        logging.getLogger("apprise").error("send failed")
    raw = path.read_text().splitlines()
    assert [line[:3] for line in raw] == ["<4>", "<6>", "<3>"]  # warning, info, error
    assert json.loads(raw[0][3:])["event"] == "feed.stale"
    assert json.loads(raw[2][3:])["logger"] == "apprise"


def test_other_streams_are_not_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with (tmp_path / "f").open("w") as stream:
        assert not on_journal(stream)
    assert not on_journal(io.StringIO())  # no file descriptor
    monkeypatch.setenv("JOURNAL_STREAM", "junk")
    with (tmp_path / "g").open("w") as stream:
        assert not on_journal(stream)
    out = io.StringIO()
    configure_logging("info", "json", stream=out, journald=True)  # forced
    log.error("x.y")
    assert out.getvalue().startswith('<3>{"event": "x.y"')


# -- control characters (issue 10 item 10) ---------------------------------------------------
# venue-chosen strings: a HIP-3 coin name, an error frame's text, a symbol
HOSTILE = (
    "PWN\x1b[2J\x1b]0;owned\x07"  # clear the screen, retitle the terminal, bell
    "\r\nforged.event level=info"  # a carriage return and a forged line
    "\x9b31m"  # C1 CSI: an escape sequence without ESC
    "\u202egnp.evil"  # bidi override: the rest shows reversed
    "\x00\x7f\u2028\ud800"  # NUL, DEL, line separator, lone surrogate
)
HOSTILE_ESCAPED = (
    "PWN\\x1b[2J\\x1b]0;owned\\x07\\r\\nforged.event level=info\\x9b31m\\u202egnp.evil"
    "\\x00\\x7f\\u2028\\ud800"
)
#: every code point escape_controls must never let through
CONTROLS = [
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x2028, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\ud800",
    "\udfff",
]


def test_escape_controls_writes_each_control_as_its_escape() -> None:
    assert escape_controls(HOSTILE) == HOSTILE_ESCAPED
    assert escape_controls("a\tb") == "a\\tb"
    assert escape_controls("tb\nline", keep_newlines=True) == "tb\nline"
    assert escape_controls("x\x1b\ny", keep_newlines=True) == "x\\x1b\ny"


@pytest.mark.parametrize(
    "text", ["", "BTC-USD", "kPEPE", "Grüße ₿ 日本語 🚀", "a=b c:d {json}", "tab-less\\n"]
)
def test_escape_controls_leaves_printable_text_alone(text: str) -> None:
    assert escape_controls(text) is text  # no copy either: the common case is one search


@given(st.text(alphabet=st.characters(exclude_characters="\\") | st.sampled_from(CONTROLS)))
def test_escaped_text_has_no_control_left_and_keeps_every_other_character(text: str) -> None:
    out = escape_controls(text)
    assert not any(c in out for c in CONTROLS)
    out.encode("utf-8")  # strict: no lone surrogate survives
    # every other character is kept, in order: deleting the escapes gives it back (the
    # alphabet has no backslash of its own, so every backslash in ``out`` starts an escape)
    kept = "".join(c for c in text if c not in CONTROLS and not 0xD800 <= ord(c) <= 0xDFFF)
    assert re.sub(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|[tnr])", "", out) == kept


def test_json_lines_escape_controls_in_every_string_value() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log.warning(
        "feed.bad_frame",
        venue="hyperliquid",
        frame=HOSTILE,
        nested={"coin\x1b[5m": [HOSTILE], "n": 3},
        pair=(HOSTILE, 1.5),
    )
    logging.getLogger("websockets.client").warning("closed: %s", HOSTILE)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("feed.crashed")
    text = out.getvalue()
    assert text.count("\n") == 3  # one line per event, none forged
    recs = lines(out)
    assert [r["event"] for r in recs] == [
        "feed.bad_frame",
        f"closed: {HOSTILE_ESCAPED}",
        "feed.crashed",
    ]
    assert recs[0]["frame"] == HOSTILE_ESCAPED
    assert recs[0]["nested"] == {"coin\\x1b[5m": [HOSTILE_ESCAPED], "n": 3}
    assert recs[0]["pair"] == [HOSTILE_ESCAPED, 1.5]
    assert recs[2]["exception"][0]["exc_value"] == HOSTILE_ESCAPED
    # jq -r would print the decoded strings raw: not one control character reaches it
    for rec in recs:
        assert not any(c in json.dumps(rec, ensure_ascii=False) for c in CONTROLS if c != "\n")


def test_console_lines_escape_controls_and_keep_the_traceback_on_its_lines() -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    log.warning("feed.bad_frame", frame=HOSTILE)
    try:
        raise ValueError("bad\x1b[2Jcoin")
    except ValueError:
        log.exception("feed.crashed")
    text = out.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert "\r" not in text and "\x00" not in text
    first, *rest = text.splitlines()
    assert "feed.bad_frame" in first  # the frame on the event's line (quoted: it has spaces)
    assert f"frame={HOSTILE_ESCAPED!r}" in first
    assert "forged.event" not in "".join(rest)
    assert "Traceback (most recent call last):" in rest  # the traceback's own lines stay
    assert "ValueError: bad\\x1b[2Jcoin" in rest


def test_secrets_next_to_control_characters_are_still_masked() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log.error("send.failed", error=f"\x1b[1mtgram://{BOT_TOKEN}/1\x1b[0m")
    [rec] = lines(out)
    assert BOT_TOKEN not in out.getvalue()
    assert rec["error"] == "\\x1b[1mtgram://***/1\\x1b[0m"


def test_a_lone_surrogate_cannot_make_a_strict_utf8_stream_raise(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w", encoding="utf-8", errors="strict") as stream:
        configure_logging("info", "console", stream=stream)
        log.warning("feed.bad_frame", coin="BTC\ud800")  # json.loads accepts "\ud800"
    assert "coin=BTC\\ud800" in path.read_text(encoding="utf-8")
