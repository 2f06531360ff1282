"""What-if scenarios: the risk of every scope before and after a hypothetical change (pure).

Scenarios, applied in this order whatever order they are given in:

1. structure: :class:`Isolate` moves a cross position to isolated margin, taking ``margin``
   from the cross pool; :class:`Cross` moves an isolated position into the cross pool, its
   isolated margin returned to the pool;
2. prices: :class:`SetPrice` sets one instrument's price (every venue that lists it);
3. :class:`Shock` moves every price at once by a fraction (``-0.10`` = 10 % down); several
   shocks compound.

Units and signs: margins are in the quote currency and, like ``isolated_margin`` in the
normalized snapshot (contracts.md §2), **exclude** unrealized PnL, so the isolated scope's
equity after ``Isolate(symbol, m)`` is ``m + uPnL`` and the cross pool's collateral falls by
``m``: the account's total equity is unchanged by a move between scopes. A price set or shock
moves the venue's risk price (mark and oracle alike, by the same factor).

Input is a :class:`~monitor.model.portfolio.Portfolio` (:func:`what_if_portfolio`) or account
snapshots plus market events (:func:`what_if`); the result holds a :class:`ScopeRisk` before
and after for every scope that exists on either side, in a stable order.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from monitor import fmt
from monitor.errors import InputError
from monitor.margin.base import RuleSet
from monitor.margin.remedy import FRACTION_STEP, Figures, Remedy, Target, remedy
from monitor.margin.risk import LegState, ScopeRisk
from monitor.model.events import (
    AccountSnapshot,
    Event,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
)
from monitor.model.instruments import MarginMode
from monitor.model.portfolio import Market, Portfolio
from monitor.model.positions import AccountKey, Position, ScopeKey
from monitor.report import scope_json


@dataclass(frozen=True, slots=True)
class Shock:
    """Every price moves by ``move`` (a fraction: -0.10 = down 10 %; > -1)."""

    move: float

    def __str__(self) -> str:
        return f"--shock {fmt.num(self.move * 100, 10, sign=True, group=False)}%"


@dataclass(frozen=True, slots=True)
class SetPrice:
    """The price of ``symbol`` becomes ``price`` (quote currency, > 0)."""

    symbol: str
    price: float

    def __str__(self) -> str:
        return f"--price {self.symbol}={fmt.num(self.price, 10, group=False)}"


@dataclass(frozen=True, slots=True)
class Isolate:
    """Move the cross position in ``symbol`` to isolated margin ``margin`` (excl. uPnL, > 0),
    taken from the cross pool's collateral."""

    symbol: str
    margin: float

    def __str__(self) -> str:
        return f"--isolate {self.symbol}={fmt.num(self.margin, 10, group=False)}"


@dataclass(frozen=True, slots=True)
class Cross:
    """Move the isolated position in ``symbol`` into the cross pool, its margin with it."""

    symbol: str

    def __str__(self) -> str:
        return f"--cross {self.symbol}"


Scenario = Shock | SetPrice | Isolate | Cross


@dataclass(frozen=True, slots=True)
class ScopeChange:
    """One scope before and after; ``None`` where the scope does not exist on that side."""

    key: ScopeKey
    before: ScopeRisk | None
    after: ScopeRisk | None


@dataclass(frozen=True, slots=True)
class PriceChange:
    venue: str
    symbol: str
    before: float
    after: float


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    """``remedies``: with a target, one :class:`Remedy` per scope (after the scenarios) that
    holds positions, in the order of ``scopes``."""

    scenarios: tuple[Scenario, ...]
    scopes: tuple[ScopeChange, ...]
    prices: tuple[PriceChange, ...]
    notes: tuple[str, ...]
    target: Target | None = None
    remedies: tuple[Remedy, ...] = ()


# -- parsing the command line's forms (pure) ------------------------------------------------------

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


def _fraction(text: str, flag: str, example: str) -> float:
    """``15%`` → 0.15, ``0.15`` → 0.15. A bare number of 1 or more is refused: it is a
    percentage written without its sign (``--shock 10`` is not +1000 %)."""
    where = f"{flag} {text}"
    m = re.fullmatch(rf"\s*({_NUMBER})\s*(%?)\s*", text)
    if not m:
        raise InputError(where, None, f"expected a percentage or a fraction such as {example}")
    value = float(m.group(1))
    if not math.isfinite(value):
        raise InputError(where, None, "not a finite number")
    if m.group(2):
        return value / 100.0
    if abs(value) >= 1.0:
        raise InputError(
            where,
            None,
            f"a bare number is a fraction (0.1 = 10%): write {m.group(1)}% for "
            f"{m.group(1).lstrip('+')} percent, or {value / 100.0:g}",
        )
    return value


