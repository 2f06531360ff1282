"""``monitor record`` against loopback Hyperliquid and dYdX servers (run in a thread, since the
command runs its own event loop), then ``monitor replay`` of what it wrote."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.venues.recording import read_recording
from tests.venues.servers import Conn, HttpServer, WsServer, fixture

USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
DYDX_SUB = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4/0"


async def hl_handler(conn: Conn) -> None:
    async for msg in conn.ws:
        d = json.loads(msg)
        if d.get("method") != "subscribe":
            continue
        sub = d["subscription"]
        if sub["type"] == "activeAssetCtx":
            await conn.send(fixture("hyperliquid", "ws_activeAssetCtx.json"))
        elif sub["type"] == "clearinghouseState":
            await conn.send(fixture("hyperliquid", "ws_clearinghouseState.json"))


async def dydx_handler(conn: Conn) -> None:
    await conn.send(fixture("dydx", "ws_connected.json"))
    async for msg in conn.ws:
        d = json.loads(msg)
        if d.get("channel") == "v4_markets":
            await conn.send(fixture("dydx", "ws_subscribed_v4_markets.json"))
            await conn.send(fixture("dydx", "ws_channel_data_v4_markets_oraclePrices.json"))
        elif d.get("channel") == "v4_subaccounts":
            await conn.send(fixture("dydx", "ws_subscribed_v4_subaccounts.json"))


class Servers:
    """Loopback servers running in their own thread and event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.urls: dict[str, str] = {}
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.main(),))

    async def main(self) -> None:
        self.stop = asyncio.Event()
        http = HttpServer()
        http.route(
            "POST",
            "/info",
            lambda _b: (
                200,
                json.dumps(fixture("hyperliquid", "rest_info_metaAndAssetCtxs_response.json")),
            ),
        )
        http.route(
            "GET",
            "/v4/perpetualMarkets",
            lambda _b: (200, json.dumps(fixture("dydx", "rest_perpetualMarkets.json"))),
        )
        async with WsServer(hl_handler) as hl, WsServer(dydx_handler) as dy, http:
            self.urls = {"hl_ws": hl.url, "dydx_ws": dy.url, "http": http.url}
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> Servers:
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    with Servers() as s:
        yield s


def test_record_writes_rest_and_ws_frames_of_both_venues_then_replays(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "session.jsonl"
    code = main(
        [
            "record",
            str(out),
            "--hyperliquid-coin",
            "BTC",
            "--hyperliquid-address",
            USER,
            "--hyperliquid-ws-url",
            servers.urls["hl_ws"],
            "--hyperliquid-rest-url",
            servers.urls["http"],
            "--dydx-subaccount",
            DYDX_SUB,
            "--dydx-ws-url",
            servers.urls["dydx_ws"],
            "--dydx-rest-url",
            servers.urls["http"] + "/v4",
            "--duration",
            "0.6",
        ]
    )
    assert code == 0
    records = list(read_recording(out))
    channels = {(r.venue, r.channel) for r in records}
    assert {
        ("hyperliquid", "rest:metaAndAssetCtxs"),
        ("hyperliquid", "activeAssetCtx:BTC"),
        ("hyperliquid", f"clearinghouseState:{USER}"),
        ("dydx", "rest:perpetualMarkets"),
        ("dydx", "ws"),  # the connected greeting
        ("dydx", "v4_markets"),
        ("dydx", f"v4_subaccounts:{DYDX_SUB}"),
    } <= channels
    tick = next(r for r in records if r.channel == "activeAssetCtx:BTC")
    assert json.loads(tick.frame) == fixture("hyperliquid", "ws_activeAssetCtx.json")
    assert all(r.ts_recv > 1_700_000_000 for r in records)  # wall-clock receive times
    err = capsys.readouterr().err
    assert f"{len(records)} frames" in err

    assert main(["replay", str(out), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    scopes = {x["scope"] for x in lines}
    assert f"hyperliquid:{USER}/cross" in scopes
    assert f"dydx:{DYDX_SUB}/cross" in scopes


def test_record_without_anything_to_record_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["record", str(tmp_path / "x.jsonl")]) == 2
    assert "nothing to record" in capsys.readouterr().err


def test_record_with_bad_dydx_subaccount_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["record", str(tmp_path / "x.jsonl"), "--dydx-subaccount", "nope"]) == 2
    assert "<address>/<number>" in capsys.readouterr().err


def test_record_with_non_positive_duration_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args: list[Any] = ["record", str(tmp_path / "x.jsonl"), "--dydx-markets", "--duration", "0"]
    assert main(args) == 2
    assert "--duration" in capsys.readouterr().err


def test_record_takes_venues_and_accounts_from_a_configuration(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f"""
[venues.hyperliquid]
ws_url = "{servers.urls["hl_ws"]}"
rest_url = "{servers.urls["http"]}"
symbols = ["BTC"]

[venues.binanceusdm]
symbols = ["BTCUSDT"]
ws_url = "ws://127.0.0.1:1/market/stream"
rest_url = "http://127.0.0.1:1"

[venues.krakenfutures]
symbols = ["PF_XBTUSD"]

[[accounts]]
id = "hyperliquid:{USER}"
"""
    )
    out = tmp_path / "cfg.jsonl"
    assert main(["record", str(out), "--config", str(cfg), "--duration", "0.5"]) == 0
    channels = {r.channel for r in read_recording(out)}
    assert {"rest:metaAndAssetCtxs", "activeAssetCtx:BTC", f"clearinghouseState:{USER}"} <= (
        channels
    )
    err = capsys.readouterr().err
    # Binance USDⓈ-M has a native feed now (recorded); a ccxt-only venue is skipped
    assert "skipping ccxt venue 'krakenfutures'" in err
    assert "skipping ccxt venue 'binanceusdm'" not in err


def test_record_with_a_bad_configuration_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[venues.hyperliquid]\nws_url = "http://nope"\n')
    assert main(["record", str(tmp_path / "x.jsonl"), "--config", str(cfg)]) == 2
    assert "venues.hyperliquid.ws_url" in capsys.readouterr().err
