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

The per-tick fast path (:mod:`monitor.model.fastpath`): ``apply_fast(event)`` applies a price
tick in O(1) plus O(scopes it reports), holdings are refreshed lazily (each market counts its
ticks in ``ver``; a holding whose ``ver`` lags is brought up to date, by delta, the next time its
scope is read), and ``arm(key, thresholds)`` gives a scope a trigger band per instrument, kept in
two heaps per market (lowest price first, highest price first) with lazy deletion.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from monitor.margin.base import Leg, RuleSet
from monitor.margin.registry import rules_for
from monitor.margin.risk import (
    LegState,
    ScopeRisk,
    compute_scope_risk,
    is_liquidatable,
    liquidation_distance,
    margin_ratio,
)
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    Deleveraged,
    Event,
    FeedStatus,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.fastpath import (
    LegBound,
    QuickRisk,
    Thresholds,
    assess,
    headline_zone,
    maintenance_slope,
    unit_leg,
    zone,
)
from monitor.model.instruments import Instrument, MaintenanceSchedule, MarginMode
from monitor.model.positions import CROSS_SCOPE, AccountKey, Position, ScopeKey
from monitor.model.venues import rule_set_of

RESUM_EVERY = 4096


class Market:
    """One instrument's market state. ``ver`` counts the price changes seen (the lazy refresh
    of holdings compares it); ``lows``/``highs`` are the trigger heaps of the armed scopes
    holding it (:class:`Band` entries: ``-low`` and ``high``, each with its scope and the
    scope's ``band_seq`` when installed; an entry is live while ``seq == scope.band_seq``);
    ``unarmed`` the holdings whose scope has no band and which this market's ticks have not
    reported since (the next tick reports them, once)."""

    __slots__ = (
        "funding_interval_hours",
        "funding_rate",
        "highs",
        "holdings",
        "instrument",
        "lows",
        "mark",
        "oracle",
        "priced",
        "rate_h",
        "slopes",
        "symbol",
        "unarmed",
        "venue",
        "ver",
    )

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue = venue
        self.symbol = symbol
        self.mark: float | None = None
        self.oracle: float | None = None
        self.priced = False
        """A price event set ``mark`` (not only a snapshot's typed-in ``mark_price``)."""
        self.funding_rate: float | None = None
        self.funding_interval_hours: float | None = None
        self.instrument: Instrument | None = None
        self.holdings: list[Holding] = []
        self.ver = 0
        #: (funding_rate, interval, funding_rate / interval) of the last ``risk`` division
        self.rate_h: tuple[float, float, float] | None = None
        self.lows: list[Band] = []
        self.highs: list[Band] = []
        self.unarmed: dict[Holding, None] = {}
        # (id(schedule), isolated, fee rate) → (schedule, slope per unit of size, jump)
        self.slopes: dict[
            tuple[int, bool, float], tuple[MaintenanceSchedule | None, float, float]
        ] = {}


class Band(float):
    """One entry of a market's trigger heap: the bound itself (``-low`` in ``lows``, ``high``
    in ``highs``), carrying its ``scope`` and the scope's ``band_seq`` when it was installed
    (``seq``). A float, so ``heapq`` compares entries in C; 64 bytes where a ``(bound, seq,
    scope)`` tuple and its float take 96 (two entries a holding: 64 B a position less).
    Entries with equal bounds are ordered by ``seq`` where the order is visible
    (``Portfolio._on_price_fast``), as the tuples were."""

    __slots__ = ("scope", "seq")
    scope: ScopeState
    seq: int


def _armed_order(e: Band) -> tuple[float, int]:
    return (e, e.seq)


class Holding:
    """One position inside the engine, with its cached contributions to its scope (as of
    its market's tick ``ver``)."""

    __slots__ = ("leg", "market", "mm", "position", "price", "scope", "value", "ver")

    def __init__(self, position: Position, leg: Leg, scope: ScopeState, market: Market) -> None:
        self.position = position
        self.leg = leg
        self.scope = scope
        self.market = market
        self.price = 0.0
        self.value = 0.0
        self.mm = 0.0
        self.ver = market.ver


