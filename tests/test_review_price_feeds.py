"""Review: ``monitor run`` pricing a manual account with the native Binance USDⓈ-M price
feed, end to end, as a subprocess, against the loopback Binance market stream
(tests/venues/ccxt_pro/loopback.py: combined ``/market/stream`` endpoint, SUBSCRIBE acks,
``markPriceUpdate`` pushes) and its REST metadata (``exchangeInfo``, ``fundingInfo``).

The manual account ``binanceusdm:desk``: cross collateral 1,000 USDT (excluding uPnL),
0.1 BTCUSDT long at 95,000, maintenance 0.4 % flat, typed mark 95,000."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon_config import alerts, file_channel_and_store, margin_ratio_rules
from tests.test_review_key_accounts import daemon, status_until
from tests.venues.binance.test_feed import ROUTES
from tests.venues.ccxt_pro.loopback import BinanceDialect, RestVenue, WsVenue, fixture, until


def config(path: Path, ws: WsVenue, rest: RestVenue) -> None:
    path.write_text(f"""
[venues.binanceusdm]
ws_url = "{ws.url}/market/stream"
rest_url = "{rest.url}"
stale_after = 5

[[accounts]]
venue = "binanceusdm"
name = "desk"
cross_collateral = 1000.0
feed = "binanceusdm"

[[accounts.positions]]
symbol = "BTCUSDT"
size = 0.1
entry_price = 95000.0
mark_price = 95000.0
maintenance = {{ rate = 0.004, deduction = 0.0 }}

{margin_ratio_rules(0.1, 0.09)}{file_channel_and_store(ready_timeout=10)}""")


def set_btc(dialect: BinanceDialect, price: float) -> None:
    frame = json.loads(fixture("binance", "ws_markPriceUpdate.json"))
    frame["p"] = f"{price:.8f}"
    dialect.frames["btcusdt@markPrice@1s"] = json.dumps(frame)


@pytest.mark.timeout(120)
async def test_a_manual_account_is_priced_by_the_native_binance_stream_and_alerts(
    tmp_path: Path,
) -> None:
    """The stream's first mark, 95,041.2: equity 1,000 + 0.1 × 41.2 = 1,004.12, maintenance
    0.1 × 95,041.2 × 0.004 = 38.02, ratio 3.8 % (< 10 %). Then 87,000: equity 1,000 −
    800 = 200, maintenance 34.80, ratio 17.4 % ≥ 10 %: a warning; back at 95,041.2 it
    resolves."""
    dialect = BinanceDialect()
    ws = WsVenue(dialect, interval=0.1)
    rest = RestVenue(ROUTES)
    await ws.start()
    await rest.start()
    cfg = tmp_path / "monitor.toml"
    try:
        config(cfg, ws, rest)
        async with daemon(cfg, tmp_path):
            # the stored figures follow within a sweep (5 s) and a status write
            first = await status_until(cfg, "1,004.12", "3.8%", limit=30)
            assert "binanceusdm:desk/cross" in first and "1,004.12" in first, first
            assert "live" in first, first
            assert alerts(tmp_path) == ""
            set_btc(dialect, 87_000.0)
            await until(lambda: "FIRING WARNING" in alerts(tmp_path), 30, "the warning")
            shown = await status_until(cfg, "200.00", "17.4%")
            assert "200.00" in shown and "17.4%" in shown, shown
            set_btc(dialect, 95_041.2)
            await until(lambda: "RESOLVED" in alerts(tmp_path), 30, "the resolve")
        subs = [json.loads(t) for _, t in ws.subscriptions()]
        assert any("btcusdt@markPrice@1s" in s.get("params", []) for s in subs), subs
    finally:
        await ws.stop()
        await rest.stop()
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


@pytest.mark.timeout(120)
async def test_a_key_account_is_priced_by_the_public_stream_when_its_symbol_is_listed(
    tmp_path: Path,
) -> None:
    """``[venues.binanceusdm] symbols = ["BTCUSDT"]`` beside an API-key account: the public
    stream's marks price the account's position between its snapshots. Wallet 10,000, 1 BTC
    long at 60,000 (the venue's REST mark 60,000); the stream says 95,041.2: equity 10,000
    + 35,041.2 = 45,041.20."""
    from tests.test_review_key_accounts import write_config as key_config
    from tests.venues.cex import test_binance as tb
    from tests.venues.cex.binance_mock import BinanceMock

    dialect = BinanceDialect()
    ws = WsVenue(dialect, interval=0.1)
    rest = RestVenue(ROUTES)
    await ws.start()
    await rest.start()
    cfg = tmp_path / "monitor.toml"
    try:
        async with BinanceMock(tb.KEY, tb.SECRET) as mock:
            await mock.open("BTCUSDT", 1.0, 60_000.0)
            key_config(cfg, mock, warning=0.5)
            body = cfg.read_text()
            venue = f"""[venues.binanceusdm]
ws_url = "{ws.url}/market/stream"
rest_url = "{rest.url}"
symbols = ["BTCUSDT"]

"""
            cfg.write_text(venue + body)
            async with daemon(cfg, tmp_path):
                shown = await status_until(cfg, "45,041.20", limit=30)
    finally:
        await ws.stop()
        await rest.stop()
    assert "binanceusdm:main/cross" in shown and "45,041.20" in shown, shown
