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

from monitor.logs import (
    configure_logging,
    current_level,
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
