"""A loopback Binance USDⓈ-M venue: signed REST (verified), listen keys, the user-data stream.

It speaks the documented formats (shapes in tests/fixtures/cex/binanceusdm/): every SIGNED
request's ``signature`` must be the hex HMAC-SHA256 of the exact query string before it, under
the account's secret, and its ``timestamp`` within ``recvWindow`` of the venue's clock (which
may be skewed: ``skew_ms``); otherwise the venue answers as Binance does (-1022, -1021, 401
-2015). The trader's actions (open, resize, move margin, close) change the venue's state and
push ``ACCOUNT_UPDATE`` on every user-data connection; REST then shows the venue's own mark,
maintenance and liquidation price (FAQ formula, rounded to 0.01 as the FAQ does).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.venues.cex.common import Bracket, Loopback, bracket_of, faq_liquidation_price, now_ms

# Binance's ETHUSDT / BTCUSDT brackets of the FAQ's time: cum_b = cum_{b−1} + floor_b·ΔMMR
ETH_BRACKETS = [
    Bracket(0, 0.005, 0),
    Bracket(10_000, 0.0065, 15),
    Bracket(100_000, 0.01, 365),
    Bracket(500_000, 0.02, 5_365),
    Bracket(1_000_000, 0.05, 35_365),
    Bracket(2_000_000, 0.10, 135_365),
    Bracket(5_000_000, 0.125, 260_365),
]
BTC_BRACKETS = [
    Bracket(0, 0.004, 0),
    Bracket(50_000, 0.005, 50),
    Bracket(250_000, 0.01, 1_300),
    Bracket(1_000_000, 0.025, 16_300),
    Bracket(10_000_000, 0.05, 266_300),
]


@dataclass
class Pos:
    symbol: str
    size: float
    entry: float
    margin_type: str = "cross"
    isolated_wallet: float = 0.0
    leverage: int = 10


class BinanceMock(Loopback):
    def __init__(self, api_key: str, secret: str, *, pm: bool = False) -> None:
        super().__init__()
        self.pm = pm
        self.loan_mm = 0.0  # PM: maintenance of margin loans, beyond the UM positions
        self.api_key = api_key
        self.secret = secret
        self.skew_ms = 0
        self.restrictions: dict[str, Any] = {
            "ipRestrict": False,
            "createTime": 1698645219000,
            "enableReading": True,
            "enableWithdrawals": False,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": True,
            "enableSpotAndMarginTrading": False,
            "enablePortfolioMarginTrading": False,
        }
        self.wallet = 10_000.0  # USDT cross wallet, excluding uPnL
        self.positions: dict[str, Pos] = {}
        self.marks: dict[str, float] = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}
        self.brackets = {"BTCUSDT": BTC_BRACKETS, "ETHUSDT": ETH_BRACKETS}
        self.listen_keys: set[str] = set()
        self.bad_signatures = 0
        self.stale_timestamps = 0
        self.lp_error = 0.0  # added to the published liquidation price (a venue we disagree with)
        r = self.app.router
        r.add_get("/fapi/v1/time", self._time)
        r.add_get("/sapi/v1/account/apiRestrictions", self._signed(self._restrictions))
        r.add_get("/fapi/v1/leverageBracket", self._signed(self._brackets))
        r.add_get("/fapi/v2/account", self._signed(self._account))
        r.add_get("/fapi/v2/positionRisk", self._signed(self._risk))
        r.add_route("*", "/fapi/v1/listenKey", self._listen_key)
        r.add_get("/ws/{key}", self._ws)
        # Portfolio Margin: the papi host (one port here) and its stream path
        r.add_get("/papi/v1/um/leverageBracket", self._signed(self._brackets))
        r.add_get("/papi/v1/account", self._signed(self._pm_account))
        r.add_get("/papi/v1/um/positionRisk", self._signed(self._pm_risk))
        r.add_route("*", "/papi/v1/listenKey", self._listen_key)
        r.add_get("/pm/ws/{key}", self._ws)

    # -- venue clock and request checks ------------------------------------------------------
    def server_ms(self) -> int:
        return now_ms() + self.skew_ms

    def _signed(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if request.headers.get("X-MBX-APIKEY") != self.api_key:
                return web.json_response(
                    {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                    status=401,
                )
            raw = request.query_string
            payload, sep, sig = raw.rpartition("&signature=")
            good = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not sep or not hmac.compare_digest(sig, good):
                self.bad_signatures += 1
                return web.json_response(
                    {"code": -1022, "msg": "Signature for this request is not valid."},
                    status=400,
                )
            q = dict(parse_qsl(payload))
            ts = int(q.get("timestamp", "0"))
            window = int(q.get("recvWindow", "5000"))
            server = self.server_ms()
            if ts >= server + 1000 or server - ts > window:
                self.stale_timestamps += 1
                return web.json_response(
                    {
                        "code": -1021,
                        "msg": "Timestamp for this request is outside of the recvWindow.",
                    },
                    status=400,
                )
            return await handler(request)

        return wrapped

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.server_ms()})

    async def _restrictions(self, request: web.Request) -> web.Response:
        return web.json_response(self.restrictions)

    async def _brackets(self, request: web.Request) -> web.Response:
        out = []
        for symbol, brs in self.brackets.items():
            rows = []
            for i, b in enumerate(brs):
                cap = brs[i + 1].floor if i + 1 < len(brs) else 1e9
                rows.append(
                    {
                        "bracket": i + 1,
                        "initialLeverage": max(1, int(0.5 / b.rate)),
                        "notionalCap": cap,
                        "notionalFloor": b.floor,
                        "maintMarginRatio": b.rate,
                        "cum": b.deduction,
                    }
                )
            out.append({"symbol": symbol, "notionalCoef": 1.0, "brackets": rows})
        return web.json_response(out)

    # -- venue arithmetic --------------------------------------------------------------------
    def mm(self, p: Pos) -> float:
        brs = self.brackets[p.symbol]
        n = abs(p.size) * self.marks[p.symbol]
        b = brs[bracket_of(brs, n)]
        return n * b.rate - b.deduction

    def upnl(self, p: Pos) -> float:
        return p.size * (self.marks[p.symbol] - p.entry)

    def liquidation_price(self, p: Pos) -> float | None:
        if p.margin_type == "isolated":
            wallet, other_mm, other_upnl = p.isolated_wallet, 0.0, 0.0
        else:
            others = [o for o in self.positions.values() if o is not p and o.margin_type == "cross"]
            wallet = self.wallet
            other_mm = sum(self.mm(o) for o in others)
            other_upnl = sum(self.upnl(o) for o in others)
        lp = faq_liquidation_price(
            size=p.size,
            entry=p.entry,
            wallet=wallet,
            other_mm=other_mm,
            other_upnl=other_upnl,
            brackets=self.brackets[p.symbol],
            mark=self.marks[p.symbol],
        )
        return None if lp is None else round(lp + self.lp_error, 2)

    def cross_upnl(self) -> float:
        return sum(self.upnl(p) for p in self.positions.values() if p.margin_type == "cross")

    async def _account(self, request: web.Request) -> web.Response:
        cross_mm = sum(self.mm(p) for p in self.positions.values() if p.margin_type == "cross")
        iso = sum(p.isolated_wallet for p in self.positions.values())
        upnl_all = sum(self.upnl(p) for p in self.positions.values())
        cu = self.cross_upnl()
        f = f"{0:.8f}"
        usdt = {
            "asset": "USDT",
            "walletBalance": f"{self.wallet + iso:.8f}",
            "unrealizedProfit": f"{upnl_all:.8f}",
            "marginBalance": f"{self.wallet + iso + upnl_all:.8f}",
            "maintMargin": f"{cross_mm:.8f}",
            "initialMargin": f,
            "positionInitialMargin": f,
            "openOrderInitialMargin": f,
            "crossWalletBalance": f"{self.wallet:.8f}",
            "crossUnPnl": f"{cu:.8f}",
            "availableBalance": f"{self.wallet + cu - cross_mm:.8f}",
            "maxWithdrawAmount": f"{self.wallet:.8f}",
            "marginAvailable": True,
            "updateTime": now_ms(),
        }
        positions = [
            {
                "symbol": p.symbol,
                "initialMargin": "0",
                "maintMargin": f"{self.mm(p):.8f}",
                "unrealizedProfit": f"{self.upnl(p):.8f}",
                "positionInitialMargin": "0",
                "openOrderInitialMargin": "0",
                "leverage": str(p.leverage),
                "isolated": p.margin_type == "isolated",
                "entryPrice": f"{p.entry}",
                "breakEvenPrice": f"{p.entry}",
                "maxNotional": "250000",
                "bidNotional": "0",
                "askNotional": "0",
                "positionSide": "BOTH",
                "positionAmt": f"{p.size}",
                "updateTime": now_ms(),
            }
            for p in self.positions.values()
        ]
        body = {
            "feeTier": 0,
            "feeBurn": True,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            "totalInitialMargin": f,
            "totalMaintMargin": f"{cross_mm:.8f}",
            "totalWalletBalance": usdt["walletBalance"],
            "totalUnrealizedProfit": usdt["unrealizedProfit"],
            "totalMarginBalance": usdt["marginBalance"],
            "totalPositionInitialMargin": f,
            "totalOpenOrderInitialMargin": f,
            "totalCrossWalletBalance": usdt["crossWalletBalance"],
            "totalCrossUnPnl": usdt["crossUnPnl"],
            "availableBalance": usdt["availableBalance"],
            "maxWithdrawAmount": usdt["maxWithdrawAmount"],
            "assets": [usdt],
            "positions": positions,
        }
        return web.json_response(body)

    async def _risk(self, request: web.Request) -> web.Response:
        out = []
        for p in self.positions.values():
            lp = self.liquidation_price(p)
            iso = p.margin_type == "isolated"
            out.append(
                {
                    "entryPrice": f"{p.entry}",
                    "breakEvenPrice": f"{p.entry}",
                    "marginType": p.margin_type,
                    "isAutoAddMargin": "false",
                    "isolatedMargin": f"{p.isolated_wallet + self.upnl(p):.8f}" if iso else "0",
                    "leverage": str(p.leverage),
                    "liquidationPrice": f"{lp:.2f}" if lp is not None else "0",
                    "markPrice": f"{self.marks[p.symbol]:.8f}",
                    "maxNotionalValue": "20000000",
                    "positionAmt": f"{p.size}",
                    "notional": f"{p.size * self.marks[p.symbol]:.8f}",
                    "isolatedWallet": f"{p.isolated_wallet:.8f}" if iso else "0",
                    "symbol": p.symbol,
                    "unRealizedProfit": f"{self.upnl(p):.8f}",
                    "positionSide": "BOTH",
                    "updateTime": now_ms(),
                }
            )
        return web.json_response(out)

    # -- Portfolio Margin ---------------------------------------------------------------------
    def pm_equity(self) -> float:
        return self.wallet + sum(self.upnl(p) for p in self.positions.values())

    def pm_mm(self) -> float:
        return sum(self.mm(p) for p in self.positions.values()) + self.loan_mm

    async def _pm_account(self, request: web.Request) -> web.Response:
        eq, mm = self.pm_equity(), self.pm_mm()
        return web.json_response(
            {
                "uniMMR": f"{eq / mm:.8f}" if mm > 0 else "0",
                "accountEquity": f"{eq:.8f}",
                "actualEquity": f"{eq:.8f}",
                "accountInitialMargin": f"{2 * mm:.8f}",
                "accountMaintMargin": f"{mm:.8f}",
                "accountStatus": "NORMAL",
                "virtualMaxWithdrawAmount": f"{max(eq - 2 * mm, 0):.8f}",
                "totalAvailableBalance": f"{max(eq - 2 * mm, 0):.8f}",
                "totalMarginOpenLoss": "0",
                "updateTime": now_ms(),
            }
        )

    async def _pm_risk(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "entryPrice": f"{p.entry}",
                    "leverage": str(p.leverage),
                    "markPrice": f"{self.marks[p.symbol]:.8f}",
                    "maxNotionalValue": "20000000",
                    "positionAmt": f"{p.size}",
                    "notional": f"{p.size * self.marks[p.symbol]:.8f}",
                    "symbol": p.symbol,
                    "unRealizedProfit": f"{self.upnl(p):.8f}",
                    "liquidationPrice": "0",
                    "positionSide": "BOTH",
                    "updateTime": now_ms(),
                }
                for p in self.positions.values()
            ]
        )

    async def risk_level_change(self) -> None:
        eq, mm = self.pm_equity(), self.pm_mm()
        await self.push(
            {
                "e": "riskLevelChange",
                "E": now_ms(),
                "u": f"{eq / mm:.8f}",
                "s": "MARGIN_CALL",
                "eq": f"{eq:.8f}",
                "ae": f"{eq:.8f}",
                "m": f"{mm:.8f}",
            }
        )

    # -- user-data stream --------------------------------------------------------------------
    async def _listen_key(self, request: web.Request) -> web.Response:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return web.json_response(
                {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                status=401,
            )
        if request.method == "POST":
            key = secrets.token_hex(32)
            self.listen_keys.add(key)
            return web.json_response({"listenKey": key})
        if request.method == "PUT":
            if not self.listen_keys:
                return web.json_response(
                    {"code": -1125, "msg": "This listenKey does not exist."}, status=400
                )
            return web.json_response({"listenKey": next(iter(self.listen_keys))})
        if request.method == "DELETE":
            self.listen_keys.clear()
            return web.json_response({})
        return web.json_response({"code": -1, "msg": "bad method"}, status=405)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["key"] not in self.listen_keys:
            raise web.HTTPNotFound()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await self.hold(ws)
        return ws

    async def expire_listen_key(self) -> None:
        for key in list(self.listen_keys):
            await self.push({"e": "listenKeyExpired", "E": str(now_ms()), "listenKey": key})
        self.listen_keys.clear()

    # -- the trader acts -----------------------------------------------------------------------
    async def account_update(self, reason: str, symbols: list[str]) -> None:
        """Push ``ACCOUNT_UPDATE`` for ``symbols`` (documented layout, ws_ACCOUNT_UPDATE)."""
        iso = sum(p.isolated_wallet for p in self.positions.values())
        rows = []
        for s in symbols:
            p = self.positions.get(s)
            if p is None:
                rows.append(
                    {
                        "s": s,
                        "pa": "0",
                        "ep": "0.00000",
                        "bep": "0",
                        "cr": "0",
                        "up": "0",
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                    }
                )
            else:
                rows.append(
                    {
                        "s": s,
                        "pa": f"{p.size}",
                        "ep": f"{p.entry}",
                        "bep": f"{p.entry}",
                        "cr": "0",
                        "up": f"{self.upnl(p):.8f}",
                        "mt": p.margin_type,
                        "iw": f"{p.isolated_wallet:.8f}",
                        "ps": "BOTH",
                    }
                )
        t = now_ms()
        await self.push(
            {
                "e": "ACCOUNT_UPDATE",
                **({"fs": "UM"} if self.pm else {}),
                "E": t,
                "T": t,
                "a": {
                    "m": reason,
                    "B": [
                        {
                            "a": "USDT",
                            "wb": f"{self.wallet + iso:.8f}",
                            "cw": f"{self.wallet:.8f}",
                            "bc": "0",
                        }
                    ],
                    "P": rows,
                },
            }
        )

    async def open(
        self,
        symbol: str,
        size: float,
        entry: float,
        *,
        isolated_wallet: float | None = None,
        leverage: int = 10,
    ) -> None:
        mt = "isolated" if isolated_wallet is not None else "cross"
        p = Pos(symbol, size, entry, mt, isolated_wallet or 0.0, leverage)
        if isolated_wallet is not None:
            self.wallet -= isolated_wallet
        self.positions[symbol] = p
        await self.account_update("ORDER", [symbol])

    async def resize(self, symbol: str, new_size: float, price: float) -> None:
        p = self.positions[symbol]
        if abs(new_size) > abs(p.size):  # add: new average entry
            p.entry = (p.size * p.entry + (new_size - p.size) * price) / new_size
        else:  # reduce: realise the PnL of the closed part
            realised = (p.size - new_size) * (price - p.entry)
            if p.margin_type == "isolated":
                p.isolated_wallet += realised
            else:
                self.wallet += realised
        p.size = new_size
        await self.account_update("ORDER", [symbol])

    async def move_margin(self, symbol: str, amount: float) -> None:
        p = self.positions[symbol]
        p.isolated_wallet += amount
        self.wallet -= amount
        await self.account_update("MARGIN_TRANSFER", [symbol])

    async def close(self, symbol: str, price: float) -> None:
        p = self.positions.pop(symbol)
        realised = p.size * (price - p.entry)
        self.wallet += realised + (p.isolated_wallet if p.margin_type == "isolated" else 0.0)
        await self.account_update("ORDER", [symbol])
