"""A loopback Bybit v5 venue: signed REST (verified), the private stream with its signed
``auth``, ``position``/``wallet`` pushes and app-level ping/pong (shapes in
tests/fixtures/cex/bybit/).

Signed requests must carry ``X-BAPI-SIGN`` = hex HMAC-SHA256(secret, timestamp + key +
recv_window + query string) and a timestamp within ``recv_window`` of the venue's (possibly
skewed) clock, else the venue answers retCode 10004 / 10002 as Bybit does; an unknown key gets
10003. The venue's own ``liqPrice``: isolated by the Help Center formula (maintenance valued at
entry: ``LP = E ∓ (positionBalance − MM)/q``), cross by the account-level rule (★) with the
account's margin balance and total maintenance, both rounded to 0.01.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.venues.cex.common import Bracket, Loopback, bracket_of, now_ms

# Bybit BTCUSDT risk limits (cap, rate, deduction): tier i applies below its cap
BTC_TIERS = [
    Bracket(2_000_000, 0.005, 0),
    Bracket(2_600_000, 0.0056, 1_200),
    Bracket(3_200_000, 0.0062, 2_760),
]
ETH_TIERS = [Bracket(1_000_000, 0.005, 0), Bracket(1_500_000, 0.0065, 1_500)]


def tier_of(tiers: list[Bracket], notional: float) -> Bracket:
    floors = [
        Bracket(0.0 if i == 0 else tiers[i - 1].floor, t.rate, t.deduction)
        for i, t in enumerate(tiers)
    ]
    return floors[bracket_of(floors, notional)]


@dataclass
class Pos:
    symbol: str
    size: float
    entry: float
    isolated: bool = False
    balance: float = 0.0  # isolated: positionBalance
    leverage: float = 10.0


class BybitMock(Loopback):
    def __init__(self, api_key: str, secret: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret = secret
        self.skew_ms = 0
        self.read_only = 1
        self.permissions: dict[str, list[str]] = {
            "ContractTrade": ["Order", "Position"],
            "Spot": [],
            "Wallet": [],
            "Options": [],
            "Derivatives": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
            "Affiliate": [],
            "Earn": [],
        }
        self.wallet = 10_000.0  # USDT collateral (haircut 1), excluding uPnL
        self.positions: dict[str, Pos] = {}
        self.marks = {"BTCUSDT": 20_000.0, "ETHUSDT": 3_000.0}
        self.tiers = {"BTCUSDT": BTC_TIERS, "ETHUSDT": ETH_TIERS}
        self.bad_signatures = 0
        self.stale_timestamps = 0
        self.auth_ok = True
        r = self.app.router
        r.add_get("/v5/market/time", self._time)
        r.add_get("/v5/market/risk-limit", self._risk_limit)
        r.add_get("/v5/user/query-api", self._signed(self._query_api))
        r.add_get("/v5/account/wallet-balance", self._signed(self._wallet_balance))
        r.add_get("/v5/position/list", self._signed(self._position_list))
        r.add_get("/v5/private", self._ws)

    def server_ms(self) -> int:
        return now_ms() + self.skew_ms

    def _answer(self, result: Any, code: int = 0, msg: str = "OK") -> web.Response:
        return web.json_response(
            {
                "retCode": code,
                "retMsg": msg,
                "result": result,
                "retExtInfo": {},
                "time": self.server_ms(),
            }
        )

    def _signed(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            h = request.headers
            if h.get("X-BAPI-API-KEY") != self.api_key:
                return self._answer({}, 10003, "API key is invalid.")
            ts, recv = h.get("X-BAPI-TIMESTAMP", ""), h.get("X-BAPI-RECV-WINDOW", "5000")
            payload = ts + self.api_key + recv + request.query_string
            good = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(h.get("X-BAPI-SIGN", ""), good):
                self.bad_signatures += 1
                return self._answer({}, 10004, f"error sign! origin_string[{payload[:4]}...]")
            server = self.server_ms()
            if not (server - int(recv) <= int(ts) < server + 1000):
                self.stale_timestamps += 1
                return self._answer(
                    {},
                    10002,
                    "invalid request, please check your server timestamp or recv_window param. "
                    f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv}]",
                )
            return await handler(request)

        return wrapped

    async def _time(self, request: web.Request) -> web.Response:
        t = self.server_ms()
        return self._answer({"timeSecond": str(t // 1000), "timeNano": str(t * 1_000_000)})

    async def _risk_limit(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        rows = [
            {
                "id": i + 1,
                "symbol": sym,
                "riskLimitValue": f"{t.floor:.0f}",
                "maintenanceMargin": f"{t.rate}",
                "initialMargin": f"{2 * t.rate}",
                "isLowestRisk": 1 if i == 0 else 0,
                "maxLeverage": f"{0.5 / t.rate:.2f}",
                "mmDeduction": "" if i == 0 else f"{t.deduction:g}",
            }
            for i, t in enumerate(self.tiers.get(sym, []))
        ]
        return self._answer({"category": "linear", "list": rows})

    async def _query_api(self, request: web.Request) -> web.Response:
        return self._answer(
            {
                "id": "13770661",
                "note": "monitor",
                "apiKey": self.api_key,
                "readOnly": self.read_only,
                "secret": "",
                "permissions": self.permissions,
                "ips": ["*"],
                "type": 1,
                "deadlineDay": 66,
                "expiredAt": "2027-12-22T07:20:51Z",
                "createdAt": "2026-10-16T02:24:40Z",
                "unified": 0,
                "uta": 1,
                "userID": 24600000,
                "inviterID": 0,
                "vipLevel": "No VIP",
                "mktMakerLevel": "0",
                "affiliateID": 0,
                "rsaPublicKey": "",
                "isMaster": True,
                "parentUid": "0",
                "kycLevel": "LEVEL_DEFAULT",
                "kycRegion": "",
            }
        )

    # -- venue arithmetic ---------------------------------------------------------------------
    def upnl(self, p: Pos) -> float:
        return p.size * (self.marks[p.symbol] - p.entry)

    def mm(self, p: Pos) -> float:
        price = p.entry if p.isolated else self.marks[p.symbol]
        n = abs(p.size) * price
        t = tier_of(self.tiers[p.symbol], n)
        return n * t.rate - t.deduction

    def margin_balance(self) -> float:
        return self.wallet + sum(self.upnl(p) for p in self.positions.values() if not p.isolated)

    def total_mm(self) -> float:
        return sum(self.mm(p) for p in self.positions.values() if not p.isolated)

    def liq_price(self, p: Pos) -> float | None:
        q = abs(p.size)
        side = 1 if p.size > 0 else -1
        if p.isolated:  # Help Center: LP = E − side·(positionBalance − MM)/q
            lp = p.entry - side * (p.balance - self.mm(p)) / q
        else:  # account level: P − side·(Eq − MM_total)/(q·(1 − side·m))
            mark = self.marks[p.symbol]
            m = tier_of(self.tiers[p.symbol], q * mark).rate
            lp = mark - side * (self.margin_balance() - self.total_mm()) / (q * (1 - side * m))
        return round(lp, 2) if lp > 0 else None

    def position_row(self, p: Pos, *, stream: bool = False) -> dict[str, Any]:
        mark = self.marks[p.symbol]
        lp = self.liq_price(p)
        row: dict[str, Any] = {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": p.symbol,
            "side": "Buy" if p.size > 0 else "Sell",
            "size": f"{abs(p.size)}",
            "positionValue": f"{abs(p.size) * p.entry}",
            "tradeMode": 1 if p.isolated else 0,
            "autoAddMargin": 0,
            "positionStatus": "Normal",
            "leverage": f"{p.leverage:g}",
            "markPrice": f"{mark}",
            "liqPrice": f"{lp:.2f}" if lp is not None else "",
            "bustPrice": "",
            "positionIM": f"{abs(p.size) * p.entry / p.leverage:.4f}",
            "positionMM": f"{self.mm(p):.4f}",
            "positionBalance": f"{p.balance:.4f}" if p.isolated else "0",
            "tpslMode": "Full",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "sessionAvgPrice": "",
            "unrealisedPnl": f"{self.upnl(p):.4f}",
            "curRealisedPnl": "0",
            "cumRealisedPnl": "0",
            "adlRankIndicator": 2,
            "createdTime": str(now_ms()),
            "updatedTime": str(now_ms()),
            "seq": 1,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
        }
        if stream:
            row["entryPrice"] = f"{p.entry}"
            row["category"] = "linear"
        else:
            row["avgPrice"] = f"{p.entry}"
            row.update(delta="", gamma="", vega="", theta="")
        return row

    def wallet_row(self) -> dict[str, Any]:
        mb = self.margin_balance()
        mm = self.total_mm()
        upl = sum(self.upnl(p) for p in self.positions.values() if not p.isolated)
        iso = sum(p.balance for p in self.positions.values() if p.isolated)
        return {
            "totalEquity": f"{mb + iso:.8f}",
            "accountIMRate": "0",
            "totalMarginBalance": f"{mb:.8f}",
            "totalInitialMargin": "0",
            "accountType": "UNIFIED",
            "totalAvailableBalance": f"{mb - mm:.8f}",
            "accountMMRate": f"{mm / mb:.4f}" if mb > 0 else "0",
            "totalPerpUPL": f"{upl:.8f}",
            "totalWalletBalance": f"{self.wallet:.8f}",
            "accountLTV": "0",
            "totalMaintenanceMargin": f"{mm:.8f}",
            "coin": [
                {
                    "coin": "USDT",
                    "equity": f"{mb:.8f}",
                    "usdValue": f"{mb:.8f}",
                    "walletBalance": f"{self.wallet:.8f}",
                    "availableToWithdraw": "0",
                    "availableToBorrow": "",
                    "borrowAmount": "0",
                    "accruedInterest": "0",
                    "totalOrderIM": "0",
                    "totalPositionIM": "0",
                    "totalPositionMM": "0",
                    "unrealisedPnl": f"{upl:.8f}",
                    "cumRealisedPnl": "0",
                    "bonus": "0",
                    "collateralSwitch": True,
                    "marginCollateral": True,
                    "locked": "0",
                    "spotHedgingQty": "0",
                }
            ],
        }

    async def _wallet_balance(self, request: web.Request) -> web.Response:
        return self._answer({"list": [self.wallet_row()]})

    async def _position_list(self, request: web.Request) -> web.Response:
        rows = [self.position_row(p) for p in self.positions.values()]
        return self._answer({"list": rows, "nextPageCursor": "", "category": "linear"})

    # -- private stream ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        state = {"authed": False}

        async def on_text(text: str) -> None:
            msg = json.loads(text)
            op = msg.get("op")
            if op == "auth":
                key, expires, sig = msg["args"]
                good = hmac.new(
                    self.secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256
                ).hexdigest()
                ok = (
                    self.auth_ok
                    and key == self.api_key
                    and hmac.compare_digest(sig, good)
                    and int(expires) > self.server_ms()
                )
                state["authed"] = ok
                await ws.send_json(
                    {
                        "success": ok,
                        "ret_msg": "" if ok else "Request not authorized",
                        "op": "auth",
                        "conn_id": "c1",
                    }
                )
            elif op == "subscribe":
                ok = state["authed"]
                await ws.send_json(
                    {
                        "success": ok,
                        "ret_msg": "" if ok else "Request not authorized",
                        "op": "subscribe",
                        "conn_id": "c1",
                    }
                )
            elif op == "ping":
                await ws.send_json(
                    {
                        "req_id": msg.get("req_id", ""),
                        "op": "pong",
                        "args": [str(now_ms())],
                        "conn_id": "c1",
                    }
                )

        await self.hold(ws, on_text)
        return ws

    async def push_position(self, symbol: str) -> None:
        p = self.positions.get(symbol)
        if p is None:
            row = {
                "positionIdx": 0,
                "symbol": symbol,
                "side": "",
                "size": "0",
                "entryPrice": "0",
                "tradeMode": 0,
                "positionBalance": "0",
                "markPrice": f"{self.marks[symbol]}",
                "liqPrice": "",
                "category": "linear",
            }
        else:
            row = self.position_row(p, stream=True)
        await self.push({"id": "x", "topic": "position", "creationTime": now_ms(), "data": [row]})

    async def push_wallet(self) -> None:
        await self.push(
            {"id": "y", "topic": "wallet", "creationTime": now_ms(), "data": [self.wallet_row()]}
        )

    # -- the trader acts ---------------------------------------------------------------------------
    async def open(
        self,
        symbol: str,
        size: float,
        entry: float,
        *,
        isolated_balance: float | None = None,
        leverage: float = 10.0,
    ) -> None:
        iso = isolated_balance is not None
        self.positions[symbol] = Pos(symbol, size, entry, iso, isolated_balance or 0.0, leverage)
        if iso:
            self.wallet -= isolated_balance or 0.0
        await self.push_position(symbol)
        await self.push_wallet()

    async def resize(self, symbol: str, new_size: float, price: float) -> None:
        p = self.positions[symbol]
        if abs(new_size) > abs(p.size):
            p.entry = (p.size * p.entry + (new_size - p.size) * price) / new_size
        else:
            self.wallet += (p.size - new_size) * (price - p.entry)
        p.size = new_size
        await self.push_position(symbol)
        await self.push_wallet()

    async def move_margin(self, symbol: str, amount: float) -> None:
        p = self.positions[symbol]
        p.balance += amount
        self.wallet -= amount
        await self.push_position(symbol)
        await self.push_wallet()

    async def close(self, symbol: str, price: float) -> None:
        p = self.positions.pop(symbol)
        self.wallet += p.size * (price - p.entry) + (p.balance if p.isolated else 0.0)
        await self.push_position(symbol)
        await self.push_wallet()