class ScopeState:
    """One margin pool. ``band_seq`` is non-zero while the scope is armed (fast path)."""

    __slots__ = (
        "assessed",
        "band_seq",
        "cash",
        "deltas",
        "holdings",
        "key",
        "mm",
        "rules",
        "value",
        "zone",
    )

    def __init__(self, key: ScopeKey, rules: RuleSet, cash: float) -> None:
        self.key = key
        self.rules = rules
        self.cash = cash
        self.holdings: dict[str, Holding] = {}
        self.value = 0.0
        self.mm = 0.0
        self.deltas = 0
        self.band_seq = 0
        self.zone: int | None = None
        self.assessed: _Assessed | None = None
        """What ``rearm`` found when it handed the scope back for a full evaluation: reused by
        the ``arm`` that follows when nothing it depends on changed in between."""

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
        self.cross = ScopeState(ScopeKey.of(key, CROSS_SCOPE), rules, 0.0)
        self.isolated: dict[str, ScopeState] = {}
        self.venue_figures: tuple[float | None, float | None, float | None] = (None, None, None)

    def scopes(self) -> Iterator[ScopeState]:
        yield self.cross
        yield from self.isolated.values()


class Portfolio:
    """Owns all state; ``apply`` is the only mutator."""

    def __init__(self, rule_sets: Mapping[str, str] | None = None) -> None:
        """``rule_sets`` maps a venue name that is not itself a rule set (a ccxt exchange
        priced with the ``generic`` rules, say ``kraken``) to the rule set of its accounts."""
        self.rule_sets: Mapping[str, str] = dict(rule_sets or {})
        self.markets: dict[tuple[str, str], Market] = {}
        self.accounts: dict[AccountKey, AccountState] = {}
        self.funding_paid: dict[AccountKey, float] = {}
        self.feed_status: dict[tuple[str, str], FeedStatus] = {}
        self._seq = itertools.count(1)
        self._undo: _Undo | None = None  # the undo of the event being applied
        self.crossing: dict[Market, None] = {}
        """Markets whose last price left bands not all reported yet (``apply_fast`` with a
        ``limit``): :meth:`cross` reports the rest."""

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

    def _leg(self, pos: Position, m: Market, instrument: Instrument | None = None) -> Leg:
        """The position as the margin rules see it, filled in from the market's instrument
        (``instrument``: from that specification instead)."""
        inst = m.instrument if instrument is None else instrument
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
        """``h`` at its market's latest price. Atomic: every figure that can raise (the
        maintenance of an odd tier) is computed before any is assigned, so a refresh that
        raises leaves the holding as its scope's aggregates counted it (``_sync`` adds the
        difference only when this returns)."""
        rules = h.scope.rules
        price = self._price_of(rules, h.market, h.position)
        mm = rules.maintenance(h.leg, price)
        h.price, h.value, h.mm, h.ver = price, h.leg.size * price, mm, h.market.ver

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
            scope = ScopeState(ScopeKey.of(acct.key, pos.scope), acct.rules, cash)
            acct.isolated[pos.symbol] = scope
        else:
            scope = acct.cross
        h = Holding(pos, self._leg(pos, m), scope, m)
        self._refresh(h)
        scope.holdings[pos.symbol] = h
        m.holdings.append(h)
        if self._undo is not None:
            self._undo.members.append((m, -1, h))
        scope.resum()
        _disarm(scope)
        return scope

    def _remove(self, acct: AccountState, symbol: str) -> ScopeState | None:
        for scope in acct.scopes():
            h = scope.holdings.pop(symbol, None)
            if h is not None:
                members = h.market.holdings
                at = members.index(h)
                del members[at]
                if self._undo is not None:
                    self._undo.members.append((h.market, at, h))
                h.market.unarmed.pop(h, None)
                if scope is not acct.cross:
                    del acct.isolated[symbol]
                    scope.band_seq = 0
                else:
                    _disarm(scope)
                scope.resum()
                return scope
        return None

    def drop_account(self, key: AccountKey) -> list[ScopeKey]:
        """Forget an account (taken out of the configuration); return its scopes, now gone
        (``risk`` returns None for them)."""
        acct = self.accounts.get(key)
        if acct is None:
            return []
        keys = [s.key for s in acct.scopes()]
        for symbol in [*acct.cross.holdings, *acct.isolated]:
            self._remove(acct, symbol)
        _disarm(acct.cross)
        del self.accounts[key]
        return keys

    def _account(self, venue: str, account: str) -> AccountState:
        key = AccountKey(venue, account)
        acct = self.accounts.get(key)
        if acct is None:
            rules = rules_for(self.rule_sets.get(venue) or rule_set_of(venue))
            acct = self.accounts[key] = AccountState(key, rules)
        return acct

    # -- the engine ------------------------------------------------------------------------
    def apply(self, event: Event) -> list[ScopeKey]:
        """Apply one event; return the scopes whose figures may have changed.

        Atomic per event: when applying it raises (a rule set's figure that cannot be
        computed, ``math.fsum`` overflowing on an absurd position...), every account, scope,
        holding and market it touched is put back as it was before, then the exception
        propagates (the engine quarantines the event; its account keeps its last figures)."""
        undo = self._undo_for(event)
        if undo is None:
            return self._apply(event)
        self._undo = undo
        try:
            return self._apply(event)
        except BaseException:
            undo.restore()
            raise
        finally:
            self._undo = None

    def _undo_for(self, event: Event) -> _Undo | None:
        """What ``event`` may change, saved before it is applied; None for the events whose
        application cannot fail half-way (single assignments), for a price, which
        ``_on_price`` undoes itself as it goes (cheaper: no pass before), and for an
        instrument, which ``_on_instrument`` computes in full before it changes anything."""
        if isinstance(event, AccountSnapshot | PositionUpdate | BalanceUpdate):
            undo = _Undo(self)
            acct = self.accounts.get(AccountKey(event.venue, event.account))
            undo.account(AccountKey(event.venue, event.account))
            if isinstance(event, BalanceUpdate):
                return undo
            if acct is not None:
                for s in acct.scopes():
                    for h in s.holdings.values():
                        undo.market(h.market)
            positions = event.positions if isinstance(event, AccountSnapshot) else (event.position,)
            for pos in positions:
                undo.market_at((event.venue, pos.symbol))
            return undo
        return None

    def _apply(self, event: Event) -> list[ScopeKey]:
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
        if isinstance(event, Deleveraged):
            return []  # the position change itself arrives as an update
        raise TypeError(f"not an event: {event!r}")

    def _on_price(self, ev: MarkPrice) -> list[ScopeKey]:
        m = self.market(ev.venue, ev.symbol)
        before = (m.mark, m.oracle, m.priced)
        m.mark = ev.mark
        m.priced = True
        if ev.oracle is not None:
            m.oracle = ev.oracle
        if not m.holdings:
            return []
        touched: dict[ScopeKey, None] = {}
        # what each step changes, to be put back (last first) if a later one raises
        done: list[tuple[Holding, float, float, float, int, float, float, int]] = []
        try:
            for h in m.holdings:
                scope = h.scope
                old_v, old_mm = h.value, h.mm
                done.append((h, h.price, old_v, old_mm, h.ver, scope.value, scope.mm, scope.deltas))
                self._refresh(h)
                _bump(scope, h.value - old_v, h.mm - old_mm)
                touched[scope.key] = None
        except BaseException:
            for h, price, value, mm, ver, s_value, s_mm, s_deltas in reversed(done):
                h.price, h.value, h.mm, h.ver = price, value, mm, ver
                scope = h.scope
                scope.value, scope.mm, scope.deltas = s_value, s_mm, s_deltas
            m.mark, m.oracle, m.priced = before
            raise
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
        if m.instrument == inst:
            return []  # the same specification again (every reconnect): nothing changes
        # every figure that can raise (a maintenance schedule, a sum that overflows) is
        # computed before anything changes, then assigned: atomic without saving the holders
        # first (a market may have 100,000 of them). A scope holds one position per market.
        new: list[tuple[Holding, Leg, float, float, float, float, float]] = []
        for h in m.holdings:
            rules = h.scope.rules
            leg = self._leg(h.position, m, inst)
            price = self._price_of(rules, m, h.position)
            value = leg.size * price
            mm = rules.maintenance(leg, price)
            held = h.scope.holdings.values()
            total = math.fsum(value if o is h else o.value for o in held)
            total_mm = math.fsum(mm if o is h else o.mm for o in held)
            new.append((h, leg, price, value, mm, total, total_mm))
        m.instrument = inst
        if m.funding_interval_hours is None:
            m.funding_interval_hours = inst.funding_interval_hours
        touched: dict[ScopeKey, None] = {}
        for h, leg, price, value, mm, total, total_mm in new:
            h.leg, h.price, h.value, h.mm, h.ver = leg, price, value, mm, m.ver
            scope = h.scope
            scope.value, scope.mm, scope.deltas = total, total_mm, 0
            _disarm(scope)
            touched[scope.key] = None
        return list(touched)

    # -- the fast path ---------------------------------------------------------------------
    def apply_fast(self, event: Event, limit: int | None = None) -> list[ScopeKey]:
        """Apply one event on the fast path; return the scopes that need a decision now.

        Contract (see :mod:`monitor.model.fastpath`):

        * A ``MarkPrice`` stores the price and returns the **armed** scopes holding that
          instrument whose band the new risk price left (they are disarmed) and every
          **unarmed** scope holding it that this instrument's ticks have not reported since
          the scope was last disarmed. Holdings are not refreshed here: ``quick``, ``risk``,
          ``aggregates`` and ``scope_state`` bring a scope up to date when it is read. Cost:
          O(1) plus O(log n) per scope reported. With ``limit``, at most about ``limit``
          band entries are taken off the heaps (entries with the bound of the last one taken
          go with it): the market is then in :attr:`crossing` and :meth:`cross` reports the
          rest, nearest bound first (a crash's first price crosses the bands of every holder
          of a popular instrument: 210,000 at 1,000,000 positions).
        * A ``FundingRate`` only updates the market (returns ``[]``): funding figures are not
          part of the bands; re-evaluate them on a slower cadence (``risk`` of every scope).
        * Every other event goes through :meth:`apply`, which disarms the scopes it touches,
          and returns what ``apply`` returns.

        A reported scope is the caller's to decide and re-``arm``: it is reported once by each
        of its instruments (by the first tick of each after it lost its band), not on every
        tick, until it is disarmed again (an event that changes it, a band it leaves,
        :meth:`disarm`). ``apply`` and ``apply_fast`` may be mixed.
        """
        if isinstance(event, MarkPrice):
            return self._on_price_fast(event, limit)
        if isinstance(event, FundingRate):
            m = self.market(event.venue, event.symbol)
            m.funding_rate = event.rate
            m.funding_interval_hours = event.interval_hours
            return []
        return self.apply(event)

    def unchanged(self, ev: MarkPrice | FundingRate) -> bool:
        """Whether applying ``ev`` would leave its market as it is: a price event repeating a
        mark (and oracle, when it has one) the market already has from a price event, or a
        funding event repeating its rate and interval. No figure of a holder can change, so
        nothing needs refreshing (venues push unchanged values: a keepalive, a quiet book).
        A market not known yet is not unchanged. O(1)."""
        m = self.markets.get((ev.venue, ev.symbol))
        if m is None:
            return False
        if isinstance(ev, MarkPrice):
            return m.priced and m.mark == ev.mark and (ev.oracle is None or m.oracle == ev.oracle)
        return m.funding_rate == ev.rate and m.funding_interval_hours == ev.interval_hours

    def _on_price_fast(self, ev: MarkPrice, limit: int | None = None) -> list[ScopeKey]:
        m = self.markets.get((ev.venue, ev.symbol))
        if m is None:
            m = self.market(ev.venue, ev.symbol)
        m.mark = ev.mark
        m.priced = True
        if ev.oracle is not None:
            m.oracle = ev.oracle
        m.ver += 1
        holdings = m.holdings
        if not holdings:
            return []
        price = holdings[0].scope.rules.risk_price(m.mark, m.oracle)
        if price is None:  # pragma: no cover - a tick always carries a mark
            return []
        out: list[ScopeKey] = []
        unarmed = m.unarmed
        if unarmed:
            out.extend(dict.fromkeys(h.scope.key for h in unarmed))
        self._cross(m, price, out, limit)
        if unarmed:
            # reported (with the scopes ``_cross`` just disarmed): this market's ticks do not
            # report them again until they are disarmed again. Reported on every tick, a
            # crash's holders waiting for their evaluation cost each tick of a popular
            # instrument O(holders) (13,000 at 100,000 positions; 210,000 at 10⁶)
            unarmed.clear()
        return out

    def cross(self, limit: int) -> list[ScopeKey]:
        """The scopes whose band an earlier price left and ``apply_fast`` did not report
        (over its ``limit``): those the market's current price is still out of, nearest
        bound first, taking about ``limit`` heap entries at most (:attr:`crossing` keeps
        the markets with more)."""
        out: list[ScopeKey] = []
        for m in list(self.crossing):
            if limit <= 0:
                break
            del self.crossing[m]
            price = None
            if m.holdings and m.mark is not None:
                price = m.holdings[0].scope.rules.risk_price(m.mark, m.oracle)
            if price is not None:
                limit -= self._cross(m, price, out, limit)
        return out

    def _cross(self, m: Market, price: float, out: list[ScopeKey], limit: int | None) -> int:
        """Report (``out``) and disarm the scopes whose band ``price`` is out of, at most
        about ``limit`` heap entries (None: all); return the entries taken. Equal bounds go
        together, in the order their scopes were armed."""
        budget = math.inf if limit is None else limit
        lows, highs = m.lows, m.highs
        # ``lows`` holds -low: a price below a low is an entry below -price
        taken = _take(lows, -price, budget, out)
        if taken < budget:
            taken += _take(highs, price, budget - taken, out)
        if (lows and lows[0] < -price) or (highs and highs[0] < price):
            self.crossing[m] = None
        else:
            self.crossing.pop(m, None)
        return taken

    def _bounds(self, s: ScopeState) -> list[LegBound]:
        rules = s.rules
        bounds: list[LegBound] = []
        for h in s.holdings.values():
            leg = h.leg
            sched = leg.schedule
            slopes = h.market.slopes
            ck = (id(sched), leg.isolated, leg.fee_rate)
            hit = slopes.get(ck)
            if hit is None or hit[0] is not sched:
                if len(slopes) > 2 * len(h.market.holdings) + 8:
                    slopes.clear()
                per_qty, jump = maintenance_slope(rules, unit_leg(leg))
                hit = slopes[ck] = (sched, per_qty, jump)
            bounds.append(LegBound(leg, h.price, hit[1] * leg.qty, hit[2]))
        return bounds

    def arm(self, key: ScopeKey, thresholds: Thresholds) -> float | None:
        """Give the scope a trigger band around the current prices (see ``apply_fast``) and
        record which side of each threshold it is on (``crossed``); return the band's relative
        width ``w`` (0: any price change reports the scope), None when there is no scope."""
        s = self._state(key)
        if s is None:
            return None
        self._sync(s)
        got, s.assessed = s.assessed, None
        if got is not None and got.thresholds == thresholds and got.inputs == _inputs(s):
            # ``rearm`` assessed these very figures (a crash: handed back, evaluated, armed)
            w, s.zone = got.band, got.zone
        else:
            w, s.zone = assess(s.rules, self._bounds(s), s.equity, s.mm, thresholds)
        self._install(s, w)
        return w

    def _install(self, s: ScopeState, w: float) -> None:
        seq = next(self._seq)
        s.band_seq = seq
        for h in s.holdings.values():
            m = h.market
            unarmed = m.unarmed
            if unarmed:
                unarmed.pop(h, None)
                if not unarmed:
                    # a dict keeps its table when emptied by pops: a market whose 100,000
                    # holdings were all unarmed at start would keep ~4 MB for none
                    unarmed.clear()
            lo = Band(-(h.price * (1.0 - w)))
            lo.scope, lo.seq = s, seq
            hi = Band(h.price * (1.0 + w))
            hi.scope, hi.seq = s, seq
            heapq.heappush(m.lows, lo)
            heapq.heappush(m.highs, hi)
            # stale entries (a re-armed scope's old band) go once they are a fifth of the
            # heap: at most 1.25 entries a holding per side (56 B each). Each side is checked:
            # in a trend the fast path pops one side only (a falling price empties ``lows``),
            # and the other would keep every re-arm's stale entry
            held = len(m.holdings)
            limit = held + (held >> 2) + 16
            if len(m.lows) > limit or len(m.highs) > limit:
                m.lows = [e for e in m.lows if e.scope.band_seq == e.seq]
                m.highs = [e for e in m.highs if e.scope.band_seq == e.seq]
                heapq.heapify(m.lows)
                heapq.heapify(m.highs)

    def rearm(self, key: ScopeKey, thresholds: Thresholds) -> bool:
        """For a scope ``apply_fast`` reported: when no threshold was crossed since it was
        last armed (see ``crossed``), give it a new band and return False (the alert decision
        stands); otherwise leave it unarmed and return True (evaluate it, then ``arm`` it).
        One pass over the scope instead of ``crossed`` then ``arm``."""
        s = self._state(key)
        if s is None or s.zone is None:
            return True
        self._sync(s)
        bits, mask = headline_zone(s.equity, s.mm, thresholds)
        if bits != s.zone & mask:
            # an equity or margin-ratio threshold was crossed (a crash: most scopes): the
            # decision changes whatever the distances say, so they are not assessed here;
            # ``arm`` assesses the scope once it is evaluated
            return True
        w, now = assess(s.rules, self._bounds(s), s.equity, s.mm, thresholds)
        if now != s.zone:
            s.assessed = _Assessed(thresholds, _inputs(s), w, now)
            return True
        self._install(s, w)
        return False

    def quick_ratio(self, key: ScopeKey) -> float:
        """The scope's margin ratio (maintenance / equity, a fraction) from its quick figures
        at the latest prices: ``inf`` when equity ≤ 0, NaN for a scope the portfolio does not
        hold. O(1) after the sync ``rearm`` did."""
        equity, mm = self.quick_figures(key)
        if math.isnan(equity):
            return math.nan
        return mm / equity if equity > 0.0 else math.inf

    def quick_figures(self, key: ScopeKey) -> tuple[float, float]:
        """The scope's (equity, maintenance margin), quote, from its quick figures at the
        latest prices (the aggregates its bands are checked with); (NaN, NaN) for a scope the
        portfolio does not hold. O(1) after the sync ``rearm`` did; what orders a scope a
        price moved among the owed work, by where it is now rather than where its last
        evaluation left it."""
        s = self._state(key)
        if s is None:
            return math.nan, math.nan
        self._sync(s)
        return s.equity, s.mm

    def crossed(self, key: ScopeKey, thresholds: Thresholds) -> bool:
        """Whether the scope's quick figures crossed any of ``thresholds`` since it was last
        armed (with the same thresholds); True when it never was, or changed since (a
        position or balance event), or does not exist any more."""
        s = self._state(key)
        if s is None or s.zone is None:
            return True
        self._sync(s)
        return zone(s.rules, self._bounds(s), s.equity, s.mm, thresholds) != s.zone

    def disarm(self, key: ScopeKey) -> None:
        """Drop the scope's band (the next tick of each of its instruments reports it)."""
        s = self._state(key)
        if s is not None:
            _disarm(s, changed=False)

    def armed(self, key: ScopeKey) -> bool:
        s = self._state(key)
        return s is not None and s.band_seq != 0

    def quick(self, key: ScopeKey) -> QuickRisk | None:
        """The scope's quick figures at the latest prices, O(positions in the scope)."""
        s = self._state(key)
        if s is None:
            return None
        self._sync(s)
        equity, mm = s.equity, s.mm
        rules = s.rules
        nearest: float | None = None
        liquidatable = is_liquidatable(equity, mm)
        for h in s.holdings.values():
            p = h.price
            liq = rules.liquidation_price(h.leg, p, equity, mm)
            dist = liquidation_distance(h.leg.size, p, liq, liquidatable)
            if dist is not None and (nearest is None or dist < nearest):
                nearest = dist
        return QuickRisk(
            key=key,
            equity=equity,
            maintenance_margin=mm,
            margin_ratio=margin_ratio(mm, equity),
            nearest_liquidation_distance=nearest,
            liquidatable=liquidatable,
            positions=len(s.holdings),
        )

    # -- queries ---------------------------------------------------------------------------
    def scope_state(self, key: ScopeKey) -> ScopeState | None:
        """The scope's engine state, its holdings brought up to the latest prices."""
        s = self._state(key)
        if s is not None:
            self._sync(s)
        return s

    def _sync(self, s: ScopeState) -> None:
        """Refresh, by delta, the holdings whose market ticked since (fast path)."""
        for h in s.holdings.values():
            if h.ver != h.market.ver:
                old_v, old_mm = h.value, h.mm
                self._refresh(h)
                _bump(s, h.value - old_v, h.mm - old_mm)

    def _state(self, key: ScopeKey) -> ScopeState | None:
        acct = self.accounts.get(key.account_key)
        if acct is None:
            return None
        if key.scope == CROSS_SCOPE:
            return acct.cross
        _, sep, symbol = key.scope.partition(":")
        if not sep:
            return None  # not a pool the portfolio holds (the venue's own ratio)
        return acct.isolated.get(symbol)

    def unpriced(self, key: ScopeKey) -> list[str]:
        """Symbols of the scope no price event has priced yet (valued at the snapshot's own
        ``mark_price``, or at entry): ``[]`` when every position has a market price."""
        s = self._state(key)
        if s is None:
            return []
        return [h.leg.symbol for h in s.holdings.values() if not h.market.priced]

    def scopes_holding(self, venue: str, symbol: str) -> list[ScopeKey]:
        """The scopes holding a position in ``(venue, symbol)`` (each once)."""
        m = self.markets.get((venue, symbol))
        if m is None:
            return []
        return list(dict.fromkeys(h.scope.key for h in m.holdings))

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
                last = m.rate_h  # one float per market, not per holding, in the figures kept
                if last is not None and last[0] is m.funding_rate and last[1] == interval:
                    rate_h = last[2]
                else:
                    rate_h = m.funding_rate / interval
                    m.rate_h = (m.funding_rate, interval, rate_h)
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


