"""OKX v5 account documents read with a key → events (pure: no I/O, no clock).

Sources (www.okx.com/docs-v5; shapes under ``tests/fixtures/cex/okx/``):

* ``GET /api/v5/account/positions?instType=SWAP`` and the private ``positions`` channel (same
  rows): ``instId``, ``mgnMode`` (``cross``/``isolated``), ``posSide`` (``net`` in one-way
  mode), ``pos`` (signed, in **contracts**), ``avgPx``, ``markPx``, ``liqPx`` (venue's),
  ``lever``, ``margin`` (isolated: the margin balance excluding ``upl``).
* ``GET /api/v5/public/instruments?instType=SWAP``: ``ctVal``·``ctMult`` base coins per
  contract, ``settleCcy``.
* ``GET /api/v5/public/position-tiers``: OKX tiers by position **size** (``minSz``..``maxSz``
  contracts), maintenance rate ``mmr``; the whole position uses its tier's rate, so for a
  given position the schedule is flat (size does not move with the price).
* ``GET /api/v5/account/trade-fee``: ``takerU`` (USDT-margined contracts; negative = paid):
  OKX counts the fee to close in maintenance (margin-math.md §5), so it is the position's
  ``fee_rate``.
* ``GET /api/v5/account/balance`` and the private ``account`` channel: per currency
  ``eq``, ``isoEq`` (isolated equity), ``upl``, ``isoUpl``, ``mmr`` (cross maintenance),
  ``availEq``; account level ``adjEq`` and ``mmr`` (USD) in multi-currency and portfolio
  modes.

Margin modes (``/api/v5/account/config`` ``acctLv``): ``2`` single-currency margin: the USDT
cross pool is computed (collateral = (eq − isoEq) − (upl − isoUpl), equity = eq − isoEq);
``3`` multi-currency and ``4`` portfolio margin: OKX values collateral with per-currency
discounts (``adjEq``) and, in portfolio mode, by scenario; its documents give no formula we
can recompute from these bodies, so the cross pool carries the venue's own ``adjEq`` and
account ``mmr`` (``venue_equity``/``venue_maintenance``) and its collateral is
``adjEq − Σ cross upl`` (the venue's figure). Only one-way (``net``) positions are followed;
in single-currency mode only USDT-settled swaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.positions import Position
from monitor.model.venues import OKX
from monitor.venues.parsing import Bad, lst, obj, text
from monitor.venues.parsing import bounded_num as num
from monitor.venues.parsing import opt_bounded_num as opt_num

VENUE = OKX
QUOTE = "USDT"
SINGLE_CURRENCY = "2"


def data_of(body: Any, what: str) -> list[Any]:
    """The ``data`` of an answer whose ``code`` is "0" (else :class:`Bad`)."""
    o = obj(body, what)
    if o.get("code") not in ("0", 0):
        raise Bad(f"{what}: code {o.get('code')!r} {str(o.get('msg'))[:80]}")
    return lst(o.get("data"), f"{what}.data")


@dataclass(frozen=True, slots=True)
class Contract:
    """Base coins per contract and settlement currency of one swap."""

    size: float
    settle: str


def contracts_from(rows: list[Any]) -> dict[str, Contract]:
    out: dict[str, Contract] = {}
    for row in rows:
        o = obj(row, "instrument")
        inst = text(o.get("instId"), "instrument.instId")
        ct = num(o.get("ctVal"), f"{inst}.ctVal") * num(o.get("ctMult") or 1, f"{inst}.ctMult")
        if ct <= 0:
            raise Bad(f"{inst}: contract value must be positive")
        out[inst] = Contract(ct, str(o.get("settleCcy") or ""))
    return out


def tier_rate(rows: list[Any], contracts: float) -> float:
    """The ``mmr`` of the tier holding a position of ``contracts`` (absolute) contracts."""
    tiers = sorted(
        (num(obj(r, "tier").get("maxSz"), "tier.maxSz"), num(obj(r, "tier").get("mmr"), "tier.mmr"))
        for r in rows
    )
    if not tiers:
        raise Bad("position-tiers: empty")
    for max_sz, mmr in tiers:
        if contracts <= max_sz:
            return mmr
    return tiers[-1][1]


def _opt_price(value: Any, what: str) -> float | None:
    if value in (None, ""):
        return None
    v = num(value, what)
    return v if v > 0.0 else None


@dataclass
class OkxAccountState:
    """The account as REST and the stream describe it."""

    account: str
    level: str = SINGLE_CURRENCY
    contracts: dict[str, Contract] = field(default_factory=dict)
    #: instrument family → tier rows
    tiers: dict[str, list[Any]] = field(default_factory=dict)
    #: instrument family → taker fee rate (positive)
    fees: dict[str, float] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    balance: dict[str, Any] | None = None

    @staticmethod
    def family(inst: str) -> str:
        return inst.rsplit("-", 1)[0] if inst.endswith("-SWAP") else inst

    def missing(self) -> set[str]:
        """Instruments held whose contract size, tiers or fee are not known yet."""
        return {
            i
            for i in self.rows
            if i not in self.contracts
            or self.family(i) not in self.tiers
            or self.family(i) not in self.fees
        }

    def set_rows(self, rows: list[Any], *, replace_all: bool) -> None:
        if replace_all:
            self.rows = {}
        for row in rows:
            o = obj(row, "position")
            if o.get("instType", "SWAP") != "SWAP":
                continue
            inst = text(o.get("instId"), "position.instId")
            if num(o.get("pos") or 0, f"{inst}.pos") == 0.0:
                self.rows.pop(inst, None)
            else:
                self.rows[inst] = o

    def position(self, o: Mapping[str, Any]) -> Position:
        inst = text(o.get("instId"), "position.instId")
        if o.get("posSide", "net") != "net":
            raise Bad(f"{inst}: long/short-mode position; only one-way (net) mode is followed")
        ct = self.contracts.get(inst)
        pos = num(o.get("pos"), f"{inst}.pos")
        mode_raw = o.get("mgnMode")
        if mode_raw not in ("cross", "isolated"):
            raise Bad(f"{inst}.mgnMode: expected cross or isolated, got {mode_raw!r}")
        if self.level == SINGLE_CURRENCY and not inst.endswith(f"-{QUOTE}-SWAP"):
            raise Bad(f"{inst}: only {QUOTE}-settled swaps are followed in single-currency mode")
        mode = MarginMode.ISOLATED if mode_raw == "isolated" else MarginMode.CROSS
        fam = self.family(inst)
        tiers = self.tiers.get(fam)
        return Position(
            symbol=inst,
            size=pos * ct.size if ct is not None else 0.0,
            entry_price=num(o.get("avgPx"), f"{inst}.avgPx"),
            margin_mode=mode,
            isolated_margin=num(o.get("margin"), f"{inst}.margin")
            if mode is MarginMode.ISOLATED
            else None,
            leverage=_opt_price(o.get("lever"), f"{inst}.lever"),
            maintenance=MaintenanceSchedule.flat(tier_rate(tiers, abs(pos))) if tiers else None,
            fee_rate=self.fees.get(fam),
            mark_price=_opt_price(o.get("markPx"), f"{inst}.markPx"),
            venue_liquidation_price=_opt_price(o.get("liqPx"), f"{inst}.liqPx"),
        )

    def set_balance(self, rows: list[Any]) -> None:
        if not rows:
            raise Bad("balance: empty")
        self.balance = obj(rows[0], "balance")

    def snapshot(self, ts_recv: float, ts_event: float | None = None) -> AccountSnapshot:
        """The account as known now. Raises :class:`Bad` when a figure is missing."""
        b = self.balance
        if b is None:
            raise Bad("balance: not known yet")
        if any(i not in self.contracts for i in self.rows):
            raise Bad("contract size unknown for " + ", ".join(sorted(self.missing())))
        positions = tuple(self.position(o) for o in self.rows.values())
        mm: float | None
        free: float | None
        if self.level == SINGLE_CURRENCY:
            usdt = next(
                (
                    obj(d, "details[]")
                    for d in lst(b.get("details", []), "details")
                    if obj(d, "details[]").get("ccy") == QUOTE
                ),
                None,
            )
            if usdt is None:
                collateral, equity, mm, free = 0.0, 0.0, None, None
            else:
                eq = num(usdt.get("eq") or 0, "USDT.eq")
                iso_eq = num(usdt.get("isoEq") or 0, "USDT.isoEq")
                upl = num(usdt.get("upl") or 0, "USDT.upl")
                iso_upl = num(usdt.get("isoUpl") or 0, "USDT.isoUpl")
                equity = eq - iso_eq
                collateral = equity - (upl - iso_upl)
                mm = opt_num(usdt.get("mmr") or None, "USDT.mmr")
                free = opt_num(usdt.get("availEq") or None, "USDT.availEq")
        else:
            equity = num(b.get("adjEq"), "adjEq")
            cross_upl = sum(
                p.size * ((p.mark_price or p.entry_price) - p.entry_price)
                for p in positions
                if p.margin_mode is MarginMode.CROSS
            )
            collateral = equity - cross_upl
            mm = opt_num(b.get("mmr") or None, "mmr")
            free = None
        return AccountSnapshot(
            venue=VENUE,
            account=self.account,
            cross_collateral=collateral,
            positions=positions,
            ts_event=ts_event,
            ts_recv=ts_recv,
            venue_equity=equity,
            venue_free_collateral=free,
            venue_maintenance=mm,
        )