def parse_shock(text: str) -> Shock:
    """``-10%``, ``+5%``, ``-0.1`` (a bare number is a fraction; ``10`` is refused)."""
    move = _fraction(text, "--shock", "-10% or -0.1")
    if move <= -1.0:
        raise InputError(f"--shock {text}", None, "a move must be above -100%")
    return Shock(move)


def parse_target_distance(text: str) -> Target:
    """``--target-distance 15%`` (or ``0.15``): every liquidation price at least this far."""
    d = _fraction(text, "--target-distance", "15% or 0.15")
    if not 0.0 < d < 1.0:
        raise InputError(
            f"--target-distance {text}", None, "a liquidation distance is between 0% and 100%"
        )
    return Target(distance=d)


def parse_target_ratio(text: str) -> Target:
    """``--target-ratio 0.5`` (or ``50%``): maintenance / equity at most this."""
    r = _fraction(text, "--target-ratio", "0.5 or 50%")
    if not 0.0 < r < 1.0:
        raise InputError(
            f"--target-ratio {text}",
            None,
            "a target margin ratio is between 0% and 100% (100% is liquidation)",
        )
    return Target(margin_ratio=r)


def combine_targets(targets: Sequence[Target]) -> Target | None:
    """One target from several flags (the last of each kind wins); None without any."""
    ratio = next((t.margin_ratio for t in reversed(targets) if t.margin_ratio is not None), None)
    dist = next((t.distance for t in reversed(targets) if t.distance is not None), None)
    if ratio is None and dist is None:
        return None
    return Target(margin_ratio=ratio, distance=dist)


