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

from websockets.asyncio.client import ClientConnection

from monitor.clock import Clock
from monitor.errors import RetryableError
from monitor.model.events import AccountSnapshot
from monitor.venues.bybit.accounts import VENUE, BybitAccountState, result_of, risk_tiers
from monitor.venues.keys import (
    KeyAccount,
    KeySettings,
    Permissions,
    StreamFrame,
    hmac_hex,
    retry_after_seconds,
)
from monitor.venues.parsing import Bad, lst, obj
from monitor.venues.signed import (
    MAX_MESSAGE,
    AnswerCodes,
    SignedPrivate,
    classify_answer,
    retryable,
)

REST_URL = "https://api.bybit.com"
WS_URL = "wss://stream.bybit.com/v5/private"
RECV_WINDOW_MS = 5000

CODES = AnswerCodes(
    label="retCode",
    ok="0",
    timestamp=frozenset({"10002"}),
    auth=frozenset({"10003", "10004", "10005", "10007", "10010", "33004"}),
    rate=frozenset({"10006", "10018"}),
    busy=frozenset({"10016", "10019"}),
    rate_statuses=frozenset({403, 429}),
)
_TRANSFER_RIGHTS = frozenset(
    {"AccountTransfer", "SubMemberTransfer", "SubMemberTransferList", "Withdraw"}
)


def classify(status: int, headers: Any, body: str) -> Exception | None:
    """A Bybit answer → None (success) or the error it means (module docstring). Only an
    integer ``retCode`` is a code."""
    code: str | None = None
    msg = body[:MAX_MESSAGE]
    server_ms: float | None = None
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("retCode"), int):
            code = str(doc["retCode"])
            msg = str(doc.get("retMsg", ""))[:MAX_MESSAGE]
            t = doc.get("time")
            server_ms = float(t) if isinstance(t, int | float) else None
    except ValueError:
        pass
    return classify_answer(
        status, headers, code, msg, CODES, rate_wait=lambda: _reset_after(headers, server_ms)
    )


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


class BybitPrivate(SignedPrivate):
    """The Bybit half of a :class:`~monitor.venues.keys.KeyFeed` (see module docstring)."""

    heartbeat_message: str | None = '{"req_id":"hb","op":"ping"}'
    REST_URL = REST_URL
    WS_URL = WS_URL
    TIME_PATH = "/v5/market/time"
    # Bybit: 600 requests per 5 s per IP; per-endpoint limits are 10-50/s: keep it modest
    BUDGET = (50.0, 1.0)

    def __init__(self, account: KeyAccount, clock: Clock, settings: KeySettings) -> None:
        super().__init__(account, clock, settings)
        self.state = BybitAccountState(account.name)
        self.auth_failed: str | None = None

    def classify(self, status: int, headers: Any, body: str) -> Exception | None:
        return classify(status, headers, body)

    def server_ms(self, body: str) -> float:
        return float(json.loads(body)["time"])

    def sign(self, path: str, query: str) -> dict[str, str]:
        ts = str(self.offset.stamp_ms(self.clock.now()))
        recv = str(RECV_WINDOW_MS)
        return {
            "X-BAPI-API-KEY": self.account.api_key,
            "X-BAPI-TIMESTAMP": ts,
            "X-BAPI-RECV-WINDOW": recv,
            "X-BAPI-SIGN": hmac_hex(self.account.secret, ts + self.account.api_key + recv + query),
        }

    def unwrap(self, doc: Any, path: str) -> Any:
        return result_of(doc, path)

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
        with retryable(f"{VENUE} account"):
            held = {str(obj(r, "position").get("symbol")) for r in rows}
            for sym in sorted(held - set(self.state.tiers)):
                result = await self.get(
                    "/v5/market/risk-limit", {"category": "linear", "symbol": sym}, signed=False
                )
                self.state.tiers.update(risk_tiers(result))
            self.state.set_wallet(lst(wallet.get("list"), "wallet.list"))
            self.state.set_positions(rows)
            return self.state.snapshot(ts_recv)

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
            return StreamFrame(
                fatal=f"stream login refused: {str(msg.get('ret_msg'))[:MAX_MESSAGE]}"
            )
        if op == "subscribe":
            if msg.get("success") is True:
                return StreamFrame()
            return StreamFrame(
                reconnect=f"subscribe refused: {str(msg.get('ret_msg'))[:MAX_MESSAGE]}"
            )
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
