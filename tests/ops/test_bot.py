"""The Telegram command bot, long polling a loopback Bot API stand-in (tests/ops/botapi.py),
answering from a real SQLite store."""

from __future__ import annotations

import html
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

from monitor.config import TelegramBotConfig
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position
from monitor.ops.bot import (
    CommandBot,
    chunks,
    match_scopes,
    parse_mute,
    parse_whatif,
    start_bot,
)
from monitor.store.mutes import active_mutes
from monitor.whatif import Shock
from tests.ops.botapi import TOKEN, BotApi, Sent
from tests.ops.conftest import NOW, Filled

ALLOWED = 4242
STRANGER = 666


def _text(sent: Sent) -> str:
    """The reply as the user reads it: HTML tags dropped, entities decoded."""
    assert sent.text is not None
    return html.unescape(re.sub(r"</?pre>", "", sent.text))


def _cfg(api: BotApi) -> TelegramBotConfig:
    return TelegramBotConfig(
        enabled=True, token=TOKEN, chat_ids=(ALLOWED,), api_url=api.url, poll_timeout=2
    )


def _book() -> Portfolio:
    """collateral 20, BTC long 1 @ 100, maintenance 10 %: equity 20, MM 10, ratio 50 %."""
    p = Portfolio()
    pos = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.1), mark_price=100.0)
    p.apply(AccountSnapshot("generic", "alice", 20.0, (pos,)))
    return p


@pytest.fixture
async def bot(filled: Filled, api: BotApi) -> AsyncIterator[CommandBot]:
    book = _book()
    b = CommandBot(_cfg(api), filled.store, portfolio=lambda: book, now=lambda: NOW)
    await b.start()
    yield b
    await b.stop()


async def _ask(api: BotApi, text: str, n: int = 1, chat: int = ALLOWED, **kw: Any) -> list[Sent]:
    before = len(api.sent)
    await api.say(text, chat, date=kw.pop("date", NOW), **kw)
    return (await api.replies(before + n))[before:]


async def test_status_answers_with_every_scope_and_feed(api: BotApi, bot: CommandBot) -> None:
    (reply,) = await _ask(api, "/status")
    assert reply.chat_id == ALLOWED and reply.parse_mode == "HTML"
    text = _text(reply)
    # alice: MM 50 / equity 1000 = 5.0 %; bob: equity −5, liquidatable, ratio unknown
    assert "generic:alice/cross\n  MR 5.0% · liq — · shock — · eq 1,000.00" in text
    assert "generic:bob/cross  LIQUIDATABLE\n  MR — · liq 0.0% · shock 0.0% · eq -5.00" in text
    assert "  alerts: critical:margin_ratio" in text
    assert "dydx/v4_markets: STALE, last message 45s ago" in text
    assert "hyperliquid/activeAssetCtx:BTC: live, last message 2s ago" in text
    assert bot.answered == 1


async def test_other_chats_are_ignored_and_counted(api: BotApi, bot: CommandBot) -> None:
    with capture_logs() as logs:
        await api.say("/status", STRANGER, date=NOW, user="mallory", user_id=13)
        await api.say("/mute monitor 1d", STRANGER, date=NOW, user="mallory", user_id=13)
        (reply,) = await _ask(api, "/help")
    # updates are handled in order: both strangers' came before the answered /help
    assert reply.chat_id == ALLOWED
    assert [s.chat_id for s in api.sent] == [ALLOWED]
    assert bot.ignored == 2 and bot.answered == 1
    ignored = [e for e in logs if e["event"] == "bot.ignored_chat"]
    assert ignored == [
        {
            "event": "bot.ignored_chat",
            "chat_id": STRANGER,
            "user_id": 13,
            "username": "mallory",
            "log_level": "warning",
        }
    ]  # logged once per chat, counted every time
    assert await active_mutes(bot.store, NOW) == []


async def test_scope_by_any_unique_part_of_its_name(api: BotApi, bot: CommandBot) -> None:
    (one,) = await _ask(api, "/scope alice")
    text = _text(one)
    assert text.startswith("generic:alice/cross\nequity 1,000.00 · maintenance 50.00\n")
    assert "margin ratio 5.0% (100% = liquidation)" in text
    assert "as of 2023-11-14T22:13:19Z (1s ago)" in text
    (several,) = await _ask(api, "/scope cross")
    assert _text(several) == "'cross' matches several:\ngeneric:alice/cross\ngeneric:bob/cross"
    (none,) = await _ask(api, "/scope carol")
    assert _text(none).startswith("no scope matches 'carol'; known: generic:alice/cross")


