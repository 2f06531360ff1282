"""Binance USDⓈ-M account documents read with a key → events (pure: no I/O, no clock).

Sources (developers.binance.com → derivatives/usds-margined-futures; shapes kept under
``tests/fixtures/cex/binanceusdm/``):

* ``GET /fapi/v2/account`` (Account Information V2): ``assets[]`` with ``asset``,
  ``crossWalletBalance`` (cross wallet, **excluding** uPnL), ``crossUnPnl``,
  ``availableBalance``; ``positions[]`` with ``maintMargin`` and ``isolated``;
  ``multiAssetsMargin``, ``totalCrossWalletBalance`` (USD value, Multi-Assets mode).
* ``GET /fapi/v2/positionRisk`` (Position Information V2): per symbol and side ``positionAmt``
  (signed), ``entryPrice``, ``markPrice``, ``liquidationPrice`` ("0": none), ``leverage``,
  ``marginType`` (``cross``/``isolated``), ``isolatedWallet`` (isolated margin excluding uPnL),
  ``isolatedMargin`` (including it), ``positionSide`` (``BOTH`` in one-way mode).
* ``GET /fapi/v1/leverageBracket`` (Notional and Leverage Brackets, signed):
  ``[{symbol, brackets:[{notionalFloor, notionalCap, maintMarginRatio, cum}]}]``:
  maintenance = ``N·maintMarginRatio − cum`` of the bracket of notional ``N``
  (margin-math.md §3), the account's own brackets, so maintenance is exact.
* user-data stream ``ACCOUNT_UPDATE``: ``a.B[]`` balances (``a`` asset, ``wb`` wallet,
  ``cw`` cross wallet), ``a.P[]`` positions (``s``, ``pa`` signed amount, ``ep`` entry,
  ``up`` uPnL, ``mt`` margin type, ``iw`` isolated wallet, ``ps`` side). It carries no mark and
  no liquidation price: the mark is derived as ``ep + up/pa`` when ``pa ≠ 0`` and the venue's
  liquidation price comes with the next REST snapshot. ``ACCOUNT_CONFIG_UPDATE`` ``ac.l`` is a
  new leverage; ``listenKeyExpired`` ends the stream.

Portfolio Margin (``/papi/v1/account``: ``uniMMR``, ``accountEquity``, ``accountMaintMargin``;
``/papi/v1/um/positionRisk``): see :meth:`BinanceAccountState.pm_snapshot`, the venue's
collateral and figures are carried.

One-way mode and USDT-margined symbols (``…USDT``) in single-asset mode; in Multi-Assets mode
the cross pool is ``totalCrossWalletBalance`` (USD) and every symbol shares it. Hedge-mode
positions (``LONG``/``SHORT``) and, in single-asset mode, positions margined in another asset
are refused with a clear message rather than shown wrong (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from monitor.model.events import AccountSnapshot, BalanceUpdate, Event, PositionUpdate
from monitor.model.instruments import MaintenanceSchedule, MarginMode, Tier
from monitor.model.positions import Position
from monitor.model.venues import BINANCE_USDM
from monitor.venues.parsing import Bad, loads, lst, obj, text
from monitor.venues.parsing import bounded_num as num
from monitor.venues.parsing import opt_bounded_num as opt_num

VENUE = BINANCE_USDM
QUOTE = "USDT"


def brackets_from_body(body: Any) -> dict[str, MaintenanceSchedule]:
    """``/fapi/v1/leverageBracket`` body → maintenance schedule per symbol.

    Raises :class:`Bad` naming the field when a bracket is malformed."""
    out: dict[str, MaintenanceSchedule] = {}
    items = [body] if isinstance(body, dict) else lst(body, "leverageBracket")
    for i, item in enumerate(items):
        o = obj(item, f"[{i}]")
        symbol = text(o.get("symbol"), f"[{i}].symbol")
        tiers: list[Tier] = []
        raw = sorted(
            (obj(b, f"{symbol}.brackets[]") for b in lst(o.get("brackets"), f"{symbol}.brackets")),
            key=lambda b: num(b.get("notionalFloor"), f"{symbol}.notionalFloor"),
        )
        for j, b in enumerate(raw):
            where = f"{symbol}.brackets[{j}]"
            floor = 0.0 if j == 0 else num(b.get("notionalFloor"), f"{where}.notionalFloor")
            tiers.append(
                Tier(
                    floor,
                    num(b.get("maintMarginRatio"), f"{where}.maintMarginRatio"),
                    num(b.get("cum", 0), f"{where}.cum"),
                )
            )
        if not tiers:
            raise Bad(f"{symbol}: no brackets")
        try:
            out[symbol] = MaintenanceSchedule(tuple(tiers), kind="tiers")
        except ValueError as exc:
            raise Bad(f"{symbol}: {exc}") from None
    return out


def _price_or_none(value: Any, what: str) -> float | None:
    v = opt_num(value, what)
    return v if v is not None and v > 0.0 else None


@dataclass
class BinanceAccountState:
    """What the stream needs between REST snapshots: the account's brackets, leverages,
    marks and whether it is in Multi-Assets mode. Updated by :meth:`snapshot`."""

    account: str
    brackets: dict[str, MaintenanceSchedule] = field(default_factory=dict)
    leverage: dict[str, float] = field(default_factory=dict)
    multi_assets: bool = False
    positions: dict[str, Position] = field(default_factory=dict)
    #: a Portfolio Margin account: stream balances are not the cross pool's collateral
    pm: bool = False
    #: a stream event asked for a REST re-snapshot (PM ``riskLevelChange``)
    refresh: bool = False

    def _check_symbol(self, symbol: str) -> None:
        if not self.multi_assets and not symbol.endswith(QUOTE):
            raise Bad(
                f"position in {symbol}: only {QUOTE}-margined symbols are followed in "
                "single-asset mode"
            )

    # -- REST --------------------------------------------------------------------------------
    def snapshot(self, account_body: Any, risk_body: Any, ts_recv: float) -> AccountSnapshot:
        """``/fapi/v2/account`` + ``/fapi/v2/positionRisk`` bodies → the account snapshot.
        Raises :class:`Bad` naming the field."""
        acct = obj(account_body, "account")
        self.multi_assets = bool(acct.get("multiAssetsMargin", False))
        assets = {
            text(obj(a, "assets[]").get("asset"), "assets[].asset"): obj(a, "assets[]")
            for a in lst(acct.get("assets", []), "assets")
        }
        if self.multi_assets:
            collateral = num(acct.get("totalCrossWalletBalance"), "totalCrossWalletBalance")
            upnl = opt_num(acct.get("totalCrossUnPnl"), "totalCrossUnPnl")
            free = opt_num(acct.get("availableBalance"), "availableBalance")
        else:
            usdt = assets.get(QUOTE, {})
            collateral = num(
                usdt.get("crossWalletBalance", 0), f"assets.{QUOTE}.crossWalletBalance"
            )
            upnl = opt_num(usdt.get("crossUnPnl"), f"assets.{QUOTE}.crossUnPnl")
            free = opt_num(usdt.get("availableBalance"), f"assets.{QUOTE}.availableBalance")
        venue_mm = 0.0
        for p in lst(acct.get("positions", []), "positions"):
            po = obj(p, "positions[]")
            if po.get("isolated") in (True, "true"):
                continue
            venue_mm += num(po.get("maintMargin", 0), "positions[].maintMargin")

        positions = self._positions(risk_body)
        return AccountSnapshot(
            venue=VENUE,
            account=self.account,
            cross_collateral=collateral,
            positions=tuple(positions),
            ts_recv=ts_recv,
            venue_equity=collateral + upnl if upnl is not None else None,
            venue_free_collateral=free,
            venue_maintenance=venue_mm,
        )

    def pm_snapshot(self, account_body: Any, risk_body: Any, ts_recv: float) -> AccountSnapshot:
        """Portfolio Margin: ``/papi/v1/account`` + ``/papi/v1/um/positionRisk`` → snapshot.

        Binance values PM collateral with per-asset collateral rates and counts margin loans
        and every product in ``accountMaintMargin``; its documents give the ratio
        (``uniMMR = accountEquity / accountMaintMargin``) but not the collateral rates, so the
        cross pool is the venue's: collateral = ``accountEquity − Σ UM uPnL``, with
        ``accountEquity`` and ``accountMaintMargin`` carried as the venue's figures. UM
        positions are cross. Raises :class:`Bad` naming the field."""
        acct = obj(account_body, "account")
        self.pm = True
        self.multi_assets = True  # every asset is collateral
        equity = num(acct.get("accountEquity"), "accountEquity")
        positions = self._positions(risk_body)
        upnl = 0.0
        for i, item in enumerate(lst(risk_body, "positionRisk")):
            o = obj(item, f"positionRisk[{i}]")
            upnl += num(o.get("unRealizedProfit") or 0, f"positionRisk[{i}].unRealizedProfit")
        return AccountSnapshot(
            venue=VENUE,
            account=self.account,
            cross_collateral=equity - upnl,
            positions=tuple(positions),
            ts_recv=ts_recv,
            venue_equity=equity,
            venue_free_collateral=opt_num(
                acct.get("totalAvailableBalance") or None, "totalAvailableBalance"
            ),
            venue_maintenance=num(acct.get("accountMaintMargin"), "accountMaintMargin"),
        )

    def _positions(self, risk_body: Any) -> list[Position]:
        positions: list[Position] = []
        for i, item in enumerate(lst(risk_body, "positionRisk")):
            o = obj(item, f"positionRisk[{i}]")
            size = num(o.get("positionAmt"), f"positionRisk[{i}].positionAmt")
            if size == 0.0:
                continue
            symbol = text(o.get("symbol"), f"positionRisk[{i}].symbol")
            side = o.get("positionSide", "BOTH")
            if side != "BOTH":
                raise Bad(f"{symbol}: hedge-mode position ({side}); only one-way mode is followed")
            self._check_symbol(symbol)
            where = f"positionRisk.{symbol}"
            mode_raw = o.get("marginType", "cross")
            if mode_raw not in ("cross", "isolated"):
                raise Bad(f"{where}.marginType: expected cross or isolated, got {mode_raw!r}")
            mode = MarginMode.ISOLATED if mode_raw == "isolated" else MarginMode.CROSS
            lev = opt_num(o.get("leverage"), f"{where}.leverage")
            if lev is not None and lev > 0:
                self.leverage[symbol] = lev
            iso = num(o.get("isolatedWallet", 0), f"{where}.isolatedWallet")
            positions.append(
                Position(
                    symbol=symbol,
                    size=size,
                    entry_price=num(o.get("entryPrice"), f"{where}.entryPrice"),
                    margin_mode=mode,
                    isolated_margin=iso if mode is MarginMode.ISOLATED else None,
                    leverage=self.leverage.get(symbol),
                    maintenance=self.brackets.get(symbol),
                    mark_price=_price_or_none(o.get("markPrice"), f"{where}.markPrice"),
                    venue_liquidation_price=_price_or_none(
                        o.get("liquidationPrice"), f"{where}.liquidationPrice"
                    ),
                    venue_margin_used=opt_num(o.get("isolatedMargin"), f"{where}.isolatedMargin")
                    if mode is MarginMode.ISOLATED
                    else None,
                )
            )
        self.positions = {p.symbol: p for p in positions}
        return positions

    # -- stream ------------------------------------------------------------------------------
    def on_event(self, frame: str | bytes, ts_recv: float) -> tuple[list[Event], str | None]:
        """One user-data-stream frame → (events, reason to reconnect or None).

        Raises :class:`Bad` for a frame of the wrong shape."""
        msg = obj(loads(frame), "frame")
        kind = msg.get("e")
        ts = opt_num(msg.get("E"), "E")
        ts_event = ts / 1000.0 if ts is not None else None
        if kind == "ACCOUNT_UPDATE":
            return self._account_update(obj(msg.get("a"), "a"), ts_event, ts_recv), None
        if kind == "ACCOUNT_CONFIG_UPDATE":
            ac = msg.get("ac")
            if isinstance(ac, dict):
                symbol = text(ac.get("s"), "ac.s")
                self.leverage[symbol] = num(ac.get("l"), "ac.l")
                old = self.positions.get(symbol)
                if old is not None:
                    new = replace(old, leverage=self.leverage[symbol])
                    self.positions[symbol] = new
                    return [
                        PositionUpdate(VENUE, self.account, new, ts_event=ts_event, ts_recv=ts_recv)
                    ], None
            return [], None
        if kind == "listenKeyExpired":
            return [], "listen key expired"
        if kind == "riskLevelChange":  # PM: uniMMR crossed a level; read the account again
            self.refresh = True
            return [], None
        if kind in (
            "ORDER_TRADE_UPDATE",
            "openOrderLoss",
            "liabilityChange",
            "outboundAccountPosition",
            "balanceUpdate",
            "executionReport",
            "MARGIN_CALL",
            "TRADE_LITE",
            "STRATEGY_UPDATE",
            "GRID_UPDATE",
            "CONDITIONAL_ORDER_TRIGGER_REJECT",
        ):
            return [], None
        raise Bad(f"unknown user-data event {str(kind)[:40]!r}")

    def _account_update(
        self, a: Mapping[str, Any], ts_event: float | None, ts_recv: float
    ) -> list[Event]:
        cash: float | None = None
        for b in lst(a.get("B", []), "a.B"):
            bo = obj(b, "a.B[]")
            if not self.multi_assets and not self.pm and bo.get("a") == QUOTE:
                cash = num(bo.get("cw"), "a.B[].cw")
        out: list[Event] = []
        for p in lst(a.get("P", []), "a.P"):
            po = obj(p, "a.P[]")
            symbol = text(po.get("s"), "a.P[].s")
            if po.get("ps", "BOTH") != "BOTH":
                raise Bad(f"{symbol}: hedge-mode position update; only one-way mode is followed")
            size = num(po.get("pa"), f"{symbol}.pa")
            if size != 0.0:
                self._check_symbol(symbol)
            entry = num(po.get("ep"), f"{symbol}.ep")
            upnl = num(po.get("up", 0), f"{symbol}.up")
            mode = MarginMode.ISOLATED if po.get("mt") == "isolated" else MarginMode.CROSS
            iso = num(po.get("iw", 0), f"{symbol}.iw")
            mark = entry + upnl / size if size != 0.0 and entry > 0.0 else None
            if size == 0.0:
                pos = Position(symbol=symbol, size=0.0, entry_price=entry or 1.0)
                self.positions.pop(symbol, None)
            else:
                pos = Position(
                    symbol=symbol,
                    size=size,
                    entry_price=entry,
                    margin_mode=mode,
                    isolated_margin=iso if mode is MarginMode.ISOLATED else None,
                    leverage=self.leverage.get(symbol),
                    maintenance=self.brackets.get(symbol),
                    mark_price=mark if mark is not None and mark > 0.0 else None,
                )
                self.positions[symbol] = pos
            out.append(
                PositionUpdate(
                    VENUE,
                    self.account,
                    pos,
                    cross_collateral=cash,
                    ts_event=ts_event,
                    ts_recv=ts_recv,
                )
            )
            cash = None  # given once, with the first position
        if cash is not None:
            out.append(
                BalanceUpdate(
                    VENUE, self.account, cross_collateral=cash, ts_event=ts_event, ts_recv=ts_recv
                )
            )
        return out
