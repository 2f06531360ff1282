"""The bot finds an account by its whole label (any case), as ``monitor mute``/``history``/
``status`` do (``Names.by_label``), never by a part of it: ``/scope desk`` is the account
labelled ``desk``, not the one labelled ``desk2``. A label that names an account without a
scope yet, or several accounts (labels differing only in case), is answered with what it
names. Against the loopback Bot API stand-in and a real store (tests/ops/conftest.py: the
scopes ``generic:alice/cross`` and ``generic:bob/cross``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest

from monitor.ops.bot import CommandBot, by_label
from tests.ops.botapi import BotApi
from tests.ops.conftest import NOW, Filled
from tests.ops.test_bot import _ask, _cfg, _text

SCOPES = ["generic:alice/cross", "generic:bob/cross", "generic:carol/isolated:ETH"]


@pytest.mark.parametrize(
    ("name", "labels", "found"),
    [
        # a label is not found by a part of it
        ("desk", {"generic:alice": "desk2", "generic:bob": "desk"}, ["generic:bob/cross"]),
        ("desk", {"generic:alice": "Main desk"}, []),
        ("main", {"generic:alice": "Main desk"}, []),
        # the whole label, in any case, blanks around the name ignored
        ("MAIN DESK", {"generic:alice": "Main desk"}, ["generic:alice/cross"]),
        ("  main desk ", {"generic:alice": "Main desk"}, ["generic:alice/cross"]),
        # two labels differing only in case: both
        (
            "desk",
            {"generic:alice": "Desk", "generic:bob": "desk"},
            ["generic:alice/cross", "generic:bob/cross"],
        ),
        ("", {"generic:alice": "desk"}, []),
    ],
)
def test_by_label_takes_the_whole_label_in_any_case(
    name: str, labels: Mapping[str, str], found: list[str]
) -> None:
    assert by_label(name, SCOPES, labels) == found


async def _labelled(filled: Filled, api: BotApi, labels: Mapping[str, str]) -> CommandBot:
    b = CommandBot(_cfg(api), filled.store, now=lambda: NOW, labels=labels)
    await b.start()
    return b


@pytest.fixture
async def desk2(filled: Filled, api: BotApi) -> AsyncIterator[CommandBot]:
    """alice is labelled ``desk2``; ``desk`` is the label of carol, who has no scope yet."""
    b = await _labelled(filled, api, {"generic:alice": "desk2", "generic:carol": "desk"})
    yield b
    await b.stop()


async def test_scope_and_history_by_label_never_act_on_a_longer_label(
    api: BotApi, desk2: CommandBot
) -> None:
    """Before: ``desk`` was found in ``desk2``: /scope showed alice's figures and /history
    drew alice's chart, for an account nobody named."""
    (scope,) = await _ask(api, "/scope desk")
    assert _text(scope) == (
        "'desk' is the label of generic:carol, which has no scope yet; known: "
        "generic:alice/cross, generic:bob/cross"
    )
    (chart,) = await _ask(api, "/history desk 2h")
    assert chart.caption is None and chart.text is not None
    assert _text(chart).startswith("'desk' is the label of generic:carol, which has no scope")
    # the whole label still finds its account
    (own,) = await _ask(api, "/scope DESK2")
    assert _text(own).splitlines()[0] == "desk2 (generic:alice/cross)"


@pytest.fixture
async def twins(filled: Filled, api: BotApi) -> AsyncIterator[CommandBot]:
    """Two labels that differ only in case (the configuration allows it)."""
    b = await _labelled(filled, api, {"generic:alice": "Desk", "generic:bob": "desk"})
    yield b
    await b.stop()


async def test_a_label_of_several_accounts_lists_them_by_label(
    api: BotApi, twins: CommandBot
) -> None:
    (reply,) = await _ask(api, "/scope DESK")
    assert _text(reply) == (
        "'DESK' matches several:\nDesk (generic:alice/cross)\ndesk (generic:bob/cross)"
    )


async def test_an_exact_label_comes_before_a_part_of_a_scope_name(
    filled: Filled, api: BotApi
) -> None:
    """As ``monitor mute``/``status``: a label is read before a part of an id. ``alice`` is
    bob's label here; before, /scope alice showed alice's scope (a part of its name)."""
    bot = await _labelled(filled, api, {"generic:bob": "alice"})
    try:
        (reply,) = await _ask(api, "/scope alice")
        assert _text(reply).splitlines()[0] == "alice (generic:bob/cross)  LIQUIDATABLE"
        # a part of a scope name still finds it when no label is that name
        (part,) = await _ask(api, "/scope generic:alice")
        assert _text(part).splitlines()[0] == "generic:alice/cross"
    finally:
        await bot.stop()