async def test_history_sends_a_chart_with_a_caption(api: BotApi, bot: CommandBot) -> None:
    (photo,) = await _ask(api, "/history alice 30m")
    assert photo.method == "sendPhoto" and photo.photo is not None
    img = Image.open(io.BytesIO(photo.photo))
    img.load()
    assert (img.format, img.size) == ("PNG", (1000, 600))
    # the last 30 min: samples 30…60 (31); marks 90 → 100: ratio 0.1·90/10 = 90 % down to
    # 0.1·100/20 = 50 %; nearest liquidation (90 − 88.89)/90 = 1.2 % at the bottom
    assert photo.caption == (
        "generic:alice/cross, last 0.5h: 31 samples; margin ratio 50.0%–90.0%, "
        "nearest liquidation at least 1.2%"
    )
    (empty,) = await _ask(api, "/history bob 1h")
    assert _text(empty) == "generic:bob/cross: no samples in the last 1h"
    (bad,) = await _ask(api, "/history alice soon")
    assert "history: DURATION" in _text(bad)


async def test_mute_and_unmute_change_the_store_and_log_who_asked(
    api: BotApi, bot: CommandBot
) -> None:
    with capture_logs() as logs:
        (muted,) = await _ask(api, "/mute generic:alice 2h —critical maintenance window")
        # NOW = 2023-11-14T22:13:20Z, + 2 h
        assert _text(muted) == ("muted generic:alice until 2023-11-15T00:13:20Z, critical included")
        (mute,) = await active_mutes(bot.store, NOW)
        assert (mute.target, mute.until, mute.critical, mute.reason) == (
            "generic:alice",
            NOW + 7200.0,
            True,
            "maintenance window",
        )
        (listed,) = await _ask(api, "/mutes")
        assert _text(listed) == (
            "generic:alice all rules until 2023-11-15T00:13:20Z incl. critical (maintenance window)"
        )
        (unmuted,) = await _ask(api, "/unmute generic:alice")
        assert _text(unmuted) == "removed 1 mute of generic:alice"
        assert await active_mutes(bot.store, NOW) == []
    events = {e["event"]: e for e in logs if e["event"].startswith("bot.")}
    assert events["bot.mute"]["username"] == "ann" and events["bot.mute"]["user_id"] == 7
    assert events["bot.mute"]["chat_id"] == ALLOWED
    assert events["bot.mute"]["until"] == "2023-11-15T00:13:20Z"
    assert events["bot.unmute"]["removed"] == 1 and events["bot.unmute"]["username"] == "ann"


async def test_bad_or_late_mutes_change_nothing(api: BotApi, bot: CommandBot) -> None:
    (bad,) = await _ask(api, "/mute not/a/target 2h")
    assert _text(bad).startswith("TARGET: not a target: 'not/a/target'")
    (long,) = await _ask(api, "/mute monitor 400d")
    assert _text(long) == "DURATION: at most 366 days"
    (late,) = await _ask(api, "/mute monitor 2h", date=NOW - 301.0)
    assert _text(late) == "not muted: that command waited too long to reach me"
    assert await active_mutes(bot.store, NOW) == []


async def test_whatif_shocks_the_live_book(api: BotApi, bot: CommandBot) -> None:
    (reply,) = await _ask(api, "/whatif —shock -10%")
    text = _text(reply)
    # −10 %: mark 90, equity 20 − 10 = 10, MM 0.1·90 = 9 → ratio 90 %; liquidation where
    # m − 80 = 0.1·m, m = 88.89: distance (90 − 88.89)/90 = 1.23 %
    assert text.startswith("scenario: --shock -10%\n  generic BTC: 100 -> 90\n")
    assert re.search(r"equity\s+20\.00\s+10\.00\n", text), text
    assert re.search(r"margin ratio\s+50\.00%\s+90\.00%\n", text), text
    assert re.search(r"BTC liq distance\s+11\.11%\s+1\.23%\n", text), text
    (bad,) = await _ask(api, "/whatif --shock down")
    assert _text(bad) == "--shock down: expected a percentage or a fraction such as -10% or -0.1"


