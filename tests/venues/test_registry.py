from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.venues.dydx.feed import DydxFeed
from monitor.venues.dydx.parse import DydxParser
from monitor.venues.hyperliquid.feed import HyperliquidFeed
from monitor.venues.hyperliquid.parse import HyperliquidParser
from monitor.venues.registry import NATIVE_FEEDS, PARSERS, build_feeds

HL = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
DYDX = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4a6z8p0a2s4"

CONFIG = f"""
[venues.hyperliquid]
ws_url = "ws://127.0.0.1:1/ws"
rest_url = "http://127.0.0.1:1"
poll_interval = 7
stale_after = 12
ping_interval = 9
symbols = ["BTC", "xyz:GOLD"]

[venues.dydx]
ws_url = "ws://127.0.0.1:2/v4/ws"
rest_url = "http://127.0.0.1:2/v4"
stale_after = 33

[venues.binanceusdm]
stale_after = 15
symbols = ["BTCUSDT"]

[[accounts]]
id = "hyperliquid:{HL.upper().replace("0X", "0x")}"

[[accounts]]
id = "dydx:{DYDX}/0"

[[accounts]]
id = "dydx:{DYDX}/1"
parent = true
"""


def test_parsers_are_listed_by_event_venue_name() -> None:
    assert set(PARSERS) == {"hyperliquid", "dydx", "binanceusdm", "bybit", "okx"}
    assert isinstance(PARSERS["hyperliquid"](), HyperliquidParser)
    assert isinstance(PARSERS["dydx"](), DydxParser)
    assert set(NATIVE_FEEDS) == {"hyperliquid", "dydx", "binanceusdm", "bybit", "okx"}


def test_feeds_are_built_from_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(CONFIG)
    feeds = build_feeds(load_config(path))
    by_venue = {f.venue: f for f in feeds}
    assert set(by_venue) == {"hyperliquid", "dydx", "binanceusdm"}

    hl = by_venue["hyperliquid"]
    assert isinstance(hl, HyperliquidFeed)
    assert hl.ws.settings.url == "ws://127.0.0.1:1/ws"
    assert hl.ws.settings.app_ping_interval == 9
    assert hl.options.rest_url == "http://127.0.0.1:1"
    assert hl.options.poll_interval == 7
    assert hl.options.resnapshot  # poll_interval: "REST re-snapshot of accounts"
    assert hl.options.price_max_silence == 12
    assert hl.options.coins == ("BTC", "xyz:GOLD")
    assert hl.options.dexes == ("", "xyz")  # the HIP-3 dex of xyz:GOLD is followed too
    assert f"clearinghouseState:{HL}@xyz" in [s.key for s in hl.subscriptions()]
    assert hl.ws_addresses == (HL,)  # the configuration lower-cases addresses

    dy = by_venue["dydx"]
    assert isinstance(dy, DydxFeed)
    assert dy.ws.settings.url == "ws://127.0.0.1:2/v4/ws"
    assert dy.rest_url == "http://127.0.0.1:2/v4"
    assert dy.markets_max_silence == 33
    assert dy.subaccounts == (f"{DYDX}/0",)
    assert dy.parent_subaccounts == (f"{DYDX}/1",)
    keys = [s.key for s in dy.subscriptions()]
    assert keys == ["v4_markets", f"v4_subaccounts:{DYDX}/0", f"v4_parent_subaccounts:{DYDX}/1"]


def test_an_address_account_without_a_venue_section_gets_a_default_feed(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(f'[[accounts]]\nid = "hyperliquid:{HL}"\n')
    (feed,) = build_feeds(load_config(path))
    assert isinstance(feed, HyperliquidFeed)
    assert feed.ws.settings.url == "wss://api.hyperliquid.xyz/ws"
    assert [s.key for s in feed.subscriptions()] == [
        f"clearinghouseState:{HL}",
        f"userFundings:{HL}",
        f"userFills:{HL}",  # ADL and liquidation fills, which the engine alerts on
    ]


@pytest.mark.parametrize("disabled", ["hyperliquid", "dydx"])
def test_disabled_venues_get_no_feed(tmp_path: Path, disabled: str) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(f"[venues.{disabled}]\nenabled = false\n")
    assert build_feeds(load_config(path)) == []
