"""Binance USDⓈ-M accounts by read-only API key: signed REST and the user-data stream (I/O).

Requests (developers.binance.com, "Endpoint security type" / "SIGNED endpoint security"):
``X-MBX-APIKEY: <key>`` header; SIGNED endpoints add ``timestamp`` (ms, venue clock) and
``recvWindow`` to the query and ``signature`` = hex HMAC-SHA256(secret, query string).
USER_STREAM endpoints (``/fapi/v1/listenKey``) take the key header only.

* start: ``GET /sapi/v1/account/apiRestrictions`` on the **spot** host (what the key may do);
  a key with ``enableFutures``/``enableSpotAndMarginTrading``/``enableMargin``/
  ``enableVanillaOptions``/``enablePortfolioMarginTrading`` (trade), ``enableWithdrawals``
  or ``enableInternalTransfer``/``permitsUniversalTransfer`` (moving funds) is refused unless
  ``allow_trading_key``;
* snapshot: ``GET /fapi/v1/leverageBracket`` (once per session), ``GET /fapi/v2/account``,
  ``GET /fapi/v2/positionRisk`` (see :mod:`monitor.venues.binance.accounts`);
* Portfolio Margin (``portfolio_margin = true``): the same through ``papi.binance.com``:
  ``/papi/v1/um/leverageBracket``, ``/papi/v1/account`` (``uniMMR``, ``accountEquity``,
  ``accountMaintMargin``), ``/papi/v1/um/positionRisk``, ``/papi/v1/listenKey`` and the stream
  ``wss://fstream.binance.com/pm/ws/{listenKey}`` (``riskLevelChange`` ⇒ re-snapshot);
* stream: ``POST /fapi/v1/listenKey`` → ``{ws_url}/{listenKey}``; ``PUT`` every
  ``listen_key_keepalive`` seconds (an answer ``-1125`` "listenKey does not exist" renews the
  stream); ``listenKeyExpired`` renews it; the connection is renewed before its 24 h limit;
* errors: HTTP 429/418 ⇒ :class:`RateLimited` for ``Retry-After`` seconds; ``-1021``
  (timestamp outside recvWindow) ⇒ re-read ``GET /fapi/v1/time`` and retry once; 401,
  ``-2014``/``-2015``/``-1022`` ⇒ :class:`KeyRejected`; 5xx, ``-1001``/``-1008`` ⇒
  :class:`VenueUnavailable`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection

from monitor.clock import Clock
from monitor.errors import RetryableError
from monitor.logs import register_secret
from monitor.model.events import AccountSnapshot, PositionUpdate
from monitor.venues.binance.accounts import VENUE, BinanceAccountState, brackets_from_body
from monitor.venues.keys import (
    ClockOffset,
    KeyAccount,
    KeyRejected,
    KeySettings,
    Permissions,
    RateBudget,
    RateLimited,
    RestClient,
    StreamFrame,
    TimestampRejected,
    VenueUnavailable,
    hmac_hex,
    retry_after_seconds,
)
from monitor.venues.parsing import Bad

FAPI_URL = "https://fapi.binance.com"
SPOT_URL = "https://api.binance.com"
WS_URL = "wss://fstream.binance.com/ws"
PAPI_URL = "https://papi.binance.com"
PM_WS_URL = "wss://fstream.binance.com/pm/ws"
RECV_WINDOW_MS = 5000

_AUTH_CODES = frozenset({-2014, -2015, -1022, -2008})
_BUSY_CODES = frozenset({-1001, -1008, -1016})
_TRADE_FLAGS = (
    "enableFutures",
    "enableSpotAndMarginTrading",
    "enableMargin",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
)
_TRANSFER_FLAGS = ("enableInternalTransfer", "permitsUniversalTransfer")


def classify(status: int, headers: Any, body: str) -> Exception | None:
    """A Binance answer → None (success) or the error it means (module docstring)."""
    if 200 <= status < 300:
        return None
    if status in (429, 418):
        return RateLimited(f"HTTP {status}", retry_after_seconds(headers, 60.0))
    code: int | None = None
    msg = body[:120]
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("code"), int):
            code = doc["code"]
            msg = str(doc.get("msg", ""))[:120]
    except ValueError:
        pass
    if code == -1021:
        return TimestampRejected(f"{code} {msg}")
    if status == 401 or code in _AUTH_CODES:
        return KeyRejected(f"HTTP {status} {code if code is not None else ''} {msg}".strip())
    if code == -1003:
        return RateLimited(f"{code} {msg}", retry_after_seconds(headers, 60.0))
    if status >= 500 or code in _BUSY_CODES:
        return VenueUnavailable(f"HTTP {status} {msg}", retry_after_seconds(headers, 30.0))
    return RetryableError(f"HTTP {status} {code if code is not None else ''} {msg}")


def permissions_from_body(body: Any) -> Permissions:
    """``/sapi/v1/account/apiRestrictions`` body → :class:`Permissions`."""
    if not isinstance(body, dict):
        raise RetryableError("apiRestrictions: expected an object")
    on = sorted(k for k, v in body.items() if k.startswith(("enable", "permits")) and v is True)
    return Permissions(
        read=body.get("enableReading") is True,
        trade=any(body.get(f) is True for f in _TRADE_FLAGS),
        withdraw=body.get("enableWithdrawals") is True,
        transfer=any(body.get(f) is True for f in _TRANSFER_FLAGS),
        detail="enabled: " + (", ".join(on) or "nothing"),
    )


class BinancePrivate:
    """The Binance half of a :class:`~monitor.venues.keys.KeyFeed` (see module docstring)."""

    heartbeat_message: str | None = None  # Binance: protocol-level pings

    def __init__(self, account: KeyAccount, clock: Clock, settings: KeySettings) -> None:
        self.account = account
        self.clock = clock
        self.pm = account.portfolio_margin
        self.fapi = (account.rest_url or FAPI_URL).rstrip("/")
        self.spot = (account.rest_url or SPOT_URL).rstrip("/")
        self.papi = (account.rest_url or PAPI_URL).rstrip("/")
        self.ws_base = (account.ws_url or (PM_WS_URL if self.pm else WS_URL)).rstrip("/")
        # USDⓈ-M: /fapi/...; Portfolio Margin: the same documents under /papi/v1/um/...
        self.trade_base = self.papi if self.pm else self.fapi
        self.listen_path = "/papi/v1/listenKey" if self.pm else "/fapi/v1/listenKey"
        self.keepalive_interval: float | None = settings.listen_key_keepalive
        self.max_lifetime: float | None = settings.binance_max_lifetime
        self.offset = ClockOffset()
        # Binance allows 2400 weight/min per IP on fapi; we keep to half of it
        self.rest = RestClient(
            account, clock, RateBudget(1200.0, 60.0), classify, self.resync_clock
        )
        self.state = BinanceAccountState(account.name)
        self.listen_key: str | None = None
        self._need_brackets = True

    # -- REST helpers --------------------------------------------------------------------------
    async def resync_clock(self) -> None:
        sent = self.clock.now()
        status, headers, body = await self.rest.raw("GET", f"{self.fapi}/fapi/v1/time")
        err = classify(status, headers, body)
        if err is not None:
            raise err
        try:
            server_ms = float(json.loads(body)["serverTime"])
        except (ValueError, KeyError, TypeError):
            raise RetryableError("GET /fapi/v1/time: no serverTime") from None
        self.offset.update(server_ms, sent, self.clock.now())

    async def signed(
        self, base: str, path: str, params: dict[str, str] | None = None, weight: float = 1.0
    ) -> Any:
        def make() -> tuple[str, dict[str, str], str | None]:
            q = dict(params or {})
            q["recvWindow"] = str(RECV_WINDOW_MS)
            q["timestamp"] = str(self.offset.stamp_ms(self.clock.now()))
            query = urlencode(q)
            sig = hmac_hex(self.account.secret, query)
            return (
                f"{base}{path}?{query}&signature={sig}",
                {"X-MBX-APIKEY": self.account.api_key},
                None,
            )

        return _json(await self.rest.call("GET", make, weight=weight), path)

    async def _user_stream(self, method: str) -> str:
        def make() -> tuple[str, dict[str, str], str | None]:
            return (
                f"{self.trade_base}{self.listen_path}",
                {"X-MBX-APIKEY": self.account.api_key},
                None,
            )

        return await self.rest.call(method, make)

    # -- PrivateVenue ----------------------------------------------------------------------------
    async def permissions(self) -> Permissions:
        await self.resync_clock()
        body = await self.signed(self.spot, "/sapi/v1/account/apiRestrictions")
        return permissions_from_body(body)

    async def snapshot(self, ts_recv: float) -> AccountSnapshot:
        if self.pm:
            paths = ("/papi/v1/um/leverageBracket", "/papi/v1/account", "/papi/v1/um/positionRisk")
        else:
            paths = ("/fapi/v1/leverageBracket", "/fapi/v2/account", "/fapi/v2/positionRisk")
        base = self.trade_base
        if self._need_brackets:
            self.state.brackets = _checked(brackets_from_body, await self.signed(base, paths[0]))
            self._need_brackets = False
        account = await self.signed(base, paths[1], weight=5)
        risk = await self.signed(base, paths[2], weight=5)
        try:
            if self.pm:
                snap = self.state.pm_snapshot(account, risk, ts_recv)
            else:
                snap = self.state.snapshot(account, risk, ts_recv)
        except Bad as exc:
            raise RetryableError(f"{VENUE} account: {exc.args[0]}") from None
        if any(p.maintenance is None for p in snap.positions):
            # a symbol listed after our bracket read: read them again next time
            self._need_brackets = True
        return snap

    async def stream_url(self) -> str:
        self._need_brackets = True  # a new session reads the brackets again
        body = _json(await self._user_stream("POST"), self.listen_path)
        key = body.get("listenKey") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise RetryableError(f"POST {self.listen_path}: no listenKey in the answer")
        self.listen_key = key
        register_secret(key)  # whoever holds it can read the account's stream
        return f"{self.ws_base}/{key}"

    async def on_open(self, ws: ClientConnection) -> None:
        return None

    def parse(self, frame: str, ts_recv: float) -> StreamFrame:
        try:
            events, reconnect = self.state.on_event(frame, ts_recv)
        except Bad as exc:
            raise ValueError(exc.args[0]) from None
        moved = any(isinstance(e, PositionUpdate) for e in events) or self.state.refresh
        self.state.refresh = False
        return StreamFrame(tuple(events), resnapshot=moved, reconnect=reconnect)

    async def keepalive(self) -> str | None:
        try:
            await self._user_stream("PUT")
        except RetryableError as exc:
            if "-1125" in str(exc):
                return "listen key no longer exists: renewing the stream"
            raise
        return None

    async def close_stream(self) -> None:
        self.listen_key = None

    async def aclose(self) -> None:
        await self.rest.aclose()


def _json(body: str, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise RetryableError(f"{what}: not JSON: {body[:80]!r}") from None


def _checked(fn: Any, body: Any) -> Any:
    try:
        return fn(body)
    except Bad as exc:
        raise RetryableError(f"{VENUE}: {exc.args[0]}") from None