#: what an event may change in a :class:`Market` besides its holdings
_MARKET_FIELDS = (
    "mark",
    "oracle",
    "priced",
    "funding_rate",
    "funding_interval_hours",
    "instrument",
    "ver",
)


class _Undo:
    """The state one event may change, saved before it is applied and put back by
    :meth:`restore` when applying it raised (``Portfolio.apply`` is atomic per event).

    Objects keep their identity (the fast path's heaps hold scopes): their fields and
    containers are saved and written back; accounts and markets the event created are
    removed. The trigger heaps are never changed by ``apply`` (only by ``arm`` and the fast
    path), so a scope's restored ``band_seq`` makes its heap entries live again."""

    __slots__ = (
        "accounts",
        "holdings",
        "markets",
        "members",
        "new_accounts",
        "new_markets",
        "portfolio",
        "scopes",
    )

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.new_markets: list[tuple[str, str]] = []
        self.new_accounts: list[AccountKey] = []
        # id → saved fields; the object itself is the first item
        self.markets: dict[int, tuple[Market, tuple[object, ...]]] = {}
        # the markets' membership changes, in order, journaled by ``Portfolio._add`` (index
        # -1: appended) and ``_remove`` (the index it was deleted at): undone in reverse, so
        # each market's holdings list is the same list in the same order again. A journal,
        # not a copy: a market held by 100,000 positions would be copied for every snapshot
        self.members: list[tuple[Market, int, Holding]] = []
        self.accounts: dict[
            AccountKey, tuple[AccountState, dict[str, ScopeState], tuple[float | None, ...]]
        ] = {}
        self.scopes: dict[
            int, tuple[ScopeState, float, dict[str, Holding], float, float, int, int, int | None]
        ] = {}
        self.holdings: dict[int, tuple[Holding, Leg, float, float, float, int, bool]] = {}

    def market_at(self, key: tuple[str, str]) -> None:
        m = self.portfolio.markets.get(key)
        if m is None:
            self.new_markets.append(key)
        else:
            self.market(m)

    def market(self, m: Market) -> None:
        """Save the market's prices and instrument (its holdings are journaled)."""
        if id(m) not in self.markets:
            self.markets[id(m)] = (m, tuple(getattr(m, name) for name in _MARKET_FIELDS))

    def account(self, key: AccountKey) -> None:
        acct = self.portfolio.accounts.get(key)
        if acct is None:
            self.new_accounts.append(key)
            return
        self.accounts[key] = (acct, dict(acct.isolated), acct.venue_figures)
        for s in acct.scopes():
            self.scope(s, holdings=True)

    def scope(self, s: ScopeState, *, holdings: bool) -> None:
        """Save the scope's figures and holdings; ``holdings``: also each holding's figures
        (and whether it is unarmed: disarming the scope marks them all)."""
        if id(s) not in self.scopes:
            self.scopes[id(s)] = (
                s,
                s.cash,
                dict(s.holdings),
                s.value,
                s.mm,
                s.deltas,
                s.band_seq,
                s.zone,
            )
        if holdings:
            for h in s.holdings.values():
                self.holding(h)

    def holding(self, h: Holding) -> None:
        if id(h) not in self.holdings:
            self.holdings[id(h)] = (
                h,
                h.leg,
                h.price,
                h.value,
                h.mm,
                h.ver,
                h in h.market.unarmed,
            )

    def restore(self) -> None:
        p = self.portfolio
        for m, fields in self.markets.values():
            for name, value in zip(_MARKET_FIELDS, fields, strict=True):
                setattr(m, name, value)
        for m, at, h in reversed(self.members):
            if at < 0:  # added by the event: the last of its market's holdings again
                m.holdings.pop()
                m.unarmed.pop(h, None)
            else:
                m.holdings.insert(at, h)
        for mkey in self.new_markets:
            new = p.markets.pop(mkey, None)
            if new is not None:
                new.unarmed.clear()
        for akey in self.new_accounts:
            p.accounts.pop(akey, None)
        for acct, isolated, figures in self.accounts.values():
            acct.isolated.clear()
            acct.isolated.update(isolated)
            acct.venue_figures = figures  # type: ignore[assignment]
        for s, cash, holdings, value, mm, deltas, band_seq, zone_ in self.scopes.values():
            s.cash, s.value, s.mm, s.deltas, s.band_seq, s.zone = (
                cash,
                value,
                mm,
                deltas,
                band_seq,
                zone_,
            )
            s.holdings.clear()
            s.holdings.update(holdings)
        for h, leg, price, value, mm, ver, unarmed in self.holdings.values():
            h.leg, h.price, h.value, h.mm, h.ver = leg, price, value, mm, ver
            if unarmed:
                h.market.unarmed[h] = None
            else:
                h.market.unarmed.pop(h, None)


