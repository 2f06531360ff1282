"""apprise async_notify per channel against real loopback services."""

from __future__ import annotations

from pathlib import Path

from monitor.notify.channels import parse_channels
from monitor.notify.sender import AppriseSender, retry_after_of
from tests.notify.conftest import TG_TOKEN, SmtpServer, TelegramStandIn, WebhookServer


def channel(url: str, name: str = "c") -> object:
    (ch,) = parse_channels({name: {"url": url}}, "t.toml", env={}, credentials_dir=None)
    return ch


async def test_webhook_json_post(webhook: WebhookServer) -> None:
    (ch,) = parse_channels({"hook": {"url": webhook.url()}}, "t", env={}, credentials_dir=None)
    r = await AppriseSender().send(ch, "Title", "Body line", "text", "warning")
    assert r.ok and r.status == "SUCCESS"
    (path, doc) = webhook.posts[0]
    assert path == "/hook"
    assert doc["title"] == "Title" and doc["message"] == "Body line" and doc["type"] == "warning"


async def test_webhook_500_is_a_failure_with_the_reason(webhook: WebhookServer) -> None:
    webhook.down = True
    (ch,) = parse_channels({"hook": {"url": webhook.url()}}, "t", env={}, credentials_dir=None)
    r = await AppriseSender().send(ch, "T", "B", "text", "info")
    assert not r.ok and r.status == "FAILURE"
    assert r.error is not None and "500" in r.error
    assert r.retry_after is None


async def test_telegram_real_plugin_to_stand_in(
    telegram: TelegramStandIn, tgram_schema: str
) -> None:
    (ch,) = parse_channels({"tg": {"url": tgram_schema}}, "t", env={}, credentials_dir=None)
    assert TG_TOKEN not in ch.redacted
    r = await AppriseSender().send(ch, "Alert", "margin ratio 0.95 <≥> 0.9", "text", "failure")
    assert r.ok
    (msg,) = telegram.messages
    assert telegram.tokens == [TG_TOKEN]
    assert msg["chat_id"] == -1001234567890
    # apprise's Telegram plugin sends HTML by default: title in bold, text escaped
    assert msg["parse_mode"] == "HTML"
    assert msg["text"] == "<b>Alert</b>\r\nmargin ratio 0.95 &lt;≥&gt; 0.9"


async def test_telegram_429_reports_retry_after(
    telegram: TelegramStandIn, tgram_schema: str
) -> None:
    telegram.replies = [(429, 7)]
    (ch,) = parse_channels({"tg": {"url": tgram_schema}}, "t", env={}, credentials_dir=None)
    r = await AppriseSender().send(ch, "Alert", "body", "text", "failure")
    assert not r.ok
    assert r.retry_after == 7.0
    assert r.error is not None and TG_TOKEN not in r.error


async def test_email_to_aiosmtpd(smtp: SmtpServer) -> None:
    (ch,) = parse_channels({"mail": {"url": smtp.url()}}, "t", env={}, credentials_dir=None)
    r = await AppriseSender().send(
        ch, "[CRITICAL] hl:0x1: margin ratio", "Line 1\nLine 2", "text", "failure"
    )
    assert r.ok, r.error
    (msg,) = smtp.messages
    assert msg["Subject"] == "[CRITICAL] hl:0x1: margin ratio"
    assert smtp.envelopes == [("bot@example.com", ["alice@example.com"])]
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().strip().splitlines() == ["Line 1", "Line 2"]


async def test_unreachable_is_a_failure(tmp_path: Path) -> None:
    (ch,) = parse_channels(
        {"hook": {"url": "json://127.0.0.1:1/x", "timeout": 5}},
        "t",
        env={},
        credentials_dir=None,
    )
    r = await AppriseSender().send(ch, "T", "B", "text", "info")
    assert not r.ok and r.error


def test_retry_after_parsing() -> None:
    assert retry_after_of("Too Many Requests: retry after 12, error=429.") == 12.0
    assert retry_after_of('{"parameters":{"retry_after":3}}') == 3.0
    assert retry_after_of("error=500") is None


async def test_telegram_markdown_goes_as_markdown(
    telegram: TelegramStandIn, tgram_schema: str
) -> None:
    (ch,) = parse_channels(
        {"tg": {"url": tgram_schema, "format": "markdown"}}, "t", env={}, credentials_dir=None
    )
    # our bodies are CommonMark; apprise turns **bold** into Telegram's Markdown v1 *bold*
    r = await AppriseSender().send(ch, "Alert", "**FIRING** BTC\\_USD", "markdown", "failure")
    assert r.ok
    (msg,) = telegram.messages
    assert msg["parse_mode"].lower() == "markdown"
    assert msg["text"] == "*Alert*\n*FIRING* BTC\\_USD"
