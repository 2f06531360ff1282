"""``Portfolio.apply`` is atomic per event: an event that raises half-way (``math.fsum``
overflowing on an absurd position, the case the engine quarantines) leaves every scope,
aggregate, holding, market and trigger band exactly as it was before.

The absurd figures: a size of 1e303 marked at 1.7e5 is worth 1.7e308 (finite, under the
largest double ≈ 1.797e308); two of them summed overflow ``math.fsum``, which raises
``OverflowError`` ("intermediate overflow") rather than returning inf."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from monitor.margin.registry import VENUES
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.fastpath import Thresholds
from monitor.model.instruments import Instrument, MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

from ..margin.strategies import schedules, snapshots
from .test_portfolio import SYMBOLS, events

V = "generic"
HUGE = 1e303  # × 1.7e5 = 1.7e308: one is finite, two overflow a sum
THRESHOLDS = Thresholds(margin_ratio=(0.5, 0.9), equity=(100.0,), distance=(0.05,))


def huge(
    symbol: str, size: float, entry: float, mark: float, rate: float | None = 0.01
) -> Position:
    return Position(
        symbol,
        size,
        entry,
        maintenance=MaintenanceSchedule.flat(rate) if rate is not None else None,
        mark_price=mark,
        oracle_price=mark,
    )


def fingerprint(p: Portfolio) -> dict[str, Any]:
    """Everything ``apply`` may change, floats by ``repr`` (NaN equals itself), objects by
    identity where identity matters (holdings in the markets' lists and trigger sets)."""
    scopes: dict[ScopeKey, Any] = {}
    for key in p.scope_keys():
        s = p.scope_state(key)
        assert s is not None
        scopes[key] = (
            repr(p.aggregates(key)),
            recomputed(p, key),
            repr((s.cash, s.value, s.mm, s.deltas)),
            p.armed(key),
            s.band_seq,
            s.zone,
            {
                sym: (id(h), h.position, h.leg, repr((h.price, h.value, h.mm)), h.ver)
                for sym, h in s.holdings.items()
            },
        )
    markets = {
        k: (
            repr((m.mark, m.oracle, m.funding_rate, m.funding_interval_hours)),
            m.priced,
            m.instrument,
            m.ver,
            [id(h) for h in m.holdings],
            sorted(id(h) for h in m.unarmed),
        )
        for k, m in p.markets.items()
    }
    accounts = {k: repr(a.venue_figures) for k, a in p.accounts.items()}
    return {"scopes": scopes, "markets": markets, "accounts": accounts}


def recomputed(p: Portfolio, key: ScopeKey) -> str:
    try:
        return repr(p.full_recompute(key))
    except (OverflowError, ValueError) as exc:  # a state absurd enough not to sum
        return repr(exc)


def raises_and_changes_nothing(p: Portfolio, ev: Event) -> BaseException:
    before = fingerprint(p)
    with pytest.raises((OverflowError, ValueError)) as info:
        p.apply(ev)
    assert fingerprint(p) == before
    return info.value


def armed_everywhere(p: Portfolio) -> None:
    for key in p.scope_keys():
        p.arm(key, THRESHOLDS)


# -- one test per kind of event ----------------------------------------------------------------
def test_a_snapshot_overflowing_on_its_second_position_leaves_the_account_as_it_was() -> None:
    p = Portfolio()
    p.apply(AccountSnapshot(V, "a", 1000.0, (huge("BTC", 1.0, 100.0, 100.0),)))
    p.apply(AccountSnapshot(V, "b", 1000.0, (huge("BTC", -2.0, 100.0, 100.0),)))
    armed_everywhere(p)
    # the snapshot first removes BTC, then adds S0 (1.7e308) and fails summing S1 (+1.7e308)
    bad = AccountSnapshot(V, "a", 5.0, (huge("S0", HUGE, 1.0, 1.7e5), huge("S1", HUGE, 1.0, 1.7e5)))
    exc = raises_and_changes_nothing(p, bad)
    assert "overflow" in str(exc)
    # the new markets it named were forgotten with it
    assert (V, "S0") not in p.markets and (V, "S1") not in p.markets
    # and the account still takes a good snapshot: equity 1000 + 1·(100 − 100) = 1000
    p.apply(AccountSnapshot(V, "a", 1000.0, (huge("BTC", 1.0, 100.0, 100.0),)))
    assert p.aggregates(ScopeKey(V, "a", "cross")) == pytest.approx((1000.0, 100.0 * 0.01))


def test_a_snapshot_of_a_new_account_that_raises_leaves_no_account_behind() -> None:
    p = Portfolio()
    bad = AccountSnapshot(
        V, "new", 5.0, (huge("S0", HUGE, 1.0, 1.7e5), huge("S1", HUGE, 1.0, 1.7e5))
    )
    raises_and_changes_nothing(p, bad)
    assert p.scope_keys() == [] and p.accounts == {} and p.markets == {}


def test_a_position_update_that_raises_keeps_the_position_it_replaced_and_its_scope() -> None:
    p = Portfolio()
    p.apply(
        AccountSnapshot(
            V,
            "a",
            0.0,
            (
                huge("S0", HUGE, 1.0, 1.7e5),
                dataclasses.replace(
                    huge("S1", 1.0, 100.0, 1.7e5),
                    margin_mode=MarginMode.ISOLATED,
                    isolated_margin=50.0,
                ),
            ),
        )
    )
    armed_everywhere(p)
    # S1 moves from its isolated scope to cross: removed (the isolated scope vanishes), then
    # added to cross beside S0 (1.7e308 + 1.7e308 overflows)
    bad = PositionUpdate(V, "a", huge("S1", HUGE, 1.0, 1.7e5), cross_collateral=1.0)
    raises_and_changes_nothing(p, bad)
    assert ScopeKey(V, "a", "isolated:S1") in p.scope_keys()


def test_a_price_that_raises_half_way_leaves_every_holder_at_the_old_price() -> None:
    p = Portfolio()
    # A long and B short, 1e303 each at 1 with a 90% maintenance rate (sums 0 and 1.8e303)
    for acct in ("a", "b"):
        p.apply(
            AccountSnapshot(
                V, acct, 0.0, (huge("A", HUGE, 1.0, 1.0, 0.9), huge("B", -HUGE, 1.0, 1.0, 0.9))
            )
        )
    p.apply(MarkPrice(V, "A", 1.7e5))
    armed_everywhere(p)
    # B at 1.7e5: value 1.7e308 − 1.7e308 shrinks → re-summed; maintenance 2 × 0.9 × 1.7e308
    # = 3.06e308 overflows, after the first holder's figures were already moved
    raises_and_changes_nothing(p, MarkPrice(V, "B", 1.7e5))
    assert p.markets[(V, "B")].mark == 1.0


def test_an_instrument_that_raises_on_its_second_holder_leaves_the_first_one_unchanged() -> None:
    p = Portfolio()
    for acct in ("a", "b"):
        p.apply(
            AccountSnapshot(
                V,
                acct,
                0.0,
                (huge("S0", -HUGE, 1.7e5, 1.7e5, None), huge("S1", HUGE, 1.7e5, 1.7e5, 0.9)),
            )
        )
    armed_everywhere(p)
    # S0's maintenance becomes 0.9 × 1.7e308 = 1.53e308; beside S1's 1.53e308 the sum overflows
    raises_and_changes_nothing(
        p, InstrumentSpec(Instrument(V, "S0", MaintenanceSchedule.flat(0.9)))
    )
    assert p.markets[(V, "S0")].instrument is None


def test_a_balance_that_raises_leaves_the_scope_armed_with_its_cash() -> None:
    p = Portfolio()
    # two longs of 1e303 entered at 1e5: Σ size·entry = 2e308 overflows when cash is derived
    p.apply(AccountSnapshot(V, "a", 0.0, (huge("A", HUGE, 1e5, 1.0),)))
    p.apply(PositionUpdate(V, "a", huge("B", HUGE, 1e5, 1.0)))
    armed_everywhere(p)
    assert p.armed(ScopeKey(V, "a", "cross"))
    raises_and_changes_nothing(p, BalanceUpdate(V, "a", cross_collateral=5.0))
    assert p.armed(ScopeKey(V, "a", "cross"))


# -- the property --------------------------------------------------------------------------------
@st.composite
def hostile_events(draw: st.DrawFn, venue: str) -> Event:
    """Ordinary events, and the same kinds carrying absurd sizes that may overflow."""
    if draw(st.integers(0, 2)) == 0:
        return draw(events(venue))  # type: ignore[return-value]
    kind = draw(st.sampled_from(["snapshot", "position", "balance", "instrument", "price"]))
    acct = draw(st.sampled_from(["a", "b", "c"]))
    sym = draw(st.sampled_from(SYMBOLS))
    big = st.builds(
        huge,
        st.sampled_from(SYMBOLS),
        st.sampled_from([HUGE, HUGE, -HUGE, 1.0]),
        st.sampled_from([1.0, 1e5, 1.7e5]),
        st.sampled_from([1.0, 1.7e5]),
        st.sampled_from([None, 0.01, 0.9]),
    )
    if kind == "snapshot":
        return AccountSnapshot(
            venue, acct, 10.0, tuple(draw(st.lists(big, min_size=1, max_size=4)))
        )
    if kind == "position":
        pos = draw(big)
        if draw(st.booleans()):
            pos = dataclasses.replace(
                pos, margin_mode=MarginMode.ISOLATED, isolated_margin=abs(pos.size)
            )
        return PositionUpdate(venue, acct, pos, cross_collateral=draw(st.sampled_from([None, 1.0])))
    if kind == "balance":
        return BalanceUpdate(venue, acct, cross_collateral=draw(st.sampled_from([0.0, 1e308])))
    if kind == "instrument":
        sched = draw(st.one_of(schedules(), st.just(MaintenanceSchedule.flat(0.9))))
        return InstrumentSpec(Instrument(venue, sym, sched))
    return MarkPrice(venue, sym, draw(st.sampled_from([1.0, 1e5, 1.7e5, 1e300])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), venue=st.sampled_from(VENUES))
def test_any_event_that_raises_leaves_the_portfolio_exactly_as_it_was(
    venue: str, data: st.DataObject
) -> None:
    p = Portfolio()
    for acct in ("a", "b"):
        snap = data.draw(snapshots(venue=venue, max_positions=4))
        if data.draw(st.booleans()):  # one absurd position to start with (1.7e308 alone sums)
            snap = dataclasses.replace(snap, positions=(huge("S4", HUGE, 1.0, 1.7e5),))
        p.apply(dataclasses.replace(snap, account=acct))
    for ev in data.draw(st.lists(hostile_events(venue), min_size=1, max_size=25)):
        if data.draw(st.booleans()):
            armed_everywhere(p)
        before = fingerprint(p)
        try:
            p.apply(ev)
        except (OverflowError, ValueError):
            event(f"raised {type(ev).__name__}")
        else:
            continue
        assert fingerprint(p) == before, f"{ev!r} raised and changed the portfolio"


# -- membership: the journal of the markets' holdings lists -----------------------------------
MARKETS = [f"M{i}" for i in range(6)]


def _position(symbol: str, size: float, isolated: bool) -> Position:
    pos = huge(symbol, size, 100.0, 100.0)
    if isolated:
        pos = dataclasses.replace(pos, margin_mode=MarginMode.ISOLATED, isolated_margin=10.0)
    return pos


@st.composite
def _books(draw: st.DrawFn) -> list[tuple[str, tuple[tuple[str, float, bool], ...]]]:
    """Accounts (the target ``x`` among them, at any place) each holding some of MARKETS."""
    holding = st.tuples(st.sampled_from([1.0, -2.0, 3.0]), st.booleans())
    book = st.dictionaries(st.sampled_from(MARKETS), holding, max_size=len(MARKETS))
    names = draw(st.lists(st.sampled_from("abcdefg"), min_size=2, max_size=6, unique=True))
    names.insert(draw(st.integers(0, len(names))), "x")
    return [(n, tuple((sym, size, iso) for sym, (size, iso) in draw(book).items())) for n in names]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    books=_books(),
    after=st.dictionaries(
        st.sampled_from([*MARKETS, "N0", "N1"]),
        st.tuples(st.sampled_from([1.0, -5.0]), st.booleans()),
        max_size=8,
    ),
    at=st.integers(0, 8),
)
def test_a_snapshot_raising_after_removing_and_adding_in_several_markets_restores_their_order(
    books: list[tuple[str, tuple[tuple[str, float, bool], ...]]],
    after: dict[str, tuple[float, bool]],
    at: int,
) -> None:
    """``x`` leaves some markets, enters others, moves between cross and isolated (removed,
    then added at the end of its market's list), then its snapshot overflows: every market's
    holdings list is the same holdings in the same order, and no new market stays."""
    p = Portfolio()
    for name, held in books:
        p.apply(AccountSnapshot(V, name, 1000.0, tuple(_position(*h) for h in held)))
    armed_everywhere(p)
    orders = {k: [id(h) for h in m.holdings] for k, m in p.markets.items()}
    positions = [_position(sym, size, iso) for sym, (size, iso) in after.items()]
    overflow = [huge("Z0", HUGE, 1.0, 1.7e5), huge("Z1", HUGE, 1.0, 1.7e5)]
    positions[min(at, len(positions)) : min(at, len(positions))] = overflow
    raises_and_changes_nothing(p, AccountSnapshot(V, "x", 5.0, tuple(positions)))
    assert {k: [id(h) for h in m.holdings] for k, m in p.markets.items()} == orders