def _unique(keys: Iterable[ScopeKey]) -> list[ScopeKey]:
    return list(dict.fromkeys(keys))


def _bump(scope: ScopeState, dv: float, dmm: float) -> None:
    """Add one holding's change to its scope's aggregates; re-sum the scope every
    ``RESUM_EVERY`` deltas, and at once when an aggregate lost more than half its magnitude
    (the cancellation would leave an error relative to the old, larger value)."""
    old_v, old_mm = scope.value, scope.mm
    scope.value = v = old_v + dv
    scope.mm = mm = old_mm + dmm
    scope.deltas += 1
    if scope.deltas >= RESUM_EVERY or abs(v) < 0.5 * abs(old_v) or abs(mm) < 0.5 * abs(old_mm):
        scope.resum()


class _Assessed(NamedTuple):
    """One ``assess`` of a scope: its arguments (``thresholds``; ``inputs``, see
    :func:`_inputs`) and its result (``band``, ``zone``)."""

    thresholds: Thresholds
    inputs: tuple[object, ...]
    band: float
    zone: int


def _inputs(s: ScopeState) -> tuple[object, ...]:
    """Everything ``assess`` reads of a scope besides its thresholds and rules: equity,
    maintenance, and each holding's leg and risk price, in order. Tuples compare items by
    identity first, so the very NaN object kept since ``rearm`` compares equal and its
    assessment is reused: sound, as ``assess`` is a pure function of these (a NaN read anew
    is another object and is assessed again)."""
    out: list[object] = [s.cash, s.value, s.mm]
    for h in s.holdings.values():
        out.append(h.leg)
        out.append(h.price)
    return tuple(out)


