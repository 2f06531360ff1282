"""The bot's /mute, as `monitor mute`, refuses a target that names nothing the store knows
(with the nearest known name) instead of answering "muted" for a mute no alert can match;
``--force`` mutes it anyway. Against the loopback Bot API stand-in and a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.ops.bot import CommandBot
from monitor.store.mutes import active_mutes
from tests.ops.botapi import BotApi
from tests.ops.conftest import NOW, Filled
from tests.ops.test_bot import _ask, _cfg, _text


@pytest.fixture
async def bot(filled: Filled, api: BotApi) -> AsyncIterator[CommandBot]:
    b = CommandBot(_cfg(api), filled.store, now=lambda: NOW)
    await b.start()
    yield b
    await b.stop()


async def test_a_mistyped_account_is_refused_with_the_nearest_known_one(
    api: BotApi, bot: CommandBot
) -> None:
    (reply,) = await _ask(api, "/mute generic:alcie 2h")
    assert _text(reply) == (
        "not muted: unknown account 'generic:alcie'; did you mean 'generic:alice'? "
        "(--force to mute it anyway)"
    )
    (scope,) = await _ask(api, "/mute generic:alice/isolated:BTC 2h")
    assert _text(scope).startswith("not muted: unknown scope 'generic:alice/isolated:BTC'")
    assert await active_mutes(bot.store, NOW) == []


async def test_force_mutes_an_account_not_seen_yet_and_is_not_the_reason(
    api: BotApi, bot: CommandBot
) -> None:
    (reply,) = await _ask(api, "/mute generic:carol 2h --force before the first snapshot")
    # NOW = 2023-11-14T22:13:20Z, + 2 h
    assert _text(reply) == "muted generic:carol until 2023-11-15T00:13:20Z, critical still sent"
    (mute,) = await active_mutes(bot.store, NOW)
    assert (mute.target, mute.reason) == ("generic:carol", "before the first snapshot")


async def test_known_targets_still_mute_at_once(api: BotApi, bot: CommandBot) -> None:
    for text in ("/mute generic:bob 1h", "/mute generic:alice/cross 1h", "/mute feed:dydx 1h"):
        (reply,) = await _ask(api, text)
        assert _text(reply).startswith("muted "), text
    assert sorted(m.target for m in await active_mutes(bot.store, NOW)) == [
        "feed:dydx",
        "generic:alice/cross",
        "generic:bob",
    ]


def test_the_readme_bot_examples_name_targets_the_bot_accepts() -> None:
    """The README once showed ``/mute hyperliquid:0x1111 2h``, which the bot refuses (not a
    Hyperliquid address): every /mute and /unmute line of its bot block must parse."""
    from pathlib import Path

    from monitor.ops.bot import parse_mute

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("**Telegram command bot.**", 1)[1].split("```", 2)[1]
    mutes = [ln.split()[1:3] for ln in block.splitlines() if ln.startswith("/mute ")]
    unmutes = [ln.split()[1:2] for ln in block.splitlines() if ln.startswith("/unmute ")]
    assert mutes and unmutes
    for args in mutes:
        parse_mute(args)  # TARGET DURATION (the rest of the line is the README's comment)
    for (target,) in unmutes:
        parse_mute([target, "1h"])


# -- labels in the bot's answers -----------------------------------------------------------------

LABELS = {"generic:alice": "Alice desk", "generic:bob": "Bob swing"}


@pytest.fixture
async def labelled(filled: Filled, api: BotApi) -> AsyncIterator[CommandBot]:
    b = CommandBot(_cfg(api), filled.store, now=lambda: NOW, labels=LABELS)
    await b.start()
    yield b
    await b.stop()


async def test_status_and_scope_name_each_scope_by_its_label(
    api: BotApi, labelled: CommandBot
) -> None:
    """Before: /status and /scope showed only ``venue:account/scope`` (a Hyperliquid account
    as its 42-character address), never the label the configuration gives it."""
    (status,) = await _ask(api, "/status")
    text = _text(status)
    # alice: MM 50 / equity 1000 = 5.0 %
    assert "Alice desk (generic:alice/cross)\n  MR 5.0% · liq — · shock — · eq 1,000.00" in text
    assert "Bob swing (generic:bob/cross)  LIQUIDATABLE" in text
    (scope,) = await _ask(api, "/scope alice")
    assert _text(scope).splitlines()[0] == "Alice desk (generic:alice/cross)"


async def test_scope_and_history_find_a_scope_by_its_label(
    api: BotApi, labelled: CommandBot
) -> None:
    (scope,) = await _ask(api, "/scope bob swing")
    assert _text(scope).splitlines()[0] == "Bob swing (generic:bob/cross)  LIQUIDATABLE"
    (chart,) = await _ask(api, "/history Alice desk 2h")
    assert chart.caption is not None
    assert chart.caption.startswith("Alice desk (generic:alice/cross), last 2h: ")
    (none,) = await _ask(api, "/scope carol")
    assert _text(none).startswith("no scope matches 'carol'")


async def test_a_shorter_mute_says_the_longer_one_still_applies(
    api: BotApi, bot: CommandBot
) -> None:
    (first,) = await _ask(api, "/mute generic:bob 1d")
    assert _text(first) == "muted generic:bob until 2023-11-15T22:13:20Z, critical still sent"
    (second,) = await _ask(api, "/mute generic:bob 1h")
    # NOW = 2023-11-14T22:13:20Z: + 1 h, and the first mute's + 1 d
    assert _text(second) == (
        "muted generic:bob until 2023-11-14T23:13:20Z, critical still sent; an earlier mute "
        "lasts until 2023-11-15T22:13:20Z and still applies (/unmute it first)"
    )


async def test_history_takes_a_label_with_a_space_without_a_period(
    api: BotApi, labelled: CommandBot
) -> None:
    """Before: "/history Alice desk" read "desk" as the period: "history: DURATION: …"."""
    (chart,) = await _ask(api, "/history Alice desk")
    assert chart.caption is not None
    # history_hours defaults to 6
    assert chart.caption.startswith("Alice desk (generic:alice/cross), last 6h: ")
    (bad,) = await _ask(api, "/history alice soon")  # not a scope: the period is wrong
    assert "history: DURATION" in _text(bad)
