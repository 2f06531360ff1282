"""A loopback OKX venue: signed REST (verified), the private stream with its signed ``login``,
``positions``/``account`` pushes and text ping/pong (shapes in tests/fixtures/cex/okx/).

Signed requests must carry ``OK-ACCESS-SIGN`` = base64 HMAC-SHA256(secret, timestamp + method +
request path with query + body), the passphrase, and an ISO timestamp within 30 s of the
venue's (possibly skewed) clock, else the venue answers 50113 / 50105 / 50102 as OKX does; an
unknown key gets 50111 (HTTP 401). The account is in single-currency margin mode (acctLv 2),
USDT swaps, one-way (``net``) positions. The venue's own ``liqPx`` (rounded to 0.01): isolated
``(E ∓ M/q)/(1 ∓ (mmr + fee))``, cross (★) with the USDT cross equity and maintenance,
both with the taker fee to close counted in maintenance (margin-math.md §5).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.venues.cex.common import Loopback, now_ms

CT = {"BTC-USDT-SWAP": 0.01, "ETH-USDT-SWAP": 0.1}
# (max contracts, mmr) per family: OKX tiers are by position size
TIERS = {"BTC-USDT": [(30_000, 0.004), (50_000, 0.005)], "ETH-USDT": [(20_000, 0.005)]}
TAKER = 0.0005


def b64(secret: str, payload: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    ).decode()


@dataclass
class Pos:
    inst: str
    contracts: float
    entry: float
    isolated: bool = False
    margin: float = 0.0
    lever: float = 10.0

    @property
    def family(self) -> str:
        return self.inst.rsplit("-", 1)[0]

    @property
    def qty(self) -> float:
        return self.contracts * CT[self.inst]


class OkxMock(Loopback):
    def __init__(self, api_key: str, secret: str, passphrase: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret = secret
        self.passphrase = passphrase
        self.skew_ms = 0
        self.perm = "read_only"
        self.cash = 10_000.0  # USDT cash outside isolated margins
        self.positions: dict[str, Pos] = {}
        self.marks = {"BTC-USDT-SWAP": 60_000.0, "ETH-USDT-SWAP": 3_000.0}
        self.bad_signatures = 0
        self.stale_timestamps = 0
        self.login_ok = True
        r = self.app.router
        r.add_get("/api/v5/public/time", self._time)
        r.add_get("/api/v5/public/instruments", self._instruments)
        r.add_get("/api/v5/public/position-tiers", self._tiers)
        r.add_get("/api/v5/account/config", self._signed(self._config))
        r.add_get("/api/v5/account/balance", self._signed(self._balance))
        r.add_get("/api/v5/account/positions", self._signed(self._positions))
        r.add_get("/api/v5/account/trade-fee", self._signed(self._fee))
        r.add_get("/ws/v5/private", self._ws)

    def server_ms(self) -> int:
        return now_ms() + self.skew_ms

    def _answer(self, data: list[Any], code: str = "0", msg: str = "", status: int = 200) -> Any:
        return web.json_response({"code": code, "msg": msg, "data": data}, status=status)

    def _fresh(self, ts_ms: float) -> bool:
        return abs(self.server_ms() - ts_ms) <= 30_000

    def _signed(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            h = request.headers
            if h.get("OK-ACCESS-KEY") != self.api_key:
                return self._answer([], "50111", "Invalid OK-ACCESS-KEY", 401)
            if h.get("OK-ACCESS-PASSPHRASE") != self.passphrase:
                return self._answer([], "50105", "Invalid OK-ACCESS-PASSPHRASE", 401)
            ts = h.get("OK-ACCESS-TIMESTAMP", "")
            good = b64(self.secret, ts + request.method + request.raw_path + "")
            if not hmac.compare_digest(h.get("OK-ACCESS-SIGN", ""), good):
                self.bad_signatures += 1
                return self._answer([], "50113", "Invalid Sign", 401)
            t = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
            if not self._fresh(t.timestamp() * 1000):
                self.stale_timestamps += 1
                return self._answer([], "50102", "Timestamp request expired", 401)
            return await handler(request)

        return wrapped

    async def _time(self, request: web.Request) -> web.Response:
        return self._answer([{"ts": str(self.server_ms())}])

    async def _instruments(self, request: web.Request) -> web.Response:
        inst = request.query["instId"]
        fam = inst.rsplit("-", 1)[0]
        return self._answer(
            [
                {
                    "alias": "",
                    "baseCcy": "",
                    "category": "1",
                    "ctMult": "1",
                    "ctType": "linear",
                    "ctVal": f"{CT[inst]}",
                    "ctValCcy": inst.split("-")[0],
                    "expTime": "",
                    "instFamily": fam,
                    "instId": inst,
                    "instType": "SWAP",
                    "lever": "100",
                    "listTime": "1606468572000",
                    "lotSz": "0.1",
                    "maxIcebergSz": "1",
                    "maxLmtAmt": "20000000",
                    "maxLmtSz": "100000000",
                    "maxMktAmt": "",
                    "maxMktSz": "12000",
                    "maxStopSz": "12000",
                    "maxTriggerSz": "1",
                    "maxTwapSz": "1",
                    "minSz": "0.1",
                    "optType": "",
                    "quoteCcy": "",
                    "settleCcy": "USDT",
                    "state": "live",
                    "stk": "",
                    "tickSz": "0.1",
                    "uly": fam,
                }
            ]
        )

    async def _tiers(self, request: web.Request) -> web.Response:
        fam = request.query["instFamily"]
        rows, lo = [], 0
        for i, (mx, mmr) in enumerate(TIERS[fam]):
            rows.append(
                {
                    "baseMaxLoan": "",
                    "imr": f"{2 * mmr}",
                    "instId": "",
                    "instFamily": fam,
                    "maxLever": f"{int(0.5 / mmr)}",
                    "maxSz": f"{mx}",
                    "minSz": f"{lo}",
                    "mmr": f"{mmr}",
                    "optMgnFactor": "0",
                    "quoteMaxLoan": "",
                    "tier": f"{i + 1}",
                    "uly": fam,
                }
            )
            lo = mx + 1
        return self._answer(rows)

    async def _fee(self, request: web.Request) -> web.Response:
        return self._answer(
            [
                {
                    "category": "1",
                    "delivery": "",
                    "exercise": "",
                    "instType": "SWAP",
                    "level": "Lv1",
                    "maker": "-0.0002",
                    "makerU": "-0.0002",
                    "makerUSDC": "",
                    "taker": f"{-TAKER}",
                    "takerU": f"{-TAKER}",
                    "takerUSDC": "",
                    "ruleType": "normal",
                    "ts": str(now_ms()),
                    "fiat": [],
                }
            ]
        )

    async def _config(self, request: web.Request) -> web.Response:
        return self._answer(
            [
                {
                    "acctLv": "2",
                    "acctStpMode": "cancel_maker",
                    "autoLoan": False,
                    "ctIsoMode": "automatic",
                    "enableSpotBorrow": False,
                    "greeksType": "PA",
                    "ip": "",
                    "type": "0",
                    "kycLv": "3",
                    "label": "monitor",
                    "level": "Lv1",
                    "levelTmp": "",
                    "liquidationGear": "-1",
                    "mainUid": "1",
                    "mgnIsoMode": "automatic",
                    "opAuth": "1",
                    "perm": self.perm,
                    "posMode": "net_mode",
                    "roleType": "0",
                    "spotBorrowAutoRepay": False,
                    "spotOffsetType": "",
                    "spotRoleType": "0",
                    "spotTraderInsts": [],
                    "traderInsts": [],
                    "uid": "1",
                }
            ]
        )

    # -- venue arithmetic -------------------------------------------------------------------------
    def rate(self, p: Pos) -> float:
        for mx, mmr in TIERS[p.family]:
            if abs(p.contracts) <= mx:
                return mmr
        return TIERS[p.family][-1][1]

    def upl(self, p: Pos) -> float:
        return p.qty * (self.marks[p.inst] - p.entry)

    def mm(self, p: Pos) -> float:  # fee to close counted, as OKX does
        return abs(p.qty) * self.marks[p.inst] * (self.rate(p) + TAKER)

    def cross(self) -> list[Pos]:
        return [p for p in self.positions.values() if not p.isolated]

    def liq_px(self, p: Pos) -> float | None:
        q = abs(p.qty)
        m = self.rate(p) + TAKER
        if p.isolated:
            lp = (
                (p.entry - p.margin / q) / (1 - m)
                if p.qty > 0
                else (p.entry + p.margin / q) / (1 + m)
            )
        else:
            side = 1 if p.qty > 0 else -1
            eq = self.cash + sum(self.upl(o) for o in self.cross())
            mm = sum(self.mm(o) for o in self.cross())
            mark = self.marks[p.inst]
            lp = mark - side * (eq - mm) / (q * (1 - side * m))
        return round(lp, 2) if lp > 0 else None

    def row(self, p: Pos) -> dict[str, Any]:
        lp = self.liq_px(p)
        t = str(now_ms())
        return {
            "adl": "1",
            "availPos": f"{abs(p.contracts)}",
            "avgPx": f"{p.entry}",
            "cTime": t,
            "ccy": "USDT",
            "deltaBS": "",
            "deltaPA": "",
            "gammaBS": "",
            "gammaPA": "",
            "imr": "",
            "instId": p.inst,
            "instType": "SWAP",
            "interest": "0",
            "idxPx": f"{self.marks[p.inst]}",
            "usdPx": "",
            "bePx": f"{p.entry}",
            "last": f"{self.marks[p.inst]}",
            "lever": f"{p.lever:g}",
            "liab": "",
            "liabCcy": "",
            "liqPx": f"{lp}" if lp is not None else "",
            "markPx": f"{self.marks[p.inst]}",
            "margin": f"{p.margin:.8f}" if p.isolated else "",
            "mgnMode": "isolated" if p.isolated else "cross",
            "mgnRatio": "",
            "mmr": f"{self.mm(p):.8f}",
            "notionalUsd": f"{abs(p.qty) * self.marks[p.inst]:.4f}",
            "optVal": "",
            "pTime": t,
            "pendingCloseOrdLiabVal": "0",
            "pos": f"{p.contracts:g}",
            "baseBorrowed": "",
            "baseInterest": "",
            "quoteBorrowed": "",
            "quoteInterest": "",
            "posCcy": "",
            "posId": "1",
            "posSide": "net",
            "spotInUseAmt": "",
            "clSpotInUseAmt": "",
            "maxSpotInUseAmt": "",
            "bizRefId": "",
            "bizRefType": "",
            "spotInUseCcy": "",
            "thetaBS": "",
            "thetaPA": "",
            "tradeId": "1",
            "uTime": t,
            "upl": f"{self.upl(p):.8f}",
            "uplLastPx": f"{self.upl(p):.8f}",
            "uplRatio": "0",
            "uplRatioLastPx": "0",
            "vegaBS": "",
            "vegaPA": "",
            "realizedPnl": "0",
            "pnl": "0",
            "fee": "0",
            "fundingFee": "0",
            "liqPenalty": "0",
            "closeOrderAlgo": [],
            "nonSettleAvgPx": "",
            "settledPnl": "",
        }

    def balance(self) -> dict[str, Any]:
        iso = [p for p in self.positions.values() if p.isolated]
        iso_margin = sum(p.margin for p in iso)
        iso_upl = sum(self.upl(p) for p in iso)
        upl = sum(self.upl(p) for p in self.positions.values())
        eq = self.cash + iso_margin + upl
        cross_mm = sum(self.mm(p) for p in self.cross())
        t = str(now_ms())
        usdt = {
            "availBal": f"{self.cash:.8f}",
            "availEq": f"{eq - iso_margin - iso_upl - cross_mm:.8f}",
            "borrowFroz": "0",
            "cashBal": f"{self.cash + iso_margin:.8f}",
            "coinUsdPrice": "1",
            "ccy": "USDT",
            "crossLiab": "0",
            "disEq": f"{eq:.8f}",
            "eq": f"{eq:.8f}",
            "eqUsd": f"{eq:.8f}",
            "smtSyncEq": "0",
            "spotCopyTradingEq": "0",
            "fixedBal": "0",
            "frozenBal": "0",
            "imr": "",
            "interest": "0",
            "isoEq": f"{iso_margin + iso_upl:.8f}",
            "isoLiab": "0",
            "isoUpl": f"{iso_upl:.8f}",
            "liab": "0",
            "maxLoan": "0",
            "mgnRatio": "",
            "mmr": f"{cross_mm:.8f}",
            "notionalLever": "",
            "ordFrozen": "0",
            "rewardBal": "0",
            "spotInUseAmt": "",
            "clSpotInUseAmt": "",
            "maxSpotInUseAmt": "",
            "spotIsoBal": "0",
            "stgyEq": "0",
            "twap": "0",
            "uTime": t,
            "upl": f"{upl:.8f}",
            "uplLiab": "0",
            "spotBal": "",
            "openAvgPx": "",
            "accAvgPx": "",
            "spotUpl": "",
            "spotUplRatio": "",
            "totalPnl": "",
            "totalPnlRatio": "",
        }
        return {
            "adjEq": "",
            "borrowFroz": "0",
            "details": [usdt],
            "imr": "",
            "isoEq": usdt["isoEq"],
            "mgnRatio": "",
            "mmr": "",
            "notionalUsd": "",
            "notionalUsdForBorrow": "0",
            "notionalUsdForFutures": "0",
            "notionalUsdForOption": "0",
            "notionalUsdForSwap": "0",
            "ordFroz": "",
            "totalEq": f"{eq:.8f}",
            "uTime": t,
            "upl": f"{upl:.8f}",
        }

    async def _balance(self, request: web.Request) -> web.Response:
        return self._answer([self.balance()])

    async def _positions(self, request: web.Request) -> web.Response:
        return self._answer([self.row(p) for p in self.positions.values()])

    # -- private stream ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        state = {"login": False}

        async def on_text(text: str) -> None:
            if text == "ping":
                await ws.send_str("pong")
                return
            msg = json.loads(text)
            if msg.get("op") == "login":
                a = msg["args"][0]
                good = b64(self.secret, a["timestamp"] + "GET" + "/users/self/verify")
                ok = (
                    self.login_ok
                    and a["apiKey"] == self.api_key
                    and a["passphrase"] == self.passphrase
                    and hmac.compare_digest(a["sign"], good)
                    and self._fresh(int(a["timestamp"]) * 1000)
                )
                state["login"] = ok
                if ok:
                    await ws.send_json(
                        {"event": "login", "code": "0", "msg": "", "connId": "a4d3ae55"}
                    )
                else:
                    await ws.send_json(
                        {
                            "event": "error",
                            "code": "60009",
                            "msg": "Login failed.",
                            "connId": "a4d3ae55",
                        }
                    )
            elif msg.get("op") == "subscribe":
                for arg in msg["args"]:
                    if not state["login"]:
                        await ws.send_json(
                            {
                                "event": "error",
                                "code": "60011",
                                "msg": "Please log in",
                                "connId": "a4d3ae55",
                            }
                        )
                        return
                    await ws.send_json({"event": "subscribe", "arg": arg, "connId": "a4d3ae55"})
                await self._send_positions(ws, list(self.positions), "snapshot")
                await self._send_account(ws)

        await self.hold(ws, on_text)
        return ws

    def positions_push(self, insts: list[str], kind: str) -> dict[str, Any]:
        rows = []
        for i in insts:
            p = self.positions.get(i)
            if p is not None:
                rows.append(self.row(p))
            else:
                rows.append(
                    {
                        "instId": i,
                        "instType": "SWAP",
                        "pos": "0",
                        "posSide": "net",
                        "mgnMode": "cross",
                        "avgPx": "",
                        "uTime": str(now_ms()),
                    }
                )
        return {
            "arg": {"channel": "positions", "uid": "1", "instType": "SWAP"},
            "eventType": kind,
            "data": rows,
        }

    def account_push(self) -> dict[str, Any]:
        return {
            "arg": {"channel": "account", "uid": "1"},
            "eventType": "snapshot",
            "curPage": 1,
            "lastPage": True,
            "data": [self.balance()],
        }

    async def _send_positions(self, ws: web.WebSocketResponse, insts: list[str], kind: str) -> None:
        await ws.send_json(self.positions_push(insts, kind))

    async def _send_account(self, ws: web.WebSocketResponse) -> None:
        await ws.send_json(self.account_push())

    async def changed(self, inst: str) -> None:
        await self.push(self.positions_push([inst], "event_update"))
        await self.push(self.account_push())

    # -- the trader acts --------------------------------------------------------------------------
    async def open(
        self, inst: str, contracts: float, entry: float, *, isolated_margin: float | None = None
    ) -> None:
        iso = isolated_margin is not None
        self.positions[inst] = Pos(inst, contracts, entry, iso, isolated_margin or 0.0)
        self.cash -= isolated_margin or 0.0
        await self.changed(inst)

    async def resize(self, inst: str, contracts: float, price: float) -> None:
        p = self.positions[inst]
        if abs(contracts) > abs(p.contracts):
            p.entry = (p.contracts * p.entry + (contracts - p.contracts) * price) / contracts
        else:
            self.cash += (p.contracts - contracts) * CT[inst] * (price - p.entry)
        p.contracts = contracts
        await self.changed(inst)

    async def move_margin(self, inst: str, amount: float) -> None:
        self.positions[inst].margin += amount
        self.cash -= amount
        await self.changed(inst)

    async def close(self, inst: str, price: float) -> None:
        p = self.positions.pop(inst)
        self.cash += p.qty * (price - p.entry) + (p.margin if p.isolated else 0.0)
        await self.changed(inst)