async def test_whatif_without_the_daemons_book_says_so(filled: Filled, api: BotApi) -> None:
    b = await start_bot(_cfg(api), filled.store)  # what the daemon calls; no portfolio given
    try:
        (reply,) = await _ask(api, "/whatif --shock -10%")
    finally:
        await b.stop()
    assert _text(reply) == "whatif needs the running daemon's book; not available"


async def test_bot_keeps_trying_while_the_api_is_down(filled: Filled, api: BotApi) -> None:
    api.getme_failures = 1
    b = CommandBot(_cfg(api), filled.store, now=lambda: NOW)
    with capture_logs() as logs:
        await b.start()  # returns at once, whatever Telegram says
        try:
            (reply,) = await _ask(api, "/help")
        finally:
            await b.stop()
    assert "/status: every scope and feed" in _text(reply)
    assert api.calls[:2] == ["getMe", "getMe"]
    failed = [e for e in logs if e["event"] == "bot.connect_failed"]
    assert len(failed) == 1 and failed[0]["retry_in"] == 1.0
    assert TOKEN not in repr(logs)


async def test_a_wrong_token_never_reaches_the_logs(filled: Filled, api: BotApi) -> None:
    import io as _io

    from monitor.logs import configure_logging

    out = _io.StringIO()
    configure_logging("debug", "json", stream=out)
    wrong = "987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
    cfg = TelegramBotConfig(
        enabled=True, token=wrong, chat_ids=(ALLOWED,), api_url=api.url, poll_timeout=2
    )
    b = CommandBot(cfg, filled.store, now=lambda: NOW)
    await b.start()
    try:
        await api.called("getMe", 2)  # the first failure was logged before the retry
    finally:
        await b.stop()
    text = out.getvalue()
    assert "bot.connect_failed" in text and "Unauthorized" in text  # the reason is logged …
    assert wrong not in text and "ZZHdq" not in text  # … never the token


async def test_stop_returns_promptly_during_a_long_poll(filled: Filled, api: BotApi) -> None:
    import asyncio
    import time

    cfg = TelegramBotConfig(
        enabled=True, token=TOKEN, chat_ids=(ALLOWED,), api_url=api.url, poll_timeout=30
    )
    b = CommandBot(cfg, filled.store, now=lambda: NOW)
    await b.start()
    await asyncio.wait_for(b.connected.wait(), 10)
    await api.called("getUpdates", 1)
    t0 = time.monotonic()
    await b.stop()
    assert time.monotonic() - t0 < 5.0  # not the 30 s the poll would last


def test_scope_matching_prefers_the_exact_name() -> None:
    scopes = ["dydx:a/0/cross", "dydx:a/0/isolated:ETH", "dydx:a/01/cross"]
    assert match_scopes("dydx:a/0/cross", scopes) == ["dydx:a/0/cross"]
    assert match_scopes("ETH", scopes) == ["dydx:a/0/isolated:ETH"]
    assert match_scopes("/0", scopes) == scopes


def test_chunks_fit_telegrams_limit_and_keep_every_character() -> None:
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(200)) + "\n" + "y" * 9000
    parts = chunks(text, 3900)
    assert all(len(p) <= 3900 for p in parts)
    assert "\n".join(parts).replace("\n", "") == text.replace("\n", "")
    assert chunks("") == [""]


def test_mute_and_whatif_arguments() -> None:
    assert parse_mute(["feed:okx", "30m", "--rule", "feed_stale", "venue", "maintenance"]) == (
        "feed:okx",
        1800.0,
        "feed_stale",
        False,
        "venue maintenance",
    )
    assert parse_whatif(["–shock", "-10%", "--shock=-5%"]) == [Shock(-0.10), Shock(-0.05)]
    with pytest.raises(Exception, match="expected one of --shock"):
        parse_whatif(["shock", "-10%"])


async def test_plain_text_gets_no_reply_and_group_style_commands_work(
    api: BotApi, bot: CommandBot
) -> None:
    await api.say("hello bot", ALLOWED, date=NOW)
    (reply,) = await _ask(api, "/scope@mon_bot bob")  # as Telegram sends it in a group
    assert _text(reply).startswith("generic:bob/cross  LIQUIDATABLE\n")
    assert len(api.sent) == 1 and bot.ignored == 0
