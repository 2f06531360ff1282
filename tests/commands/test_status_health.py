"""``monitor status``: a venue's state comes from its channels; hostile strings and absurd
timestamps in a real store never reach the terminal raw nor crash it."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.commands import status
from monitor.logs import reset_logging
from monitor.store import history
from monitor.store.db import open_store

NOW = 1_790_000_000.0


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> object:
    yield
    reset_logging()


def row(
    channel: str,
    state: str,
    detail: str = "",
    updated: float = NOW - 60,
    last: float | None = NOW - 5,
) -> dict[str, object]:
    return {
        "venue": "okx",
        "channel": channel,
        "state": state,
        "detail": detail,
        "updated_at": updated,
        "last_message_at": last,
    }


@pytest.mark.parametrize(
    ("rows", "state", "detail"),
    [
        ([row("*", "live"), row("tickers", "live")], "live", ""),
        # the per-venue row says live, the channel is down: down, with the reason
        (
            [row("*", "live"), row("tickers", "down", "DNS lookup failed")],
            "down",
            "tickers down: DNS lookup failed",
        ),
        (
            [row("tickers", "stale", "no data for 45 s"), row("funding", "live")],
            "stale",
            "tickers stale: no data for 45 s",
        ),
        # down beats stale whatever the order
        ([row("a", "down", "refused"), row("b", "stale")], "down", "a down: refused"),
        ([row("b", "stale"), row("a", "down", "refused")], "down", "a down: refused"),
        # connecting and never a message: never connected is down
        (
            [row("tickers", "connecting", "", last=None)],
            "down",
            "never connected (tickers connecting)",
        ),
        ([row("tickers", "live", last=None)], "down", "never connected (tickers live)"),
        ([row("tickers", "sideways")], "down", "tickers sideways"),
    ],
)
def test_a_venue_state_is_the_worst_of_its_channels(
    rows: list[dict[str, object]], state: str, detail: str
) -> None:
    (h,) = status.venue_health(rows)
    assert (h.state, h.detail) == (state, detail)


def test_a_configured_venue_that_never_reported_is_down() -> None:
    health = status.venue_health([row("tickers", "live")], configured=["okx", "bybit"])
    assert [(h.venue, h.state, h.detail) for h in health] == [
        ("bybit", "down", "never connected"),
        ("okx", "live", ""),
    ]


def test_a_down_venue_shows_why_and_for_how_long() -> None:
    view = history.StatusView(
        None,
        None,
        [],
        [row("*", "live"), row("tickers", "down", "connection refused", updated=NOW - 150)],
        [],
    )
    lines = status.render(view, NOW).splitlines()
    (venue_line,) = [ln for ln in lines if ln.startswith("okx ")]
    # down since NOW − 150 s = 2 min 30 s
    assert venue_line.split()[:5] == ["okx", "down", "2", "min", "30"]
    assert venue_line.endswith("tickers down: connection refused")


async def _hostile_store(path: Path) -> None:
    store = await open_store(path)
    try:
        async with store.transaction() as conn:
            await conn.execute(
                "INSERT INTO feed_status VALUES (?, ?, ?, ?, ?, ?)",
                ("okx", "tick\x1b[2Jers", "down", "evil\x1b]0;owned\x07\u202e", 1e300, -1e300),
            )
            await conn.execute(
                "INSERT INTO feed_status VALUES ('bybit', '*', 'live', '', 'NaN', ?)",
                (math.nan,),
            )
            await conn.execute(
                "INSERT INTO scope_status (scope, venue, account, ts, doc)"
                " VALUES ('okx:main/cross', 'okx', 'main', 'NaN', ?)",
                (json.dumps({"equity": 1.0, "positions": 1, "active_alerts": ["a\x1bb"]}),),
            )
            await conn.execute(
                "INSERT INTO funding_paid VALUES ('okx', 'main', 'BTC\x1b', -1e300, 1.0, NULL)"
            )
            await conn.execute(
                # SQLite keeps a NaN REAL as NULL: a text "NaN" is what a bad row holds
                "INSERT INTO daemon_status VALUES ('daemon', ?, 'NaN')",
                (json.dumps({"pid": 1, "summary": "x\x1b[31m"}),),
            )
    finally:
        await store.close()


def test_hostile_strings_and_absurd_times_in_the_store_are_shown_safely(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    asyncio.run(_hostile_store(path))
    capsys.readouterr()
    assert main(["status", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\u202e")
    assert "evil\\x1b]0;owned\\x07\\u202e" in out
    # a NaN write time is not a running daemon, whatever its pid
    assert "daemon: not running" in out
    assert main(["status", "--store", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # strict JSON: NaN became null
    assert doc["daemon_running"] is False
    # bybit: its only row has no message time (NaN is NULL): never connected
    assert {v["venue"]: v["state"] for v in doc["venues"]} == {"bybit": "down", "okx": "down"}


@pytest.mark.parametrize("ts", [1e300, -1e300, math.nan, math.inf, -62135596800.0 - 1])
def test_absurd_timestamps_format_without_raising(ts: float) -> None:
    assert "not a" in status._iso(ts)  # the raw number, said to be no calendar time
    assert status._age(ts, NOW) == "—"


def test_status_shows_the_configured_label_beside_the_short_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    addr = "0x" + "1" * 40
    db = tmp_path / "s.db"

    async def make() -> None:
        store = await open_store(db)
        try:
            async with store.transaction() as conn:
                await conn.execute(
                    "INSERT INTO scope_status (scope, venue, account, ts, doc)"
                    " VALUES (?, 'hyperliquid', ?, ?, ?)",
                    (
                        f"hyperliquid:{addr}/cross",
                        addr,
                        NOW,
                        json.dumps({"equity": 5.0, "margin_ratio": 0.1, "positions": 1}),
                    ),
                )
        finally:
            await store.close()

    asyncio.run(make())
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[venues.hyperliquid]\n[[accounts]]\nid = "hyperliquid:{addr}"\nlabel = "BTC desk"\n'
        f'[store]\npath = "{db}"\n'
    )
    capsys.readouterr()
    assert main(["status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "hyperliquid:0x1111…1111/cross (BTC desk)" in out
    # the configured venue has never reported: down, never connected
    assert any(
        ln.split()[:2] == ["hyperliquid", "down"] and "never connected" in ln
        for ln in out.splitlines()
    )
