"""Review: Hyperliquid ADL and liquidation fills (``userFills``) reaching an ``adl`` and a
``liquidated`` alert through the real daemon (``monitor run`` as a subprocess) against a
loopback Hyperliquid speaking the venue's wire format (REST ``/info``, WS subscriptions,
``activeAssetCtx`` pushes, ``userFills`` snapshot then live fills). The alerts are read from
a ``monitorfile://`` channel, the daemon's store through ``monitor status --json``.

The account (tests/test_app.py): 1 BTC long, cross, entry 100,000, raw USD −90,000; at
100,000 equity 10,000, maintenance 1,250 (maxLeverage 40): ratio 12.5 %, no threshold
alert at the 50 % warning."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.fmt import short_id
from tests.daemon_config import alerts, file_channel_and_store, margin_ratio_rules
from tests.test_app import USER, Venue, rest
from tests.test_review_key_accounts import daemon, status
from tests.venues.dydx.test_feed import DydxVenue
from tests.venues.servers import Conn, HttpServer, WsServer, fixture, until


@dataclass
class FillsVenue(Venue):
    """The test_app venue, also answering ``userFills`` with a snapshot of history."""

    def __post_init__(self) -> None:
        self.fills_conns: list[Conn] = []

    async def handler(self, conn: Conn) -> None:
        orig_send = conn.send

        async def send(payload: Any) -> None:
            await orig_send(payload)
            if payload.get("channel") == "subscriptionResponse":
                sub = payload["data"]["subscription"]
                if sub["type"] == "userFills":
                    await orig_send(
                        {
                            "channel": "userFills",
                            "data": {"isSnapshot": True, "user": sub["user"], "fills": []},
                        }
                    )
                    self.fills_conns.append(conn)

        conn.send = send  # type: ignore[method-assign]
        await super().handler(conn)

    async def fill(self, **over: Any) -> None:
        f = {
            "coin": "BTC",
            "px": "99000.0",
            "sz": "0.4",
            "side": "A",
            "time": int(time.time() * 1000),
            "startPosition": "1.0",
            "dir": "Auto-Deleveraging",
            "closedPnl": "-400.0",
            "hash": "0x" + "ab" * 32,
            "oid": 1,
            "crossed": False,
            "fee": "0.0",
            "tid": int(time.time() * 1e6),
            "liquidation": {
                "liquidatedUser": "0x" + "55" * 20,
                "markPx": "99000.0",
                "method": "market",
            },
            "feeToken": "USDC",
            "twapId": None,
        }
        f.update(over)
        for conn in self.fills_conns:
            await conn.send({"channel": "userFills", "data": {"user": USER, "fills": [f]}})


def config(path: Path, ws: str, http: str) -> None:
    path.write_text(f"""
[venues.hyperliquid]
ws_url = "{ws}"
rest_url = "{http}"
stale_after = 10
ping_interval = 1

[[accounts]]
id = "hyperliquid:{USER}"

