"""Loopback venue servers for the ccxt.pro connector tests (a helper, not a test module).

:class:`WsVenue` is a real ``websockets`` server on 127.0.0.1 that speaks one venue's wire
format (a :class:`Dialect`): it records every text frame a client sends, answers subscriptions
and app-level pings the way the venue does, and pushes data frames to subscribed connections
every ``interval`` seconds. Faults are switched on by the test: :meth:`WsVenue.abort` (TCP reset,
the client sees 1006), :meth:`WsVenue.close_all` (a clean close with a code, e.g. 1001),
``stall`` (TCP stays open, protocol pings are still answered, no data), ``answer_pings``,
:meth:`WsVenue.inject` (garbage or error frames), :meth:`WsVenue.stop`/:meth:`WsVenue.start`
(connections refused in between).

:class:`RestVenue` is an aiohttp server answering ``GET`` paths with fixed JSON bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from monitor.model.events import Event, FeedState, FeedStatus
from monitor.venues.backoff import Backoff
from monitor.venues.feed import FeedSettings

FEEDS = Path(__file__).parents[2] / "fixtures" / "feeds"


def fixture(venue: str, name: str) -> str:
    return (FEEDS / venue / name).read_text()


class Dialect:
    """How one venue answers a client frame and what it pushes per subscribed topic."""

    def reply(self, venue: WsVenue, frame: str, conn: Conn) -> list[str]:
        raise NotImplementedError

    def pushes(self, conn: Conn) -> list[str]:
        raise NotImplementedError


@dataclass(eq=False)
class Conn:
    ws: ServerConnection
    path: str
    topics: list[str] = field(default_factory=list)
    pushed: int = 0


class WsVenue:
    def __init__(self, dialect: Dialect, interval: float = 0.05) -> None:
        self.dialect = dialect
        self.interval = interval
        self.received: list[tuple[int, str, str]] = []  # (connection no, path, text)
        self.connections: list[Conn] = []
        self.stall = False
        self.answer_pings = True
        self.port = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1] if not self.port else self.port

    async def stop(self) -> None:
        """Close the listening socket and every connection: new dials are refused."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def live(self) -> list[Conn]:
        return [c for c in self.connections if c.ws.state.name == "OPEN"]

    def abort(self) -> None:
        """Reset every open connection without a close frame (client sees 1006)."""
        for c in self.live():
            transport = c.ws.transport
            transport.abort()

    async def close_all(self, code: int = 1001) -> None:
        for c in self.live():
            await c.ws.close(code, "going away")

    async def inject(self, frame: str | bytes) -> None:
        """Send ``frame`` on every open connection (``bytes``: a binary frame)."""
        for c in self.live():
            with contextlib.suppress(ConnectionClosed):
                await c.ws.send(frame)

    def subscriptions(self) -> list[tuple[int, str]]:
        """(connection no, frame) of the frames that are not app-level pings."""
        return [(n, t) for n, _, t in self.received if not _is_ping(t)]

    def pings(self) -> list[str]:
        return [t for _, _, t in self.received if _is_ping(t)]

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Conn(ws, ws.request.path if ws.request is not None else "")
        self.connections.append(conn)
        number = len(self.connections) - 1
        pusher = asyncio.create_task(self._push(conn))
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self.received.append((number, conn.path, text))
                if _is_ping(text) and not self.answer_pings:
                    continue
                for out in self.dialect.reply(self, text, conn):
                    await ws.send(out)
        except ConnectionClosed:
            pass
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher

    async def _push(self, conn: Conn) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.interval)
                if self.stall or not conn.topics:
                    continue
                for frame in self.dialect.pushes(conn):
                    await conn.ws.send(frame)
                conn.pushed += 1


def _is_ping(text: str) -> bool:
    if text == "ping":
        return True
    try:
        msg = json.loads(text)
    except ValueError:
        return False
    return isinstance(msg, dict) and msg.get("op") == "ping"


