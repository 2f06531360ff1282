"""OKX accounts by read-only API key: signed REST and the private stream (I/O).

Requests (www.okx.com/docs-v5, "REST Authentication"): headers ``OK-ACCESS-KEY``,
``OK-ACCESS-PASSPHRASE``, ``OK-ACCESS-TIMESTAMP`` (ISO 8601 UTC with milliseconds, venue
clock) and ``OK-ACCESS-SIGN`` = base64 HMAC-SHA256(secret, timestamp + "GET" + request path
with its query + body). Answers are ``{"code": "0", "msg": "", "data": [...]}``.

* start: ``GET /api/v5/account/config``: ``perm`` must be ``read_only`` alone (``trade`` or
  ``withdraw`` refused unless ``allow_trading_key``); ``acctLv`` selects the margin mode;
* snapshot: ``GET /api/v5/account/balance``, ``GET /api/v5/account/positions?instType=SWAP``,
  and, once per instrument held, ``/api/v5/public/instruments``,
  ``/api/v5/public/position-tiers`` and ``/api/v5/account/trade-fee``;
* stream ``wss://ws.okx.com:8443/ws/v5/private``: ``login`` (sign = base64 HMAC(secret,
  seconds + "GET" + "/users/self/verify")), answered before anything else; then
  ``subscribe`` to ``positions`` (``instType`` SWAP) and ``account``; keepalive text ``ping``
  → ``pong``; each push gives a full account snapshot;
* errors: ``50102`` (timestamp expired) ⇒ re-read ``/api/v5/public/time``, retry once;
  HTTP 401, ``50111``/``50113``/``50105``/``50100``/``50110`` ⇒ :class:`KeyRejected`;
  HTTP 429, ``50011``/``50061`` ⇒ :class:`RateLimited`; 5xx, ``50001``/``50013`` (service
  temporarily unavailable, system busy: maintenance) ⇒ :class:`VenueUnavailable`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from monitor.clock import Clock
from monitor.errors import RetryableError
from monitor.model.events import AccountSnapshot
from monitor.venues.keys import (
    KeyAccount,
    KeyRejected,
    KeySettings,
    Permissions,
    StreamFrame,
    hmac_b64,
    retry_after_seconds,
)
from monitor.venues.okx.accounts import VENUE, OkxAccountState, contracts_from, data_of
from monitor.venues.parsing import Bad, obj, opt_num
from monitor.venues.signed import (
    MAX_MESSAGE,
    AnswerCodes,
    SignedPrivate,
    classify_answer,
    retryable,
)

REST_URL = "https://www.okx.com"
WS_URL = "wss://ws.okx.com:8443/ws/v5/private"

CODES = AnswerCodes(
    label="code",
    ok="0",
    timestamp=frozenset({"50102"}),
    auth=frozenset({"50100", "50101", "50105", "50110", "50111", "50113", "50114"}),
    rate=frozenset({"50011", "50061"}),
    busy=frozenset({"50001", "50013", "50026"}),
)


def iso_ms(ms: int) -> str:
    """Venue milliseconds → ``2020-12-08T09:08:57.715Z``."""
    t = dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def classify(status: int, headers: Any, body: str) -> Exception | None:
    """An OKX answer → None (success) or the error it means (module docstring)."""
    code: str | None = None
    msg = body[:MAX_MESSAGE]
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and "code" in doc:
            code = str(doc["code"])
            msg = str(doc.get("msg", ""))[:MAX_MESSAGE]
    except ValueError:
        pass
    return classify_answer(
        status, headers, code, msg, CODES, rate_wait=lambda: retry_after_seconds(headers, 2.0)
    )


def permissions_from_config(row: Any) -> Permissions:
    """One ``/api/v5/account/config`` row → :class:`Permissions` (``perm``)."""
    perm = str(obj(row, "config").get("perm", ""))
    parts = {p.strip() for p in perm.split(",") if p.strip()}
    return Permissions(
        read="read_only" in parts or bool(parts),
        trade="trade" in parts,
        withdraw="withdraw" in parts,
        detail=f"perm={perm!r}",
    )


class OkxPrivate(SignedPrivate):
    """The OKX half of a :class:`~monitor.venues.keys.KeyFeed` (see module docstring)."""

    heartbeat_message: str | None = "ping"
    REST_URL = REST_URL
    WS_URL = WS_URL
    TIME_PATH = "/api/v5/public/time"
    # OKX: most account endpoints allow 10-20 requests per 2 s per user
    BUDGET = (8.0, 2.0)

    def __init__(self, account: KeyAccount, clock: Clock, settings: KeySettings) -> None:
        super().__init__(account, clock, settings)
        self.state = OkxAccountState(account.name)
        self.login_timeout = settings.open_timeout

    def classify(self, status: int, headers: Any, body: str) -> Exception | None:
        return classify(status, headers, body)

    def server_ms(self, body: str) -> float:
        return float(json.loads(body)["data"][0]["ts"])

    def sign(self, path: str, query: str) -> dict[str, str]:
        ts = iso_ms(self.offset.stamp_ms(self.clock.now()))
        path_query = f"{path}?{query}" if query else path
        assert self.account.password is not None
        return {
            "OK-ACCESS-KEY": self.account.api_key,
            "OK-ACCESS-SIGN": hmac_b64(self.account.secret, ts + "GET" + path_query),
            "OK-ACCESS-TIMESTAMP": ts,
            "OK-ACCESS-PASSPHRASE": self.account.password,
        }

    def unwrap(self, doc: Any, path: str) -> list[Any]:
        return data_of(doc, path)

    # -- PrivateVenue ----------------------------------------------------------------------------
    async def permissions(self) -> Permissions:
        await self.resync_clock()
        rows = await self.get("/api/v5/account/config", {})
        if not rows:
            raise RetryableError("/api/v5/account/config: empty")
        self.state.level = str(obj(rows[0], "config").get("acctLv", "2"))
        return permissions_from_config(rows[0])

    async def _details(self) -> None:
        st = self.state
        for inst in sorted(st.missing()):
            fam = st.family(inst)
            if inst not in st.contracts:
                rows = await self.get(
                    "/api/v5/public/instruments",
                    {"instType": "SWAP", "instId": inst},
                    signed=False,
                )
                with retryable(VENUE):
                    st.contracts.update(contracts_from(rows))
            if fam not in st.tiers:
                mode = str(st.rows[inst].get("mgnMode") or "cross")
                st.tiers[fam] = await self.get(
                    "/api/v5/public/position-tiers",
                    {"instType": "SWAP", "tdMode": mode, "instFamily": fam},
                    signed=False,
                )
            if fam not in st.fees:
                rows = await self.get(
                    "/api/v5/account/trade-fee", {"instType": "SWAP", "instFamily": fam}
                )
                with retryable("trade-fee"):
                    row = obj(rows[0], "trade-fee") if rows else {}
                    taker = opt_num(row.get("takerU") or row.get("taker") or None, "takerU")
                st.fees[fam] = abs(taker) if taker is not None else 0.0

    async def snapshot(self, ts_recv: float) -> AccountSnapshot:
        balance = await self.get("/api/v5/account/balance", {})
        rows = await self.get("/api/v5/account/positions", {"instType": "SWAP"})
        with retryable(f"{VENUE} account"):
            self.state.set_balance(balance)
            self.state.set_rows(rows, replace_all=True)
        await self._details()
        with retryable(f"{VENUE} account"):
            return self.state.snapshot(ts_recv)

    async def on_open(self, ws: ClientConnection) -> None:
        ts = str(self.offset.stamp_ms(self.clock.now()) // 1000)
        assert self.account.password is not None
        sign = hmac_b64(self.account.secret, ts + "GET" + "/users/self/verify")
        await ws.send(
            json.dumps(
                {
                    "op": "login",
                    "args": [
                        {
                            "apiKey": self.account.api_key,
                            "passphrase": self.account.password,
                            "timestamp": ts,
                            "sign": sign,
                        }
                    ],
                }
            )
        )
        reply = await asyncio.wait_for(ws.recv(), self.login_timeout)
        try:
            msg = json.loads(reply)
        except ValueError:
            msg = {}
        if not isinstance(msg, dict) or msg.get("event") != "login" or str(msg.get("code")) != "0":
            what = msg.get("msg") if isinstance(msg, dict) else ""
            code = msg.get("code") if isinstance(msg, dict) else ""
            raise KeyRejected(f"stream login refused: {code} {str(what)[:MAX_MESSAGE]}")
        await ws.send(
            json.dumps(
                {
                    "op": "subscribe",
                    "args": [
                        {"channel": "positions", "instType": "SWAP"},
                        {"channel": "account"},
                    ],
                }
            )
        )

    def parse(self, frame: str, ts_recv: float) -> StreamFrame:
        if frame == "pong":
            return StreamFrame()
        try:
            msg = obj(json.loads(frame), "frame")
        except ValueError:
            raise ValueError("not JSON") from None
        event = msg.get("event")
        if event in ("subscribe", "login", "channel-conn-count"):
            return StreamFrame()
        if event == "error":
            return StreamFrame(reconnect=f"stream error {msg.get('code')}: {msg.get('msg')}")
        arg = msg.get("arg")
        if not isinstance(arg, dict) or "data" not in msg:
            raise ValueError(f"unknown message {frame[:60]!r}")
        channel = arg.get("channel")
        try:
            data = msg["data"]
            if channel == "positions":
                self.state.set_rows(
                    data if isinstance(data, list) else [],
                    replace_all=msg.get("eventType") == "snapshot",
                )
            elif channel == "account":
                self.state.set_balance(data)
            else:
                return StreamFrame()
            if self.state.missing():
                return StreamFrame(resnapshot=True)
            ts = (
                max((opt_num(obj(d, "row").get("uTime") or None, "uTime") or 0.0) for d in data)
                if data
                else 0.0
            )
            snap = self.state.snapshot(ts_recv, ts / 1000.0 if ts else None)
        except Bad as exc:
            raise ValueError(exc.args[0]) from None
        return StreamFrame((snap,))
