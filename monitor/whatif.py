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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from monitor.errors import InputError
from monitor.margin.risk import ScopeRisk
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

SOURCE = "whatif"


@dataclass(frozen=True, slots=True)
class Shock:
    """Every price moves by ``move`` (a fraction: -0.10 = down 10 %; > -1)."""

    move: float

    def __str__(self) -> str:
        return f"--shock {self.move * 100:+g}%"


@dataclass(frozen=True, slots=True)
class SetPrice:
    """The price of ``symbol`` becomes ``price`` (quote currency, > 0)."""

    symbol: str
    price: float

    def __str__(self) -> str:
        return f"--price {self.symbol}={self.price:g}"


@dataclass(frozen=True, slots=True)
class Isolate:
    """Move the cross position in ``symbol`` to isolated margin ``margin`` (excl. uPnL, > 0),
    taken from the cross pool's collateral."""

    symbol: str
    margin: float

    def __str__(self) -> str:
        return f"--isolate {self.symbol}={self.margin:g}"


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
    scenarios: tuple[Scenario, ...]
    scopes: tuple[ScopeChange, ...]
    prices: tuple[PriceChange, ...]
    notes: tuple[str, ...]


# -- parsing the command line's forms (pure) ------------------------------------------------------

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"


def parse_shock(text: str) -> Shock:
    """``-10%``, ``+5%``, ``-0.1`` (a bare number is a fraction)."""
    m = re.fullmatch(rf"\s*({_NUMBER})\s*(%?)\s*", text)
    if not m:
        raise InputError(SOURCE, f"--shock {text}", "expected a move such as -10% or -0.1")
    move = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not math.isfinite(move) or move <= -1.0:
        raise InputError(SOURCE, f"--shock {text}", "a move must be above -100%")
    return Shock(move)


def _pair(text: str, flag: str, what: str) -> tuple[str, float]:
    symbol, sep, value = text.partition("=")
    symbol = symbol.strip()
    if not sep or not symbol:
        raise InputError(SOURCE, f"{flag} {text}", f"expected SYMBOL={what}")
    try:
        number = float(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise InputError(SOURCE, f"{flag} {text}", f"{what} is not a number") from None
    if not math.isfinite(number) or number <= 0.0:
        raise InputError(SOURCE, f"{flag} {text}", f"{what} must be positive")
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
        raise InputError(SOURCE, "--cross", "expected a SYMBOL")
    return Cross(symbol)


# -- the engine ------------------------------------------------------------------------------------


def what_if_portfolio(portfolio: Portfolio, scenarios: Sequence[Scenario]) -> WhatIfResult:
    """Scenarios applied to a copy of ``portfolio``'s state (the portfolio is not changed)."""
    snapshots, market_events = _state_of(portfolio)
    return what_if(snapshots, scenarios, market_events=market_events)


def what_if(
    snapshots: Sequence[AccountSnapshot],
    scenarios: Sequence[Scenario],
    *,
    market_events: Sequence[Event] = (),
) -> WhatIfResult:
    """Risk of every scope before and after ``scenarios``.

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
    return WhatIfResult(tuple(scenarios), tuple(rows), tuple(changes), tuple(notes))


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
    raise InputError(SOURCE, flag, f"no position in {symbol!r} (held: {known})")


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
    }


def _money(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:,.2f}"


def _pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x * 100:.{digits}f}%"


def _px(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    mag = abs(x)
    return f"{x:,.{2 if mag >= 100 else 4 if mag >= 1 else 6}f}"


def _shock(r: ScopeRisk) -> str:
    return f"down {_pct(r.shock_down, 1)} / up {_pct(r.shock_up, 1)}"


_SCOPE_ROWS: tuple[tuple[str, Callable[[ScopeRisk], str]], ...] = (
    ("equity", lambda r: _money(r.equity)),
    ("maintenance", lambda r: _money(r.maintenance_margin)),
    ("margin ratio", lambda r: "—" if r.margin_ratio is None else _pct(r.margin_ratio)),
    ("free collateral", lambda r: _money(r.free_collateral)),
    ("shock to liquidation", _shock),
    ("state", lambda r: "LIQUIDATABLE" if r.liquidatable else "ok"),
)
_POSITION_ROWS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("price", "mark_price", _px),
    ("liq price", "liquidation_price", _px),
    ("liq distance", "liquidation_distance", _pct),
    ("loss if liquidated", "loss_if_liquidated", _money),
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
        for label, attr, fmt in _POSITION_ROWS:
            cells = [
                "(none)" if r is None else fmt(_position(r, sym, attr)) for r in (c.before, c.after)
            ]
            rows.append((f"{sym} {label}", cells[0], cells[1]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = [head, "-" * len(head)]
    for label, b, a in rows:
        out.append(f"  {label.ljust(widths[0])}  {b.rjust(widths[1])}  {a.rjust(widths[2])}")
    return out


def render_result(result: WhatIfResult) -> str:
    """Before and after side by side, one block per scope."""
    lines: list[str] = []
    if result.scenarios:
        lines.append("scenario: " + " ".join(str(s) for s in result.scenarios))
    else:
        lines.append("scenario: none (before = after)")
    for p in result.prices:
        lines.append(f"  {p.venue} {p.symbol}: {_px(p.before)} -> {_px(p.after)}")
    lines.append("")
    for c in result.scopes:
        lines.extend(_block(c))
        lines.append("")
    if not result.scopes:
        lines.append("no open positions")
    for t in account_totals(result):
        lines.append(
            f"account {t.venue} {t.account}: equity {_money(t.equity_before)} -> "
            f"{_money(t.equity_after)}, maintenance {_money(t.maintenance_before)} -> "
            f"{_money(t.maintenance_after)}"
        )
    for n in result.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines).rstrip() + "\n"


def _position(r: ScopeRisk, symbol: str, attr: str) -> float | None:
    for p in r.positions:
        if p.symbol == symbol:
            v = getattr(p, attr)
            return v if isinstance(v, float) else None
    return None
