"""Bybit v5 account documents read with a key → events (pure: no I/O, no clock).

Sources (bybit-exchange.github.io/docs/v5; shapes under ``tests/fixtures/cex/bybit/``):

* ``GET /v5/position/list?category=linear&settleCoin=USDT`` and the private ``position``
  stream (same fields; the stream says ``entryPrice`` where REST says ``avgPrice``): ``size``
  (unsigned) with ``side`` ``Buy``/``Sell``, ``tradeMode`` (0 cross, 1 isolated),
  ``positionBalance`` (isolated: the position's margin, excluding uPnL), ``leverage``,
  ``markPrice``, ``liqPrice`` (venue's, "" when none), ``positionMM``.
* ``GET /v5/account/wallet-balance?accountType=UNIFIED`` and the ``wallet`` stream (same
  fields): ``totalMarginBalance`` (the account's margin balance in USD: collateral after the
  venue's haircuts, plus uPnL), ``totalPerpUPL``, ``totalMaintenanceMargin``,
  ``totalAvailableBalance``, ``accountMMRate`` (= totalMaintenanceMargin / totalMarginBalance).
* ``GET /v5/market/risk-limit?category=linear&symbol=S``: tiers ``riskLimitValue`` (the tier's
  notional cap), ``maintenanceMargin`` (rate), ``mmDeduction``: maintenance is
  ``N·rate − deduction`` of the tier whose cap is the first ≥ N.

Unified Trading Account (cross): Bybit values collateral with per-coin haircuts and counts
every product in ``totalMaintenanceMargin``; the documents give no closed formula we could
recompute from the position list, so the cross pool's collateral is the venue's figure
``totalMarginBalance − totalPerpUPL`` and the venue's equity and maintenance (hence its
``accountMMRate``) are carried as ``venue_equity``/``venue_maintenance``, shown beside ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode, Tier
from monitor.model.positions import Position
from monitor.model.venues import BYBIT
from monitor.venues.parsing import Bad, lst, obj, text
from monitor.venues.parsing import bounded_num as num
from monitor.venues.parsing import opt_bounded_num as opt_num

VENUE = BYBIT


def result_of(body: Any, what: str) -> dict[str, Any]:
    """The ``result`` of a v5 answer whose ``retCode`` is 0 (else :class:`Bad`)."""
    o = obj(body, what)
    if o.get("retCode") != 0:
        raise Bad(f"{what}: retCode {o.get('retCode')!r} {str(o.get('retMsg'))[:80]}")
    return obj(o.get("result"), f"{what}.result")


def risk_tiers(result: Mapping[str, Any]) -> dict[str, MaintenanceSchedule]:
    """``/v5/market/risk-limit`` result → maintenance schedule per symbol."""
    rows: dict[str, list[tuple[float, float, float | None]]] = {}
    for i, item in enumerate(lst(result.get("list"), "risk-limit.list")):
        o = obj(item, f"list[{i}]")
        sym = text(o.get("symbol"), f"list[{i}].symbol")
        ded_raw = o.get("mmDeduction")
        rows.setdefault(sym, []).append(
            (
                num(o.get("riskLimitValue"), f"{sym}.riskLimitValue"),
                num(o.get("maintenanceMargin"), f"{sym}.maintenanceMargin"),
                None if ded_raw in (None, "") else num(ded_raw, f"{sym}.mmDeduction"),
            )
        )
    out: dict[str, MaintenanceSchedule] = {}
    for sym, tiers in rows.items():
        tiers.sort()
        floors = [0.0] + [cap for cap, _, _ in tiers[:-1]]
        try:
            if all(d is not None for _, _, d in tiers):
                out[sym] = MaintenanceSchedule(
                    tuple(
                        Tier(f, rate, d or 0.0)
                        for f, (_, rate, d) in zip(floors, tiers, strict=True)
                    )
                )
            else:
                out[sym] = MaintenanceSchedule.continuous(
                    [(f, rate) for f, (_, rate, _) in zip(floors, tiers, strict=True)]
                )
        except ValueError as exc:
            raise Bad(f"{sym}: {exc}") from None
    return out


def _opt_price(value: Any, what: str) -> float | None:
    if value in (None, ""):
        return None
    v = num(value, what)
    return v if v > 0.0 else None


@dataclass
class BybitAccountState:
    """The account as the stream keeps it between REST snapshots."""

    account: str
    tiers: dict[str, MaintenanceSchedule] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    wallet: dict[str, Any] | None = None

    def position(self, item: Any) -> tuple[str, Position | None]:
        """One position row (REST or stream) → (symbol, position or None when flat)."""
        o = obj(item, "position")
        sym = text(o.get("symbol"), "position.symbol")
        size = num(o.get("size"), f"{sym}.size")
        if size == 0.0:
            return sym, None
        if o.get("positionIdx", 0) not in (0, "0"):
            raise Bad(
                f"{sym}: hedge-mode position (positionIdx {o.get('positionIdx')}); only "
                "one-way mode is followed"
            )
        side = o.get("side")
        if side not in ("Buy", "Sell"):
            raise Bad(f"{sym}.side: expected Buy or Sell, got {side!r}")
        entry = num(o.get("avgPrice", o.get("entryPrice")), f"{sym}.avgPrice")
        mode = MarginMode.ISOLATED if o.get("tradeMode") in (1, "1") else MarginMode.CROSS
        return sym, Position(
            symbol=sym,
            size=size if side == "Buy" else -size,
            entry_price=entry,
            margin_mode=mode,
            isolated_margin=num(o.get("positionBalance"), f"{sym}.positionBalance")
            if mode is MarginMode.ISOLATED
            else None,
            leverage=_opt_price(o.get("leverage"), f"{sym}.leverage"),
            maintenance=self.tiers.get(sym),
            mark_price=_opt_price(o.get("markPrice"), f"{sym}.markPrice"),
            venue_liquidation_price=_opt_price(o.get("liqPrice"), f"{sym}.liqPrice"),
        )

    def set_positions(self, rows: list[Any]) -> None:
        self.positions = {}
        for row in rows:
            sym, pos = self.position(row)
            if pos is not None:
                self.positions[sym] = pos

    def set_wallet(self, rows: list[Any]) -> None:
        for row in rows:
            o = obj(row, "wallet")
            if o.get("accountType") in ("UNIFIED", None):
                num(o.get("totalMarginBalance"), "wallet.totalMarginBalance")
                self.wallet = o
                return
        raise Bad("wallet: no UNIFIED account in the answer")

    def snapshot(self, ts_recv: float, ts_event: float | None = None) -> AccountSnapshot:
        """The account as known now. Raises :class:`Bad` before the first wallet."""
        w = self.wallet
        if w is None:
            raise Bad("wallet: not known yet")
        margin_balance = num(w.get("totalMarginBalance"), "wallet.totalMarginBalance")
        upl = num(w.get("totalPerpUPL") or 0, "wallet.totalPerpUPL")
        return AccountSnapshot(
            venue=VENUE,
            account=self.account,
            cross_collateral=margin_balance - upl,
            positions=tuple(self.positions.values()),
            ts_event=ts_event,
            ts_recv=ts_recv,
            venue_equity=margin_balance,
            venue_free_collateral=opt_num(
                w.get("totalAvailableBalance") or None, "wallet.totalAvailableBalance"
            ),
            venue_maintenance=opt_num(
                w.get("totalMaintenanceMargin") or None, "wallet.totalMaintenanceMargin"
            ),
        )

    def on_push(self, msg: Mapping[str, Any], ts_recv: float) -> AccountSnapshot | None:
        """A ``position``/``wallet`` push → the new account snapshot (None for other
        topics). Raises :class:`Bad` for a push of the wrong shape."""
        topic = str(msg.get("topic", ""))
        t = opt_num(msg.get("creationTime"), "creationTime")
        ts_event = t / 1000.0 if t is not None else None
        data = lst(msg.get("data"), f"{topic}.data")
        if topic.startswith("position"):
            for row in data:
                ro = obj(row, "position")
                if ro.get("category", "linear") != "linear":
                    continue
                sym, pos = self.position(ro)
                if pos is None:
                    self.positions.pop(sym, None)
                else:
                    self.positions[sym] = pos
        elif topic == "wallet":
            self.set_wallet(data)
        else:
            return None
        if self.wallet is None:
            return None
        return self.snapshot(ts_recv, ts_event)
