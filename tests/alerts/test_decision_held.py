"""``decision_held``: the dry run of a scope's threshold rules that tells the engine whether a
decision a stale feed held could change anything once the feed recovers.

The property ties it to the real evaluation: on a book with no alert for the scope, it says
True exactly when deciding the scope (not held) creates an alert or records a new equity
peak (the rules have a drawdown rule); a scope with an alert is always True. Hand cases pin
one rule of each shape."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.engine import (
    AlertBook,
    AlertState,
    Observation,
    decision_held,
    evaluate_in_place,
)
from monitor.alerts.rules import AlertRules, Level, RuleKind, Severity, ThresholdRule
from monitor.margin.risk import ScopeRisk
from monitor.model.events import FeedState, FeedStatus
from monitor.model.fastpath import PEAK_SLACK
from tests.alerts.helpers import KEY, position, scope

T0 = 1_700_000_000.0


def _rules() -> AlertRules:
    """Every default rule, a BTC-only funding-rate bound and a stricter margin ratio for
    the helper's account (overrides are looked up per account)."""
    d = AlertRules.default()
    fr = ThresholdRule(
        RuleKind.FUNDING_RATE,
        (Level(Severity.WARNING, 1.0, 0.9),),
        symbols={"BTC": (Level(Severity.WARNING, 0.5, 0.45),)},
    )
    strict = {
        RuleKind.MARGIN_RATIO: ThresholdRule(
            RuleKind.MARGIN_RATIO, (Level(Severity.CRITICAL, 0.6, 0.55),)
        )
    }
    return replace(
        d,
        thresholds={**d.thresholds, RuleKind.FUNDING_RATE: fr},
        accounts={str(KEY.account_key): strict},
    )


RULES = _rules()


def _decided_alerts(risk: ScopeRisk, book: AlertBook) -> list[str]:
    """The alert keys of ``risk``'s scope after deciding it, not held, on ``book``."""
    evaluate_in_place(Observation(risks=[risk]), T0 + 10, book, RULES)
    return book.keys_of(str(risk.key))


def _decision_changes(risk: ScopeRisk, book: AlertBook) -> bool:
    """Whether deciding ``risk``, not held, on ``book`` creates an alert or records a peak
    (past the band's slack above the old: within it, the band still watches
    ``peak·(1 + PEAK_SLACK)``; a first peak a held evaluation records too)."""
    old = book.peaks.get(str(risk.key))
    alerts = bool(_decided_alerts(risk, book))
    new = book.peaks.get(str(risk.key))
    return alerts or (old is not None and new is not None and new > old * (1.0 + PEAK_SLACK))


def _book(peak: float | None) -> AlertBook:
    state = AlertState(peaks={} if peak is None else {str(KEY): peak})
    return AlertBook(state, RULES)


positions = st.lists(
    st.builds(
        position,
        st.sampled_from(["BTC", "ETH", "SOL"]),
        mark=st.floats(1.0, 1000.0),
        liq=st.one_of(st.none(), st.floats(0.5, 2000.0)),
        funding_per_hour=st.one_of(st.none(), st.floats(-0.001, 0.001)),
        size=st.floats(0.001, 10.0),
    ),
    max_size=3,
    unique_by=lambda p: p.symbol,
).map(tuple)

risks = st.builds(
    scope,
    st.one_of(st.none(), st.floats(0.0, 1.5)),
    equity=st.floats(-100.0, 5000.0),
    positions=positions,
    shock=st.one_of(st.none(), st.floats(0.0, 1.0)),
    runway=st.one_of(st.none(), st.floats(0.0, 500.0)),
    funding_day=st.floats(-50.0, 50.0),
)


@settings(max_examples=300, deadline=None)
@given(risks, st.one_of(st.none(), st.floats(1.0, 6000.0)))
def test_on_a_quiet_book_it_is_true_exactly_when_deciding_creates_an_alert_or_a_peak(
    risk: ScopeRisk, peak: float | None
) -> None:
    dry = decision_held(risk, _book(peak), RULES)
    assert dry is _decision_changes(risk, _book(peak))


@settings(max_examples=100, deadline=None)
@given(risks, risks)
def test_a_scope_with_an_alert_is_always_decided_again(first: ScopeRisk, now: ScopeRisk) -> None:
    book = _book(None)
    if _decided_alerts(first, book):
        assert decision_held(now, book, RULES)


def test_it_changes_nothing() -> None:
    book = _book(500.0)
    risk = scope(0.95, equity=1000.0)
    assert decision_held(risk, book, RULES)
    assert not book.alerts and book.peaks == {str(KEY): 500.0}


def test_the_quiet_zone_and_one_rule_of_each_shape() -> None:
    # ratio 10 %, 50 % from liquidation, equity 1000 at its peak
    quiet = scope(0.1, positions=(position(liq=50.0),))
    assert not decision_held(quiet, _book(1000.0), RULES)
    # equity 1000 above its peak 900: a peak to record (the drawdown rule); without one the
    # held evaluation records it itself; above 990 by less than the slack (2 %): the band
    # still watches 990 · 1.02
    assert decision_held(quiet, _book(900.0), RULES)
    assert not decision_held(quiet, _book(None), RULES)  # the held evaluation records it
    assert not decision_held(quiet, _book(990.0), RULES)
    no_drawdown = replace(
        RULES,
        thresholds={**RULES.thresholds, RuleKind.DRAWDOWN: ThresholdRule(RuleKind.DRAWDOWN, ())},
    )
    assert not decision_held(quiet, _book(None), no_drawdown)
    # the account's override (critical at 60 %), not the default (warning at 80 %)
    assert decision_held(scope(0.65), _book(1000.0), RULES)
    # drawdown from the kept peak: (1000 − 700) / 1000 = 30 % ≥ warning 25 %
    assert decision_held(scope(0.1, equity=700.0), _book(1000.0), RULES)
    # a position 3 % from its liquidation price
    assert decision_held(scope(0.1, positions=(position(liq=97.0),)), _book(1000.0), RULES)
    # BTC's own funding bound: 0.00007 /h · 8760 = 61 % APR ≥ 50 %; ETH's 1.0 is not crossed
    btc = position("BTC", funding_per_hour=0.00007, size=0.0001)
    eth = position("ETH", funding_per_hour=0.00007, size=0.0001)
    assert decision_held(scope(0.1, positions=(btc,)), _book(1000.0), RULES)
    assert not decision_held(scope(0.1, positions=(eth,)), _book(1000.0), RULES)


def test_a_held_evaluation_records_a_first_peak_and_no_later_one() -> None:
    """Held figures decide nothing, but a scope with no peak gets its first from them (its
    band then watches the rally above it); a peak it has is not raised while held."""
    stale = Observation(feeds=[FeedStatus("hyperliquid", "prices", FeedState.STALE)])
    book = _book(None)
    evaluate_in_place(stale, T0, book, RULES)
    evaluate_in_place(Observation(risks=[scope(0.1, equity=800.0)]), T0 + 1, book, RULES)
    assert book.peaks == {str(KEY): 800.0}
    evaluate_in_place(Observation(risks=[scope(0.1, equity=900.0)]), T0 + 2, book, RULES)
    assert book.peaks == {str(KEY): 800.0} and not book.keys_of(str(KEY))