def _take(heap: list[Band], below: float, budget: float, out: list[ScopeKey]) -> int:
    """Pop the entries of ``heap`` below ``below``, about ``budget`` of them at most (those
    equal to the last one taken go with it), and report the scopes of the live ones
    (:func:`_left`); return the entries popped."""
    hits: list[Band] = []
    last: Band | None = None
    taken = 0
    while heap and heap[0] < below:
        if taken >= budget and heap[0] != last:
            break
        e = last = heapq.heappop(heap)
        taken += 1
        if e.scope.band_seq == e.seq:
            hits.append(e)
    _left(hits, out)
    return taken


def _left(hits: list[Band], out: list[ScopeKey]) -> None:
    """Disarm the scopes of the live entries ``hits`` (popped in bound order) and report them,
    equal bounds in the order their scopes were armed (``seq``)."""
    if len(hits) > 1:
        hits.sort(key=_armed_order)  # stable; the bounds are already in order
    for e in hits:
        scope = e.scope
        _disarm(scope, changed=False)
        out.append(scope.key)


def _disarm(scope: ScopeState, *, changed: bool = True) -> None:
    """Drop the scope's band: the next tick of each of its instruments reports it (once).
    ``changed``: its positions or balance changed, so its recorded zone means nothing."""
    scope.band_seq = 0
    if changed:
        scope.zone = None
    for h in scope.holdings.values():
        h.market.unarmed[h] = None


def _set_cash(scope: ScopeState, collateral: float | None, cash: float | None) -> None:
    _disarm(scope)
    if cash is not None:
        scope.cash = cash
    elif collateral is not None:
        scope.cash = collateral - math.fsum(
            h.leg.size * h.leg.entry_price for h in scope.holdings.values()
        )
