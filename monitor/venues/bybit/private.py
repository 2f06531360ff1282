"""Bybit v5 accounts by read-only API key: signed REST and the private stream (I/O).

Requests (bybit-exchange.github.io/docs/v5/guide, "Authentication for HTTP API"): headers
``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP`` (ms, venue clock), ``X-BAPI-RECV-WINDOW``,
``X-BAPI-SIGN`` = hex HMAC-SHA256(secret, timestamp + api_key + recv_window + query string).
Answers are ``{"retCode", "retMsg", "result", "time"}``.

* start: ``GET /v5/user/query-api``: ``readOnly`` must be 1 and ``permissions.Wallet`` must not
  hold ``Withdraw`` or a transfer right, unless ``allow_trading_key``;
* snapshot: ``GET /v5/market/risk-limit`` (public, per symbol held, cached),
  ``GET /v5/account/wallet-balance?accountType=UNIFIED``,
  ``GET /v5/position/list?category=linear&settleCoin=USDT`` (cursor-paged);
* stream ``wss://stream.bybit.com/v5/private``: ``{"op":"auth","args":[key, expires,
  hex HMAC(secret, "GET/realtime" + expires)]}``, then ``subscribe`` to ``position.linear`` and
  ``wallet``; app heartbeat ``{"op":"ping"}`` answered by ``{"op":"pong"}``; each push gives a
  full account snapshot (see :mod:`monitor.venues.bybit.accounts`);
* errors: ``10002`` (timestamp/recv_window) ⇒ re-read ``/v5/market/time``, retry once;
  ``10003``/``10004``/``10005``/``10010``/``33004`` or HTTP 401 ⇒ :class:`KeyRejected`;
  ``10006``/``10018`` or HTTP 403/429 ⇒ :class:`RateLimited` (until
  ``X-Bapi-Limit-Reset-Timestamp``, measured against the answer's ``time``, or
  ``Retry-After``); ``10016`` or 5xx ⇒
  :class:`VenueUnavailable`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection

from monitor.clock import Clock
from monitor.errors import RetryableError
from monitor.model.events import AccountSnapshot
from monitor.venues.bybit.accounts import VENUE, BybitAccountState, result_of, risk_tiers
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
from monitor.venues.parsing import Bad, lst, obj

REST_URL = "https://api.bybit.com"
WS_URL = "wss://stream.bybit.com/v5/private"
RECV_WINDOW_MS = 5000

_AUTH_CODES = frozenset({10003, 10004, 10005, 10007, 10010, 33004})
_RATE_CODES = frozenset({10006, 10018})
_BUSY_CODES = frozenset({10016, 10019})
_TRANSFER_RIGHTS = frozenset(
    {"AccountTransfer", "SubMemberTransfer", "SubMemberTransferList", "Withdraw"}
)


def classify(status: int, headers: Any, body: str) -> Exception | None:
    """A Bybit answer → None (success) or the error it means (module docstring)."""
    code: int | None = None
    msg = body[:120]
    server_ms: float | None = None
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("retCode"), int):
            code = doc["retCode"]
            msg = str(doc.get("retMsg", ""))[:120]
            t = doc.get("time")
            server_ms = float(t) if isinstance(t, int | float) else None
    except ValueError:
        pass
    if 200 <= status < 300 and code == 0:
        return None
    if code == 10002:
        return TimestampRejected(f"{code} {msg}")
    if status == 401 or code in _AUTH_CODES:
        return KeyRejected(f"HTTP {status} retCode {code} {msg}")
    if status in (403, 429) or code in _RATE_CODES:
        return RateLimited(f"HTTP {status} retCode {code} {msg}", _reset_after(headers, server_ms))
    if status >= 500 or code in _BUSY_CODES:
        return VenueUnavailable(f"HTTP {status} {msg}", retry_after_seconds(headers, 30.0))
    return RetryableError(f"HTTP {status} retCode {code} {msg}")


def _reset_after(headers: Any, server_ms: float | None) -> float:
    """Seconds to wait: ``X-Bapi-Limit-Reset-Timestamp`` (venue ms) minus the answer's own
    ``time`` (venue ms), within [0, 60]; else ``Retry-After``; else 10 s."""
    raw = headers.get("X-Bapi-Limit-Reset-Timestamp") if headers is not None else None
    if raw is not None and server_ms is not None:
        try:
            return min(max((float(raw) - server_ms) / 1000.0, 0.0), 60.0)
        except ValueError:
            pass
    return retry_after_seconds(headers, 10.0)


def permissions_from_result(result: Any) -> Permissions:
    """``/v5/user/query-api`` result → :class:`Permissions`."""
    try:
        o = obj(result, "query-api")
        perms = obj(o.get("permissions", {}), "permissions")
        wallet = set(lst(perms.get("Wallet", []), "permissions.Wallet"))
    except Bad as exc:
        raise RetryableError(f"query-api: {exc.args[0]}") from None
    read_only = o.get("readOnly") in (1, "1")
    granted = sorted(f"{k}:{'/'.join(map(str, v))}" for k, v in perms.items() if v)
    return Permissions(
        read=True,
        trade=not read_only,
        withdraw="Withdraw" in wallet,
        transfer=bool(wallet & (_TRANSFER_RIGHTS - {"Withdraw"})),
        detail=f"readOnly={o.get('readOnly')!r}; " + (", ".join(granted) or "no permissions"),
    )


class BybitPrivate:
    """The Bybit half of a :class:`~monitor.venues.keys.KeyFeed` (see module docstring)."""

    heartbeat_message: str | None = '{"req_id":"hb","op":"ping"}'
    keepalive_interval: float | None = None
    max_lifetime: float | None = None

    def __init__(self, account: KeyAccount, clock: Clock, settings: KeySettings) -> None:
        self.account = account
        self.clock = clock
        self.base = (account.rest_url or REST_URL).rstrip("/")
        self.ws_url = account.ws_url or WS_URL
        self.offset = ClockOffset()
        # Bybit: 600 requests per 5 s per IP; per-endpoint limits are 10-50/s: keep it modest
        self.rest = RestClient(account, clock, RateBudget(50.0, 1.0), classify, self.resync_clock)
        self.state = BybitAccountState(account.name)
        self.auth_failed: str | None = None

    async def resync_clock(self) -> None:
        sent = self.clock.now()
        status, headers, body = await self.rest.raw("GET", f"{self.base}/v5/market/time")
        err = classify(status, headers, body)
        if err is not None:
            raise err
        try:
            server_ms = float(json.loads(body)["time"])
        except (ValueError, KeyError, TypeError):
            raise RetryableError("GET /v5/market/time: no time") from None
        self.offset.update(server_ms, sent, self.clock.now())

    async def get(self, path: str, params: dict[str, str], *, signed: bool = True) -> Any:
        def make() -> tuple[str, dict[str, str], str | None]:
            query = urlencode(params)
            url = f"{self.base}{path}?{query}" if query else f"{self.base}{path}"
            if not signed:
                return url, {}, None
            ts = str(self.offset.stamp_ms(self.clock.now()))
            recv = str(RECV_WINDOW_MS)
            sig = hmac_hex(self.account.secret, ts + self.account.api_key + recv + query)
            return (
                url,
                {
                    "X-BAPI-API-KEY": self.account.api_key,
                    "X-BAPI-TIMESTAMP": ts,
                    "X-BAPI-RECV-WINDOW": recv,
                    "X-BAPI-SIGN": sig,
                },
                None,
            )

        text = await self.rest.call("GET", make)
        try:
            return result_of(json.loads(text), path)
        except (ValueError, Bad) as exc:
            raise RetryableError(f"{path}: {str(exc)[:120]}") from None

    # -- PrivateVenue ----------------------------------------------------------------------------
    async def permissions(self) -> Permissions:
        await self.resync_clock()
        return permissions_from_result(await self.get("/v5/user/query-api", {}))

    async def snapshot(self, ts_recv: float) -> AccountSnapshot:
        wallet = await self.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
        rows: list[Any] = []
        cursor = ""
        for _ in range(20):
            params = {"category": "linear", "settleCoin": "USDT", "limit": "200"}
            if cursor:
                params["cursor"] = cursor
            page = await self.get("/v5/position/list", params)
            rows.extend(page.get("list") or [])
            cursor = str(page.get("nextPageCursor") or "")
            if not cursor:
                break
        try:
            held = {str(obj(r, "position").get("symbol")) for r in rows}
            for sym in sorted(held - set(self.state.tiers)):
                result = await self.get(
                    "/v5/market/risk-limit", {"category": "linear", "symbol": sym}, signed=False
                )
                self.state.tiers.update(risk_tiers(result))
            self.state.set_wallet(lst(wallet.get("list"), "wallet.list"))
            self.state.set_positions(rows)
            return self.state.snapshot(ts_recv)
        except Bad as exc:
            raise RetryableError(f"{VENUE} account: {exc.args[0]}") from None

    async def stream_url(self) -> str:
        return self.ws_url

    async def on_open(self, ws: ClientConnection) -> None:
        expires = self.offset.stamp_ms(self.clock.now()) + 10_000
        sig = hmac_hex(self.account.secret, f"GET/realtime{expires}")
        await ws.send(
            json.dumps(
                {"req_id": "auth", "op": "auth", "args": [self.account.api_key, expires, sig]}
            )
        )
        await ws.send(
            json.dumps({"req_id": "sub", "op": "subscribe", "args": ["position.linear", "wallet"]})
        )

    def parse(self, frame: str, ts_recv: float) -> StreamFrame:
        try:
            msg = obj(json.loads(frame), "frame")
        except ValueError:
            raise ValueError("not JSON") from None
        op = msg.get("op")
        if op in ("pong", "ping"):
            return StreamFrame()
        if op == "auth":
            if msg.get("success") is True:
                return StreamFrame()
            return StreamFrame(fatal=f"stream login refused: {str(msg.get('ret_msg'))[:120]}")
        if op == "subscribe":
            if msg.get("success") is True:
                return StreamFrame()
            return StreamFrame(reconnect=f"subscribe refused: {str(msg.get('ret_msg'))[:120]}")
        if "topic" in msg:
            try:
                snap = self.state.on_push(msg, ts_recv)
            except Bad as exc:
                raise ValueError(exc.args[0]) from None
            if snap is None:
                return StreamFrame()
            missing = any(p.maintenance is None for p in snap.positions)
            return StreamFrame((snap,), resnapshot=missing)
        raise ValueError(f"unknown message {frame[:60]!r}")

    async def keepalive(self) -> str | None:
        return None

    async def close_stream(self) -> None:
        return None

    async def aclose(self) -> None:
        await self.rest.aclose()
