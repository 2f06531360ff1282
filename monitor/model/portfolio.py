"""The in-memory portfolio and its incremental engine (pure; one owner, no locks).

State:

* ``markets``: (venue, symbol) → the latest mark/oracle/funding and instrument spec, plus the
  index of every holding on that instrument.
* ``accounts``: (venue, account) → one cross scope and any number of isolated scopes.

Each scope keeps its **cash** (the raw quote balance: equity = cash + Σ s·price; Hyperliquid's
``totalRawUsd``/``rawUsd``, dYdX's signed USDC position) and two aggregates maintained by
deltas: ``value = Σ s·price`` and ``mm = Σ maintenance``. A price tick therefore touches only
the holdings on that instrument and the scopes that hold them: O(holdings on the instrument).
Snapshots and position updates rebuild the scopes they touch from scratch, and every scope is
re-summed after ``RESUM_EVERY`` deltas so float drift cannot accumulate.

``Portfolio.apply(event)`` returns the scopes it touched (including scopes that just vanished,
for which ``risk()`` then returns None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from monitor.margin.base import Leg, RuleSet
from monitor.margin.registry import rules_for
from monitor.margin.risk import LegState, ScopeRisk, compute_scope_risk
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    FeedStatus,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.instruments import Instrument, MarginMode
from monitor.model.positions import CROSS_SCOPE, AccountKey, Position, ScopeKey

RESUM_EVERY = 4096


class Market:
    __slots__ = (
        "funding_interval_hours",
        "funding_rate",
        "holdings",
        "instrument",
        "mark",
        "oracle",
        "symbol",
        "venue",
    )

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue = venue
        self.symbol = symbol
        self.mark: float | None = None
        self.oracle: float | None = None
        self.funding_rate: float | None = None
        self.funding_interval_hours: float | None = None
        self.instrument: Instrument | None = None
        self.holdings: list[Holding] = []


class Holding:
    """One position inside the engine, with its cached contributions to its scope."""

    __slots__ = ("leg", "market", "mm", "position", "price", "scope", "value")

    def __init__(self, position: Position, leg: Leg, scope: ScopeState, market: Market) -> None:
        self.position = position
        self.leg = leg
        self.scope = scope
        self.market = market
        self.price = 0.0
        self.value = 0.0
        self.mm = 0.0


class ScopeState:
    __slots__ = ("cash", "deltas", "holdings", "key", "mm", "rules", "value")

    def __init__(self, key: ScopeKey, rules: RuleSet, cash: float) -> None:
        self.key = key
        self.rules = rules
        self.cash = cash
        self.holdings: dict[str, Holding] = {}
        self.value = 0.0
        self.mm = 0.0
        self.deltas = 0

    @property
    def equity(self) -> float:
        return self.cash + self.value

    def resum(self) -> None:
        self.value = math.fsum(h.value for h in self.holdings.values())
        self.mm = math.fsum(h.mm for h in self.holdings.values())
        self.deltas = 0


class AccountState:
    __slots__ = ("cross", "isolated", "key", "rules", "venue_figures")

    def __init__(self, key: AccountKey, rules: RuleSet) -> None:
        self.key = key
        self.rules = rules
        self.cross = ScopeState(ScopeKey(key.venue, key.account, CROSS_SCOPE), rules, 0.0)
        self.isolated: dict[str, ScopeState] = {}
        self.venue_figures: tuple[float | None, float | None, float | None] = (None, None, None)

    def scopes(self) -> Iterator[ScopeState]:
        yield self.cross
        yield from self.isolated.values()


class Portfolio:
    """Owns all state; ``apply`` is the only mutator."""

    def __init__(self) -> None:
        self.markets: dict[tuple[str, str], Market] = {}
        self.accounts: dict[AccountKey, AccountState] = {}
        self.funding_paid: dict[AccountKey, float] = {}
        self.feed_status: dict[tuple[str, str], FeedStatus] = {}

    # -- helpers ---------------------------------------------------------------------------
    def market(self, venue: str, symbol: str) -> Market:
        m = self.markets.get((venue, symbol))
        if m is None:
            m = self.markets[(venue, symbol)] = Market(venue, symbol)
        return m

    def _price_of(self, rules: RuleSet, m: Market, pos: Position | None) -> float:
        p = rules.risk_price(m.mark, m.oracle)
        if p is None and pos is not None:
            p = rules.risk_price(pos.mark_price, pos.oracle_price)
        if p is None and pos is not None:
            p = pos.entry_price
        return p if p is not None else 0.0

    def _leg(self, pos: Position, m: Market) -> Leg:
        inst = m.instrument
        schedule = pos.maintenance or (inst.maintenance if inst is not None else None)
        if pos.maintenance_fallback and inst is not None:
            schedule = inst.maintenance
        fee = pos.fee_rate if pos.fee_rate is not None else (inst.fee_rate if inst else None)
        imr = pos.initial_margin_rate
        if imr is None and inst is not None:
            imr = inst.initial_margin_rate
        return Leg(
            symbol=pos.symbol,
            size=pos.size,
            entry_price=pos.entry_price,
            schedule=schedule,
            isolated=pos.margin_mode is MarginMode.ISOLATED,
            fee_rate=fee or 0.0,
            leverage=pos.leverage,
            initial_margin_rate=imr,
        )

    def _refresh(self, h: Holding) -> None:
        rules = h.scope.rules
        h.price = self._price_of(rules, h.market, h.position)
        h.value = h.leg.size * h.price
        h.mm = rules.maintenance(h.leg, h.price)

    def _seed_market(self, venue: str, pos: Position) -> Market:
        m = self.market(venue, pos.symbol)
        if m.mark is None and pos.mark_price is not None:
            m.mark = pos.mark_price
        if m.oracle is None and pos.oracle_price is not None:
            m.oracle = pos.oracle_price
        if m.funding_rate is None and pos.funding_rate is not None:
            m.funding_rate = pos.funding_rate
            m.funding_interval_hours = pos.funding_interval_hours
        return m

    def _add(self, acct: AccountState, pos: Position) -> ScopeState:
        m = self._seed_market(acct.key.venue, pos)
        if pos.margin_mode is MarginMode.ISOLATED:
            cash = (pos.isolated_margin or 0.0) - pos.size * pos.entry_price
            scope = ScopeState(
                ScopeKey(acct.key.venue, acct.key.account, pos.scope), acct.rules, cash
            )
            acct.isolated[pos.symbol] = scope
        else:
            scope = acct.cross
        h = Holding(pos, self._leg(pos, m), scope, m)
        self._refresh(h)
        scope.holdings[pos.symbol] = h
        m.holdings.append(h)
        scope.resum()
        return scope

    def _remove(self, acct: AccountState, symbol: str) -> ScopeState | None:
        for scope in acct.scopes():
            h = scope.holdings.pop(symbol, None)
            if h is not None:
                h.market.holdings.remove(h)
                if scope is not acct.cross:
                    del acct.isolated[symbol]
                scope.resum()
                return scope
        return None

    def _account(self, venue: str, account: str) -> AccountState:
        key = AccountKey(venue, account)
        acct = self.accounts.get(key)
        if acct is None:
            acct = self.accounts[key] = AccountState(key, rules_for(venue))
        return acct

    # -- the engine ------------------------------------------------------------------------
    def apply(self, event: Event) -> list[ScopeKey]:
        """Apply one event; return the scopes whose figures may have changed."""
        if isinstance(event, MarkPrice):
            return self._on_price(event)
        if isinstance(event, FundingRate):
            m = self.market(event.venue, event.symbol)
            m.funding_rate = event.rate
            m.funding_interval_hours = event.interval_hours
            return _unique(h.scope.key for h in m.holdings)
        if isinstance(event, AccountSnapshot):
            return self._on_snapshot(event)
        if isinstance(event, PositionUpdate):
            return self._on_position(event)
        if isinstance(event, BalanceUpdate):
            acct = self._account(event.venue, event.account)
            _set_cash(acct.cross, event.cross_collateral, event.cross_cash)
            return [acct.cross.key]
        if isinstance(event, InstrumentSpec):
            return self._on_instrument(event.instrument)
        if isinstance(event, FundingPayment):
            key = AccountKey(event.venue, event.account)
            self.funding_paid[key] = self.funding_paid.get(key, 0.0) + event.amount
            return []
        if isinstance(event, FeedStatus):
            self.feed_status[(event.venue, event.channel)] = event
            return []
        raise TypeError(f"not an event: {event!r}")

    def _on_price(self, ev: MarkPrice) -> list[ScopeKey]:
        m = self.market(ev.venue, ev.symbol)
        m.mark = ev.mark
        if ev.oracle is not None:
            m.oracle = ev.oracle
        if not m.holdings:
            return []
        touched: dict[ScopeKey, None] = {}
        for h in m.holdings:
            scope = h.scope
            old_v, old_mm = h.value, h.mm
            self._refresh(h)
            scope.value += h.value - old_v
            scope.mm += h.mm - old_mm
            scope.deltas += 1
            if scope.deltas >= RESUM_EVERY:
                scope.resum()
            touched[scope.key] = None
        return list(touched)

    def _on_snapshot(self, ev: AccountSnapshot) -> list[ScopeKey]:
        acct = self._account(ev.venue, ev.account)
        touched: dict[ScopeKey, None] = {s.key: None for s in acct.scopes()}
        for symbol in list(acct.cross.holdings) + list(acct.isolated):
            self._remove(acct, symbol)
        acct.venue_figures = (ev.venue_equity, ev.venue_free_collateral, ev.venue_maintenance)
        for pos in ev.positions:
            if pos.size == 0.0:
                continue
            self._remove(acct, pos.symbol)
            touched[self._add(acct, pos).key] = None
        _set_cash(acct.cross, ev.cross_collateral, None)
        touched[acct.cross.key] = None
        return list(touched)

    def _on_position(self, ev: PositionUpdate) -> list[ScopeKey]:
        acct = self._account(ev.venue, ev.account)
        touched: dict[ScopeKey, None] = {}
        old = self._remove(acct, ev.position.symbol)
        if old is not None:
            touched[old.key] = None
        if ev.position.size != 0.0:
            touched[self._add(acct, ev.position).key] = None
        if ev.cross_collateral is not None or ev.cross_cash is not None:
            _set_cash(acct.cross, ev.cross_collateral, ev.cross_cash)
            touched[acct.cross.key] = None
        # venue figures described the account before this change
        acct.venue_figures = (None, None, None)
        return list(touched)

    def _on_instrument(self, inst: Instrument) -> list[ScopeKey]:
        m = self.market(inst.venue, inst.symbol)
        m.instrument = inst
        if m.funding_interval_hours is None:
            m.funding_interval_hours = inst.funding_interval_hours
        touched: dict[ScopeKey, None] = {}
        for h in m.holdings:
            h.leg = self._leg(h.position, m)
            self._refresh(h)
            h.scope.resum()
            touched[h.scope.key] = None
        return list(touched)

    # -- queries ---------------------------------------------------------------------------
    def scope_state(self, key: ScopeKey) -> ScopeState | None:
        acct = self.accounts.get(key.account_key)
        if acct is None:
            return None
        if key.scope == CROSS_SCOPE:
            return acct.cross
        return acct.isolated.get(key.scope.split(":", 1)[1])

    def scope_keys(self) -> list[ScopeKey]:
        return [s.key for a in self.accounts.values() for s in a.scopes()]

    def aggregates(self, key: ScopeKey) -> tuple[float, float]:
        """(equity, maintenance) as maintained by deltas."""
        s = self.scope_state(key)
        if s is None:
            raise KeyError(key)
        return s.equity, s.mm

    def full_recompute(self, key: ScopeKey) -> tuple[float, float]:
        """(equity, maintenance) recomputed from every position, ignoring the aggregates."""
        s = self.scope_state(key)
        if s is None:
            raise KeyError(key)
        value = 0.0
        terms: list[float] = []
        mms: list[float] = []
        for h in s.holdings.values():
            inst_leg = self._leg(h.position, h.market)
            price = self._price_of(s.rules, h.market, h.position)
            terms.append(inst_leg.size * price)
            mms.append(s.rules.maintenance(inst_leg, price))
        value = math.fsum(terms)
        return s.cash + value, math.fsum(mms)

    def risk(self, key: ScopeKey, *, with_stress: bool = True) -> ScopeRisk | None:
        s = self.scope_state(key)
        if s is None:
            return None
        acct = self.accounts[key.account_key]
        rules = s.rules
        legs: list[LegState] = []
        warnings: list[str] = []
        entry_sum = 0.0
        for h in s.holdings.values():
            m = h.market
            rate_h: float | None = None
            if m.funding_rate is not None:
                interval = m.funding_interval_hours or rules.default_funding_interval_hours
                rate_h = m.funding_rate / interval
            fprice = rules.funding_price(m.mark, m.oracle)
            if h.leg.schedule is None:
                warnings.append(f"{h.leg.symbol}: maintenance schedule unknown")
            if m.mark is None and m.oracle is None and h.position.mark_price is None:
                warnings.append(f"{h.leg.symbol}: no price yet, valued at entry")
            entry_sum += h.leg.size * h.leg.entry_price
            legs.append(
                LegState(
                    leg=h.leg,
                    price=h.price,
                    funding_price=fprice if fprice is not None else h.price,
                    funding_rate_per_hour=rate_h,
                    isolated_margin=(s.cash + h.leg.size * h.leg.entry_price)
                    if h.leg.isolated
                    else None,
                    venue_liquidation_price=h.position.venue_liquidation_price,
                    venue_margin_used=h.position.venue_margin_used,
                )
            )
        veq, vfree, vmm = acct.venue_figures if s is acct.cross else (None, None, None)
        return compute_scope_risk(
            key,
            rules,
            legs,
            s.cash + entry_sum,
            equity=s.equity,
            maintenance=s.mm,
            with_stress=with_stress,
            venue_equity=veq,
            venue_free_collateral=vfree,
            venue_maintenance=vmm,
            warnings=tuple(warnings),
        )

    def risks(self, *, include_empty_cross: bool = False) -> list[ScopeRisk]:
        out: list[ScopeRisk] = []
        for acct in self.accounts.values():
            for s in acct.scopes():
                if s is acct.cross and not s.holdings and not include_empty_cross:
                    continue
                r = self.risk(s.key)
                if r is not None:
                    out.append(r)
        return out


def _unique(keys: Iterable[ScopeKey]) -> list[ScopeKey]:
    return list(dict.fromkeys(keys))


def _set_cash(scope: ScopeState, collateral: float | None, cash: float | None) -> None:
    if cash is not None:
        scope.cash = cash
    elif collateral is not None:
        scope.cash = collateral - math.fsum(
            h.leg.size * h.leg.entry_price for h in scope.holdings.values()
        )