class RestVenue:
    """GET ``path`` → JSON body; every request is logged as ``path?query``."""

    def __init__(self, routes: Mapping[str, str | Callable[[web.Request], str]]) -> None:
        self.routes = dict(routes)
        self.requests: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        body = self.routes.get(request.path)
        if body is None:
            return web.json_response({"error": "not found"}, status=404)
        text = body(request) if callable(body) else body
        return web.Response(text=text, content_type="application/json")


async def until(predicate: Callable[[], Any], within: float = 5.0, what: str = "") -> None:
    """Wait (polling every 10 ms) until ``predicate()`` is true; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.01)


# -- dialects ------------------------------------------------------------------------------
class BinanceDialect(Dialect):
    """USDⓈ-M market streams: SUBSCRIBE → {"result":null,"id":n}; markPriceUpdate pushes, raw
    on ``/ws`` paths and in the ``{"stream","data"}`` wrapper on ``/stream`` (combined)."""

    def __init__(self) -> None:
        arr = json.loads(fixture("binance", "ws_markPrice_arr.json"))
        self.frames = {
            "btcusdt@markPrice@1s": fixture("binance", "ws_markPriceUpdate.json"),
            "ethusdt@markPrice@1s": json.dumps(arr[1]),
            "!markPrice@arr@1s": json.dumps(arr),
        }

    def reply(self, venue: WsVenue, frame: str, conn: Conn) -> list[str]:
        msg = json.loads(frame)
        if msg.get("method") == "SUBSCRIBE":
            conn.topics.extend(msg["params"])
        return [json.dumps({"result": None, "id": msg["id"]})]

    def pushes(self, conn: Conn) -> list[str]:
        frames = [(t, self.frames[t]) for t in conn.topics if t in self.frames]
        if conn.path.endswith("/stream"):  # the combined endpoint wraps every payload
            return [json.dumps({"stream": t, "data": json.loads(f)}) for t, f in frames]
        return [f for _, f in frames]


class BybitDialect(Dialect):
    """v5 public linear: op subscribe/ping acks; a tickers snapshot, then deltas."""

    def reply(self, venue: WsVenue, frame: str, conn: Conn) -> list[str]:
        msg = json.loads(frame)
        if msg.get("op") == "ping":
            pong = json.loads(fixture("bybit", "ws_pong.json"))
            pong["req_id"] = msg.get("req_id")
            return [json.dumps(pong)]
        ack = json.loads(fixture("bybit", "ws_subscribe_response.json"))
        ack["req_id"] = msg.get("req_id")
        conn.topics.extend(msg["args"])
        return [json.dumps(ack)]

    def pushes(self, conn: Conn) -> list[str]:
        if "tickers.BTCUSDT" not in conn.topics:
            return []
        name = "ws_tickers_snapshot.json" if conn.pushed == 0 else "ws_tickers_delta.json"
        return [fixture("bybit", name)]


class OkxDialect(Dialect):
    """v5 public: text ping → pong; one subscribe ack per arg; mark-price and funding pushes."""

    def reply(self, venue: WsVenue, frame: str, conn: Conn) -> list[str]:
        if frame == "ping":
            return ["pong"]
        msg = json.loads(frame)
        out = []
        for arg in msg["args"]:
            conn.topics.append(arg["channel"])
            ack = json.loads(fixture("okx", f"ws_subscribe_response_{arg['channel']}.json"))
            out.append(json.dumps(ack))
        return out

    def pushes(self, conn: Conn) -> list[str]:
        return [fixture("okx", f"ws_{t}.json") for t in conn.topics]


# -- REST bodies ---------------------------------------------------------------------------
BYBIT_INSTRUMENTS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "linear",
        "list": [
            {
                "symbol": "BTCUSDT",
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": "BTC",
                "quoteCoin": "USDT",
                "launchTime": "1585526400000",
                "deliveryTime": "0",
                "deliveryFeeRate": "",
                "priceScale": "2",
                "leverageFilter": {
                    "minLeverage": "1",
                    "maxLeverage": "100.00",
                    "leverageStep": "0.01",
                },
                "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
                "lotSizeFilter": {
                    "maxOrderQty": "100.000",
                    "minOrderQty": "0.001",
                    "qtyStep": "0.001",
                    "postOnlyMaxOrderQty": "1000.000",
                    "maxMktOrderQty": "100.000",
                    "minNotionalValue": "5",
                },
                "unifiedMarginTrade": True,
                "fundingInterval": 480,
                "settleCoin": "USDT",
                "copyTrading": "both",
                "upperFundingRate": "0.00375",
                "lowerFundingRate": "-0.00375",
            }
        ],
        "nextPageCursor": "",
    },
    "retExtInfo": {},
    "time": 1778000000000,
}
BYBIT_RISK_LIMIT = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "linear",
        "list": [
            {
                "id": 1,
                "symbol": "BTCUSDT",
                "riskLimitValue": "2000000",
                "maintenanceMargin": "0.005",
                "initialMargin": "0.01",
                "isLowestRisk": 1,
                "maxLeverage": "100.00",
                "mmDeduction": "",
            },
            {
                "id": 2,
                "symbol": "BTCUSDT",
                "riskLimitValue": "2600000",
                "maintenanceMargin": "0.0056",
                "initialMargin": "0.0116",
                "isLowestRisk": 0,
                "maxLeverage": "86.20",
                "mmDeduction": "1200",
            },
        ],
        "nextPageCursor": "",
    },
    "retExtInfo": {},
    "time": 1778000000000,
}
OKX_INSTRUMENTS = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "alias": "",
            "baseCcy": "",
            "category": "1",
            "ctMult": "1",
            "ctType": "linear",
            "ctVal": "0.01",
            "ctValCcy": "BTC",
            "expTime": "",
            "instFamily": "BTC-USDT",
            "instId": "BTC-USDT-SWAP",
            "instType": "SWAP",
            "lever": "100",
            "listTime": "1606468572000",
            "lotSz": "0.01",
            "maxLmtSz": "100000000",
            "maxMktSz": "12000",
            "minSz": "0.01",
            "optType": "",
            "quoteCcy": "",
            "settleCcy": "USDT",
            "state": "live",
            "stk": "",
            "tickSz": "0.1",
            "uly": "BTC-USDT",
        }
    ],
}


# -- harness of the native price feeds (monitor.venues.{binance,bybit,okx}.feed) -----------------
def fast_settings(url: str, **overrides: Any) -> FeedSettings:
    """WsFeed settings scaled down for tests: checks every 20 ms, backoff 20–100 ms."""
    base = FeedSettings(
        url=url,
        protocol_ping_interval=None,
        protocol_ping_timeout=None,
        check_interval=0.02,
        open_timeout=1.0,
        close_timeout=0.2,
        backoff_initial=0.02,
        backoff_cap=0.1,
        stable_after=0.2,
    )
    return dataclasses.replace(base, **overrides)


def fast_backoff() -> Backoff:
    return Backoff(
        initial=0.02, factor=2.0, cap=0.1, jitter=0.25, stable_after=0.2, rng=random.Random(7)
    )


class FeedRun:
    """A feed (anything with ``run(emit)``) running as a task; ``events`` collects its events."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed
        self.events: list[Event] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> FeedRun:
        self.task = asyncio.create_task(self.feed.run(self.events.append))
        return self

    async def stop(self) -> None:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # surface a crash
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def of(self, kind: type[Any], start: int = 0) -> list[Any]:
        return [e for e in self.events[start:] if isinstance(e, kind)]

    def statuses(self, start: int = 0) -> list[tuple[str, FeedState]]:
        return [(e.channel, e.state) for e in self.of(FeedStatus, start)]