def _pair(text: str, flag: str, what: str) -> tuple[str, float]:
    symbol, sep, value = text.partition("=")
    symbol = symbol.strip()
    if not sep or not symbol:
        raise InputError(f"{flag} {text}", None, f"expected SYMBOL={what}")
    try:
        number = float(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise InputError(f"{flag} {text}", None, f"{what} is not a number") from None
    if not math.isfinite(number) or number <= 0.0:
        raise InputError(f"{flag} {text}", None, f"{what} must be positive")
    return symbol, number


def parse_price(text: str) -> SetPrice:
    """``ETH=2800``."""
    return SetPrice(*_pair(text, "--price", "PRICE"))


def parse_isolate(text: str) -> Isolate:
    """``SOL=500``: isolate the SOL position with 500 of margin."""
    return Isolate(*_pair(text, "--isolate", "MARGIN"))


def parse_cross(text: str) -> Cross:
    symbol = text.strip()
    if not symbol:
        raise InputError("--cross", None, "expected a SYMBOL")
    return Cross(symbol)


def scope_inputs(
    portfolio: Portfolio, key: ScopeKey
) -> tuple[RuleSet, list[LegState], float] | None:
    """What :func:`monitor.margin.remedy.remedy` needs for one scope of ``portfolio``: its
    rule set, its legs at their risk prices and its collateral (quote currency, excluding
    uPnL). None when the scope does not exist."""
    s = portfolio.scope_state(key)
    if s is None:
        return None
    legs = [
        LegState(
            leg=h.leg,
            price=h.price,
            funding_price=h.price,
            funding_rate_per_hour=None,
            isolated_margin=(s.cash + h.leg.size * h.leg.entry_price) if h.leg.isolated else None,
        )
        for h in s.holdings.values()
    ]
    collateral = s.cash + math.fsum(ls.leg.size * ls.leg.entry_price for ls in legs)
    return s.rules, legs, collateral


def remedy_of(
    portfolio: Portfolio,
    key: ScopeKey,
    target: Target,
    *,
    symbol: str | None = None,
    fraction_step: float = FRACTION_STEP,
    reduce: bool = True,
    risk: ScopeRisk | None = None,
) -> Remedy | None:
    """The deposit and the reduction that bring scope ``key`` of ``portfolio`` to ``target``
    (:func:`monitor.margin.remedy.remedy`); None when the scope does not exist. Raises
    KeyError when ``symbol`` is given and not held in that scope. ``risk``: the scope's
    figures on ``portfolio`` as it is now, when the caller has them (not computed again)."""
    inputs = scope_inputs(portfolio, key)
    if inputs is None:
        return None
    rules, legs, collateral = inputs
    return remedy(
        key, rules, legs, collateral, target,
        symbol=symbol, fraction_step=fraction_step, reduce=reduce, risk=risk,
    )  # fmt: skip


# -- the engine ------------------------------------------------------------------------------------


def what_if_portfolio(
    portfolio: Portfolio, scenarios: Sequence[Scenario], *, target: Target | None = None
) -> WhatIfResult:
    """Scenarios applied to a copy of ``portfolio``'s state (the portfolio is not changed)."""
    snapshots, market_events = _state_of(portfolio)
    return what_if(snapshots, scenarios, market_events=market_events, target=target)


def what_if(
    snapshots: Sequence[AccountSnapshot],
    scenarios: Sequence[Scenario],
    *,
    market_events: Sequence[Event] = (),
    target: Target | None = None,
) -> WhatIfResult:
    """Risk of every scope before and after ``scenarios``; with ``target``, the remedy
    (deposit, reduction) of every scope holding positions after them.

    ``market_events`` (instrument specs, marks, funding rates) are applied before the
    snapshots, so they win over the prices the snapshots carry.
    """
    notes: list[str] = []
    before = _build(snapshots, market_events)

    structural = [s for s in scenarios if isinstance(s, Isolate | Cross)]
    # the venue's own figures describe the account as it is, not as it would be
    after_snaps = [_without_venue_figures(s) for s in snapshots]
    for move in structural:
        after_snaps = _restructure(after_snaps, move, before, notes)
    after = _build(after_snaps, market_events)

    prices = _prices(before)
    new_prices = dict(prices)
    for set_price in (s for s in scenarios if isinstance(s, SetPrice)):
        for k in _match(set_price.symbol, list(prices), str(set_price)):
            new_prices[k] = (set_price.price, set_price.price / prices[k][0])
    factor = 1.0
    for shock in (s for s in scenarios if isinstance(s, Shock)):
        factor *= 1.0 + shock.move
    changes: list[PriceChange] = []
    for (venue, symbol), (price, ratio) in sorted(new_prices.items()):
        total = ratio * factor
        m = after.markets.get((venue, symbol))
        if m is None or abs(total - 1.0) < 1e-15:
            continue
        mark = m.mark if m.mark is not None else prices[(venue, symbol)][0]
        oracle = m.oracle * total if m.oracle is not None else None
        after.apply(MarkPrice(venue, symbol, mark * total, oracle))
        changes.append(PriceChange(venue, symbol, prices[(venue, symbol)][0], price * factor))

    keys = sorted(set(before.scope_keys()) | set(after.scope_keys()), key=_order)
    rows: list[ScopeChange] = []
    for key in keys:
        b = before.risk(key)
        a = after.risk(key)
        if _idle(b) and _idle(a):
            continue
        rows.append(ScopeChange(key, b, a))
    for row in rows:
        if row.after is not None and row.after.liquidatable:
            if row.before is not None and row.before.liquidatable:
                notes.append(f"{row.key}: liquidatable before and after")
            else:
                notes.append(f"{row.key}: liquidatable after the change")
    remedies: list[Remedy] = []
    if target is not None:
        for row in rows:
            if row.after is not None and row.after.positions:
                fix = remedy_of(after, row.key, target)
                if fix is not None:
                    remedies.append(fix)
    return WhatIfResult(
        tuple(scenarios), tuple(rows), tuple(changes), tuple(notes), target, tuple(remedies)
    )


def _idle(r: ScopeRisk | None) -> bool:
    """Absent, or a cross pool with neither positions nor money (not worth a row)."""
    return r is None or (not r.positions and r.scope == "cross" and abs(r.equity) < 1e-9)


def _order(key: ScopeKey) -> tuple[str, str, int, str]:
    return (key.venue, key.account, 0 if key.scope == "cross" else 1, key.scope)


def _build(snapshots: Iterable[AccountSnapshot], market_events: Iterable[Event]) -> Portfolio:
    p = Portfolio()
    for ev in market_events:
        if isinstance(ev, InstrumentSpec):
            p.apply(ev)
    for ev in market_events:
        if not isinstance(ev, InstrumentSpec):
            p.apply(ev)
    for snap in snapshots:
        p.apply(snap)
    return p


def _price_of(m: Market) -> float | None:
    """The market's current risk-relevant price: mark, else oracle, else a holding's."""
    if m.mark is not None:
        return m.mark
    if m.oracle is not None:
        return m.oracle
    for h in m.holdings:
        if h.price > 0.0:
            return h.price
    return None


def _prices(p: Portfolio) -> dict[tuple[str, str], tuple[float, float]]:
    """(venue, symbol) → (price, ratio 1.0) for every market with a price and a holding."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for key, m in p.markets.items():
        price = _price_of(m)
        if price is not None and price > 0.0 and m.holdings:
            out[key] = (price, 1.0)
    return out


def _base(symbol: str) -> str:
    s = symbol.upper()
    for sep in ("-", "/", ":"):
        s = s.split(sep, 1)[0]
    for quote in ("USDT", "USDC", "USD"):
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)]
    return s


def _match(symbol: str, keys: Sequence[tuple[str, str]], flag: str) -> list[tuple[str, str]]:
    """Markets named ``symbol``: exactly (case-insensitive), else by base coin
    (``ETH`` matches ``ETHUSDT``, ``ETH-USD``, ``ETH/USDT:USDT``)."""
    exact = [k for k in keys if k[1].upper() == symbol.upper()]
    if exact:
        return exact
    by_base = [k for k in keys if _base(k[1]) == _base(symbol)]
    if by_base:
        return by_base
    known = ", ".join(sorted({k[1] for k in keys})) or "none"
    raise InputError(flag, None, f"no position in {symbol!r} (held: {known})")


def _restructure(
    snaps: list[AccountSnapshot], sc: Isolate | Cross, before: Portfolio, notes: list[str]
) -> list[AccountSnapshot]:
    want = MarginMode.CROSS if isinstance(sc, Isolate) else MarginMode.ISOLATED
    candidates = [
        (i, j)
        for i, snap in enumerate(snaps)
        for j, pos in enumerate(snap.positions)
        if pos.margin_mode is want
    ]
    keys = _match(
        sc.symbol, [(str(i), snaps[i].positions[j].symbol) for i, j in candidates], str(sc)
    )
    chosen = {(int(i), sym) for i, sym in keys}
    out = list(snaps)
    for i, j in candidates:
        snap = out[i]
        pos = snaps[i].positions[j]
        if (i, pos.symbol) not in chosen:
            continue
        positions = list(snap.positions)
        if isinstance(sc, Isolate):
            new_pos = replace(pos, margin_mode=MarginMode.ISOLATED, isolated_margin=sc.margin)
            collateral = snap.cross_collateral - sc.margin
            _check_isolate(before, snap, sc, notes)
        else:
            margin = pos.isolated_margin or 0.0
            new_pos = replace(pos, margin_mode=MarginMode.CROSS, isolated_margin=None)
            collateral = snap.cross_collateral + margin
        positions[j] = new_pos
        out[i] = replace(snap, cross_collateral=collateral, positions=tuple(positions))
    return out


def _without_venue_figures(snap: AccountSnapshot) -> AccountSnapshot:
    return replace(
        snap,
        positions=tuple(
            replace(p, venue_liquidation_price=None, venue_margin_used=None) for p in snap.positions
        ),
        venue_equity=None,
        venue_free_collateral=None,
        venue_maintenance=None,
    )


def _check_isolate(before: Portfolio, snap: AccountSnapshot, sc: Isolate, notes: list[str]) -> None:
    risk = before.risk(ScopeKey(snap.venue, snap.account, "cross"), with_stress=False)
    if risk is None:
        return
    free = risk.free_collateral
    if free is not None and sc.margin > free:
        notes.append(
            f"{snap.venue}:{snap.account}: isolating {sc.symbol} with {sc.margin:,.2f} exceeds "
            f"the cross pool's free collateral {free:,.2f}; the venue may refuse it"
        )
    elif sc.margin > risk.equity:
        notes.append(
            f"{snap.venue}:{snap.account}: isolating {sc.symbol} with {sc.margin:,.2f} exceeds "
            f"the cross pool's equity {risk.equity:,.2f}"
        )


def _state_of(p: Portfolio) -> tuple[list[AccountSnapshot], list[Event]]:
    """The portfolio as snapshots plus market events that rebuild an equal portfolio."""
    events: list[Event] = []
    for (venue, symbol), m in p.markets.items():
        if m.instrument is not None:
            events.append(InstrumentSpec(m.instrument))
        if m.mark is not None or m.oracle is not None:
            mark = m.mark if m.mark is not None else m.oracle
            assert mark is not None
            events.append(MarkPrice(venue, symbol, mark, m.oracle))
        if m.funding_rate is not None:
            interval = m.funding_interval_hours or (
                m.instrument.funding_interval_hours if m.instrument else 8.0
            )
            events.append(FundingRate(venue, symbol, m.funding_rate, interval))
    snaps: list[AccountSnapshot] = []
    for key, acct in p.accounts.items():
        positions: list[Position] = []
        cross_entry = 0.0
        for h in acct.cross.holdings.values():
            positions.append(h.position)
            cross_entry += h.leg.size * h.leg.entry_price
        for scope in acct.isolated.values():
            for h in scope.holdings.values():
                margin = scope.cash + h.leg.size * h.leg.entry_price
                positions.append(replace(h.position, isolated_margin=margin))
        snaps.append(_snapshot(key, acct.cross.cash + cross_entry, positions, acct.venue_figures))
    return snaps, events


def _snapshot(
    key: AccountKey,
    collateral: float,
    positions: list[Position],
    figures: tuple[float | None, float | None, float | None],
) -> AccountSnapshot:
    equity, free, mm = figures
    return AccountSnapshot(
        venue=key.venue,
        account=key.account,
        cross_collateral=collateral,
        positions=tuple(positions),
        venue_equity=equity,
        venue_free_collateral=free,
        venue_maintenance=mm,
    )


@dataclass(frozen=True, slots=True)
class AccountTotal:
    """One account summed over its scopes (quote currency): a move between cross and isolated
    leaves ``equity`` unchanged and shifts what each scope can lose."""

    venue: str
    account: str
    equity_before: float
    equity_after: float
    maintenance_before: float
    maintenance_after: float


def account_totals(result: WhatIfResult) -> tuple[AccountTotal, ...]:
    sums: dict[tuple[str, str], list[float]] = {}
    for c in result.scopes:
        acc = sums.setdefault((c.key.venue, c.key.account), [0.0, 0.0, 0.0, 0.0])
        if c.before is not None:
            acc[0] += c.before.equity
            acc[2] += c.before.maintenance_margin
        if c.after is not None:
            acc[1] += c.after.equity
            acc[3] += c.after.maintenance_margin
    return tuple(AccountTotal(v, a, *vals) for (v, a), vals in sums.items())


# -- output (pure) -------------------------------------------------------------------------------

WHATIF_VERSION = 1


def result_json(result: WhatIfResult) -> dict[str, Any]:
    """``{"version": 1, "scenarios": [...], "prices": [...], "scopes": [{"venue", "account",
    "scope", "before": <scope report or null>, "after": ...}], "accounts": [per-account equity
    and maintenance before/after], "notes": [...]}``; the scope
    reports have the shape of ``monitor inspect --json`` (contracts.md §3)."""
    return {
        "version": WHATIF_VERSION,
        "scenarios": [str(s) for s in result.scenarios],
        "prices": [
            {"venue": p.venue, "symbol": p.symbol, "before": p.before, "after": p.after}
            for p in result.prices
        ],
        "scopes": [
            {
                "venue": c.key.venue,
                "account": c.key.account,
                "scope": c.key.scope,
                "before": scope_json(c.before) if c.before is not None else None,
                "after": scope_json(c.after) if c.after is not None else None,
            }
            for c in result.scopes
        ],
        "accounts": [
            {
                "venue": t.venue,
                "account": t.account,
                "equity_before": t.equity_before,
                "equity_after": t.equity_after,
                "maintenance_before": t.maintenance_before,
                "maintenance_after": t.maintenance_after,
            }
            for t in account_totals(result)
        ],
        "notes": list(result.notes),
        **(
            {
                "target": _target_json(result.target),
                "remedies": [remedy_json(r) for r in result.remedies],
            }
            if result.target is not None
            else {}
        ),
    }


def _target_json(t: Target) -> dict[str, float | None]:
    return {"margin_ratio": t.margin_ratio, "liquidation_distance": t.distance}


def _figures_json(f: Figures | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "equity": _finite(f.equity),
        "maintenance_margin": _finite(f.maintenance_margin),
        "margin_ratio": _finite(f.margin_ratio),
        "nearest_liquidation_distance": _finite(f.nearest_liquidation_distance),
        "liquidatable": _at_or_past_liquidation(f),
    }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def remedy_json(r: Remedy) -> dict[str, Any]:
    """One remedy as JSON: ``{"venue", "account", "scope", "target": {"margin_ratio",
    "liquidation_distance"}, "met", "unknown", "deposit", "after_deposit": figures,
    "reduce": {"symbol", "size", "fraction", "after": figures, "note"}}``; figures are
    ``{"equity", "maintenance_margin", "margin_ratio", "nearest_liquidation_distance",
    "liquidatable"}``; ``unknown`` says why nothing was computed (then ``deposit`` is null)."""
    return {
        "venue": r.key.venue,
        "account": r.key.account,
        "scope": r.key.scope,
        "target": _target_json(r.target),
        "met": r.met,
        "unknown": r.unknown,
        "deposit": _finite(r.deposit),
        "after_deposit": _figures_json(r.after_deposit),
        "reduce": {
            "symbol": r.reduce_symbol,
            "size": _finite(r.reduce_size),
            "fraction": _finite(r.reduce_fraction),
            "after": _figures_json(r.after_reduction),
            "note": r.reduce_note,
        },
    }


def _at_or_past_liquidation(f: Figures | ScopeRisk) -> bool:
    """Liquidatable as the venue sees it, the boundary included: equity at or below zero, or a
    margin ratio of 1 or more (maintenance ≥ equity)."""
    return f.liquidatable or f.margin_ratio is None or f.margin_ratio >= 1.0


def _state(r: ScopeRisk) -> str:
    if not r.positions:
        # an empty pool cannot be liquidated; a negative balance is still a debt
        return "no positions" if r.equity >= 0.0 else "no positions, negative balance"
    if r.margin_ratio is None:
        return "LIQUIDATABLE (equity at or below zero)"
    if r.margin_ratio >= 1.0:
        return "LIQUIDATABLE (maintenance ≥ equity)"
    return "ok"


def _ratio(r: ScopeRisk) -> str:
    if r.margin_ratio is not None:
        return fmt.pct(r.margin_ratio)
    return "— (no positions)" if not r.positions else "— (equity ≤ 0)"


def _runway(r: ScopeRisk) -> str:
    if r.funding_runway_hours is None:
        return "— (funding not a cost)" if r.positions else "—"
    return fmt.hours(r.funding_runway_hours)


def _shock(r: ScopeRisk) -> str:
    if r.positions and _at_or_past_liquidation(r):
        return "past liquidation"
    return f"down {fmt.pct(r.shock_down, 1)} / up {fmt.pct(r.shock_up, 1)}"


_SCOPE_ROWS: tuple[tuple[str, Callable[[ScopeRisk], str]], ...] = (
    ("equity", lambda r: fmt.money(r.equity)),
    ("maintenance", lambda r: fmt.money(r.maintenance_margin)),
    ("margin ratio", _ratio),
    ("free collateral", lambda r: fmt.money(r.free_collateral)),
    ("shock to liquidation", _shock),
    ("funding runway", _runway),
    ("state", _state),
)


def _position_cell(r: ScopeRisk, symbol: str, attr: str) -> str:
    p = next((p for p in r.positions if p.symbol == symbol), None)
    if p is None:
        return "(none)"
    past = _at_or_past_liquidation(r)
    if attr == "size":
        return fmt.size(p.size, sign=True)
    if attr == "mark_price":
        return fmt.price(p.mark_price)
    if attr == "liquidation_price":
        return fmt.price(p.liquidation_price) if p.liquidation_price is not None else "none"
    if attr == "liquidation_distance":
        if past:
            return "past liquidation"
        return fmt.pct(p.liquidation_distance)
    # loss if liquidated: once past liquidation the loss is whatever the venue's
    # liquidation realizes, not a figure at a price still to come
    if past:
        return "past liquidation"
    return fmt.money(p.loss_if_liquidated)


_POSITION_ROWS: tuple[tuple[str, str], ...] = (
    ("size", "size"),
    ("price", "mark_price"),
    ("liq price", "liquidation_price"),
    ("liq distance", "liquidation_distance"),
    ("loss if liquidated", "loss_if_liquidated"),
)


def _side(r: ScopeRisk | None, get: Callable[[ScopeRisk], str]) -> str:
    return "(none)" if r is None else get(r)


def _block(c: ScopeChange) -> list[str]:
    head = f"{c.key.venue} {c.key.account}  [{c.key.scope}]"
    rows: list[tuple[str, str, str]] = [("", "before", "after")]
    for label, get in _SCOPE_ROWS:
        rows.append((label, _side(c.before, get), _side(c.after, get)))
    symbols: list[str] = []
    for side in (c.before, c.after):
        for pr in side.positions if side is not None else ():
            if pr.symbol not in symbols:
                symbols.append(pr.symbol)
    for sym in symbols:
        for label, attr in _POSITION_ROWS:
            cells = [
                "(none)" if r is None else _position_cell(r, sym, attr) for r in (c.before, c.after)
            ]
            rows.append((f"{sym} {label}", cells[0], cells[1]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = [head, "-" * len(head)]
    for label, b, a in rows:
        out.append(f"  {label.ljust(widths[0])}  {b.rjust(widths[1])}  {a.rjust(widths[2])}")
    return out


def _figures_line(f: Figures) -> str:
    if f.margin_ratio is None and f.maintenance_margin == 0.0:
        return "nothing left at risk"
    ratio = "— (equity ≤ 0)" if f.margin_ratio is None else fmt.pct(f.margin_ratio)
    dist = f.nearest_liquidation_distance
    text = f"margin ratio {ratio}, nearest liquidation "
    text += "none" if dist is None else f"{fmt.pct(dist)} away"
    if _at_or_past_liquidation(f):
        text += " (LIQUIDATABLE)"
    return text


def render_remedy(r: Remedy, quote: str = "", *, after: bool = False) -> list[str]:
    """The remedy as lines: the deposit, then the reduction, each with what it leads to.
    ``after``: the remedy was computed on the book after the scenarios (the header says so)."""
    unit = f" {quote}" if quote else ""
    when = " after the scenario" if after else ""
    head = f"to reach {r.target}{when} on {r.key.venue} {r.key.account} [{r.key.scope}]:"
    if r.met:
        return [head, f"  already there ({_figures_line(r.now)}): nothing to do"]
    if r.deposit is None or r.after_deposit is None:
        return [w for line in (head, f"  UNKNOWN: {r.unknown}") for w in _wrap(line)]
    lines = [
        head,
        f"  deposit {fmt.money(r.deposit)}{unit} -> {_figures_line(r.after_deposit)}",
    ]
    if r.reduce_size is not None and r.reduce_fraction is not None:
        assert r.after_reduction is not None
        frac = "all of it" if r.reduce_fraction >= 1.0 else fmt.pct(r.reduce_fraction)
        lines.append(
            f"  or reduce {r.reduce_symbol} by {fmt.size(r.reduce_size)} ({frac}) -> "
            f"{_figures_line(r.after_reduction)}"
        )
    if r.reduce_note:
        lines.append(f"  note: {r.reduce_note}")
    return [w for line in lines for w in _wrap(line)]


def _wrap(line: str, width: int = 120) -> list[str]:
    """``line`` cut at spaces to ``width`` columns, continuation lines indented."""
    return textwrap.wrap(line, width, subsequent_indent="      ", break_on_hyphens=False) or [""]


def render_result(result: WhatIfResult) -> str:
    """Before and after side by side, one block per scope; then the remedies, if asked."""
    lines: list[str] = []
    if result.scenarios:
        lines.append("scenario: " + " ".join(str(s) for s in result.scenarios))
    else:
        lines.append("scenario: none (before = after)")
    for p in result.prices:
        lines.append(f"  {p.venue} {p.symbol}: {fmt.price(p.before)} -> {fmt.price(p.after)}")
    lines.append("")
    for c in result.scopes:
        lines.extend(_block(c))
        lines.append("")
    if not result.scopes:
        lines.append("no open positions")
    for t in account_totals(result):
        lines.append(
            f"account {t.venue} {t.account}: equity {fmt.money(t.equity_before)} -> "
            f"{fmt.money(t.equity_after)}, maintenance {fmt.money(t.maintenance_before)} -> "
            f"{fmt.money(t.maintenance_after)}"
        )
    for n in result.notes:
        lines.append(f"note: {n}")
    if result.target is not None:
        lines.append("")
        if not result.remedies:
            lines.append(f"to reach {result.target}: no scope holds positions")
        for r in result.remedies:
            lines.extend(render_remedy(r, after=bool(result.scenarios)))
    return "\n".join(lines).rstrip() + "\n"