{margin_ratio_rules(0.5, 0.45)}{file_channel_and_store(ready_timeout=20)}""")


@pytest.mark.timeout(120)
async def test_hyperliquid_adl_and_liquidation_fills_reach_adl_and_liquidated_alerts(
    tmp_path: Path,
) -> None:
    venue = FillsVenue()
    http = HttpServer()
    rest(http, venue)
    cfg = tmp_path / "monitor.toml"
    async with WsServer(venue.handler) as ws, http:
        config(cfg, ws.url, http.url)
        async with daemon(cfg, tmp_path):
            await until(lambda: bool(venue.fills_conns), 30, "the userFills subscription")
            await asyncio.sleep(1.0)
            assert alerts(tmp_path) == ""  # history is not news, 12.5 % is below 50 %
            # 0.4 BTC of our long taken by auto-deleveraging
            adl_time, adl_tid = int(time.time() * 1000), 1031003079291799
            await venue.fill(tid=adl_tid, time=adl_time)
            await until(lambda: "adl" in alerts(tmp_path).lower(), 30, "the adl alert")
            # then the rest liquidated: a liquidation fill naming our address
            await venue.fill(
                sz="0.6",
                startPosition="0.6",
                dir="Close Long",
                px="90000.0",
                tid=adl_tid + 7,
                liquidation={"liquidatedUser": USER, "markPx": "90000.0", "method": "market"},
            )
            await until(
                lambda: "position liquidated" in alerts(tmp_path), 30, "the liquidated alert"
            )
            # a venue re-sending the same fills (a duplicate frame) tells nothing new
            sent = alerts(tmp_path)
            await venue.fill(tid=adl_tid, time=adl_time)
            await asyncio.sleep(1.5)
            assert alerts(tmp_path) == sent
            doc = json.loads(await status(cfg, "--json"))
        text = alerts(tmp_path)
        adl, liq = _events(text)
        assert f"hyperliquid:{short_id(USER)}, cross BTC: auto-deleveraged" in adl, text
        assert "auto-deleveraged (ADL) BTC: sold 0.4 at 99,000" in adl
        assert f"hyperliquid:{short_id(USER)}, cross BTC: position liquidated" in liq, text
        (scope,) = doc["scopes"]
        assert scope["scope_key"] == f"hyperliquid:{USER}/cross"
        assert "Traceback" not in (tmp_path / "daemon.log").read_text()


# -- dYdX: an OFFSETTING fill (this subaccount's position closed against a bankrupt one) ----

#: the fixtures' address is not valid bech32 ('i', 'o'), which the configuration refuses:
#: the fixtures are served with this valid one in its place
FIXTURE_ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4"
DYDX_ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4a6c8p0a2s4"
DYDX_SUB = f"{DYDX_ADDR}/0"


def dydx_fixture(name: str) -> Any:
    return json.loads(json.dumps(fixture("dydx", name)).replace(FIXTURE_ADDR, DYDX_ADDR))


class DydxAccountVenue(DydxVenue):
    """The indexer look-alike of tests/venues/dydx: markets flow, the subaccount is sent as
    its snapshot; the test then pushes deltas on the open connections."""

    def __init__(self) -> None:
        super().__init__()
        self.tick = 0.2
        self.account_conns: list[Conn] = []

    async def handler(self, conn: Conn) -> None:
        await conn.send(fixture("dydx", "ws_connected.json"))
        markets: dict[str, Any] = {}
        pusher = asyncio.create_task(self._push(conn, markets))
        try:
            async for msg in conn.ws:
                d = json.loads(msg)
                if d.get("type") != "subscribe":
                    continue
                if d["channel"] == "v4_markets":
                    await conn.send(fixture("dydx", "ws_subscribed_v4_markets.json"))
                    markets["batched"] = d.get("batched", False)
                elif d["channel"] == "v4_subaccounts":
                    snap = dydx_fixture("ws_subscribed_v4_subaccounts.json")
                    snap["id"] = d["id"]
                    await conn.send(snap)
                    self.account_conns.append(conn)
        finally:
            pusher.cancel()

    async def delta(self, contents: dict[str, Any]) -> None:
        self.height += 1
        frame = {
            "type": "channel_data",
            "connection_id": "4c2d8a1e-6f3b-4d2a-9b7e-1a2b3c4d5e6f",
            "message_id": 7,
            "id": DYDX_SUB,
            "channel": "v4_subaccounts",
            "version": "3.0.0",
            "contents": {**contents, "blockHeight": str(self.height)},
        }
        for conn in self.account_conns:
            await conn.send(frame)


def dydx_fill(kind: str, side: str, size: str, price: str) -> dict[str, Any]:
    """An indexer fill (FillType ``kind``) of BTC-USD on subaccount 0, as the stream sends it."""
    return {
        "id": "c5030bd3-cd85-5046-8f2a-518bbba6ec45",
        "subaccountId": "db535c19-b298-5ee8-bb59-e96c659a8bd4",
        "side": side,
        "liquidity": "TAKER",
        "type": kind,
        "clobPairId": "0",
        "size": size,
        "price": price,
        "quoteAmount": str(float(size) * float(price)),
        "transactionHash": "C84B0BBCA8E713A2D46EFBA07F2D0A32C1F6E2440794A366B888503935E0EF40",
        "createdAt": "2026-05-05T16:53:30.000Z",
        "createdAtHeight": "61234571",
        "ticker": "BTC-USD",
        "subaccountNumber": 0,
    }


def dydx_config(path: Path, ws: str, http: str) -> None:
    config(path, "ws://unused", "http://unused")
    body = path.read_text()
    body = body.replace(
        body[body.index("[venues.hyperliquid]") : body.index("[rules]")],
        f"""[venues.dydx]
ws_url = "{ws}"
rest_url = "{http}/v4"
stale_after = 10

[[accounts]]
id = "dydx:{DYDX_SUB}"

""",
    )
    path.write_text(body)


@pytest.mark.timeout(120)
async def test_dydx_offsetting_fill_is_an_adl_alert_and_a_liquidated_fill_a_liquidated_alert(
    tmp_path: Path,
) -> None:
    """Subaccount 0 holds 0.1 BTC long (entry 93,750.5). An OFFSETTING fill selling 0.04 at
    96,000 (ADL: our profitable long closed against a bankrupt short) with the position now
    0.06; then a LIQUIDATED fill selling the remaining 0.06 with the position closed."""
    venue = DydxAccountVenue()
    http = HttpServer()
    http.route(
        "GET",
        "/v4/perpetualMarkets",
        lambda _b: (200, json.dumps(fixture("dydx", "rest_perpetualMarkets.json"))),
    )
    http.route(
        "GET",
        f"/v4/addresses/{DYDX_ADDR}/subaccountNumber/0",
        lambda _b: (200, json.dumps(dydx_fixture("rest_subaccount.json"))),
    )
    cfg = tmp_path / "monitor.toml"
    async with WsServer(venue.handler) as ws, http:
        dydx_config(cfg, ws.url, http.url)
        async with daemon(cfg, tmp_path):
            await until(lambda: bool(venue.account_conns), 30, "the subaccount subscription")
            await asyncio.sleep(1.0)
            assert alerts(tmp_path) == ""
            position = {
                "address": DYDX_ADDR,
                "subaccountNumber": 0,
                "market": "BTC-USD",
                "side": "LONG",
                "status": "OPEN",
                "size": "0.06",
                "entryPrice": "93750.5",
            }
            await venue.delta(
                {
                    "fills": [dydx_fill("OFFSETTING", "SELL", "0.04", "96000")],
                    "perpetualPositions": [position],
                }
            )
            await until(lambda: ": auto-deleveraged (" in alerts(tmp_path), 30, "the adl alert")
            await venue.delta(
                {
                    "fills": [dydx_fill("LIQUIDATED", "SELL", "0.06", "80000")],
                    "perpetualPositions": [{**position, "status": "LIQUIDATED", "size": "0"}],
                }
            )
            await until(
                lambda: "position liquidated (" in alerts(tmp_path), 30, "the liquidated alert"
            )
        text = alerts(tmp_path)
        adl, liq = _events(text)
        assert "dydx:" in adl and "cross BTC-USD: auto-deleveraged" in adl, text
        assert "sold 0.04 at 96,000" in adl, text
        assert "dydx:" in liq and "cross BTC-USD: position liquidated" in liq, text
        assert "Traceback" not in (tmp_path / "daemon.log").read_text()


def _events(text: str) -> tuple[str, str]:
    """The one ADL line and the one liquidation line of the alerts file (each exactly once)."""
    events = [ln for ln in text.splitlines() if ln.startswith("EVENT CRITICAL:")]
    adl = [ln for ln in events if ": auto-deleveraged (" in ln]
    liq = [ln for ln in events if ": position liquidated (" in ln]
    assert len(adl) == 1 and len(liq) == 1, text
    return adl[0], liq[0]
