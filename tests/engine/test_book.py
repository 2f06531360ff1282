"""The alert book: indexed by scope, timers in a heap, changes as deltas. The incremental
book (one :class:`AlertBook` changed in place across evaluations) must decide exactly as a
book rebuilt from the plain state at every evaluation (whose index and heap are fresh), and
its deltas, replayed, must give back its state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.engine import (
    AlertBook,
    AlertRecord,
    AlertState,
    AlertStatus,
    Observation,
    evaluate,
    evaluate_in_place,
)
from monitor.alerts.rules import Severity
from monitor.model.events import FeedState, FeedStatus
from monitor.model.positions import ScopeKey
from tests.alerts.helpers import scope
from tests.engine.helpers import T0, rules

RULES = rules(pending_for=30.0, repeat={Severity.WARNING: 300.0, Severity.CRITICAL: 120.0})
KEYS = [ScopeKey("hyperliquid", f"0x{i}", "cross") for i in range(4)]

# a step: seconds later, then per scope a margin ratio (or nothing: not evaluated), and
# sometimes the feed going stale or live
STEP = st.tuples(
    st.floats(0.0, 400.0),
    st.lists(st.one_of(st.none(), st.floats(0.0, 1.2)), min_size=4, max_size=4),
    st.sampled_from([None, None, None, FeedState.STALE, FeedState.LIVE]),
    st.booleans(),
)


def _obs(values: list[float | None], feed: FeedState | None, vanish: bool) -> Observation:
    risks = [scope(v, key=k) for k, v in zip(KEYS, values, strict=True) if v is not None]
    feeds = [FeedStatus("hyperliquid", "prices", feed)] if feed is not None else []
    return Observation(risks=risks, feeds=feeds, vanished=[KEYS[3]] if vanish else [])


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=30))
def test_the_incremental_book_decides_as_a_fresh_one_and_its_deltas_rebuild_it(
    steps: list[tuple[float, list[float | None], FeedState | None, bool]],
) -> None:
    book = AlertBook(None, RULES)
    state = AlertState()
    stored: dict[str, AlertRecord] = {}
    peaks: dict[str, float] = {}
    t = T0
    for dt, values, feed, vanish in steps:
        t += dt
        obs = _obs(values, feed, vanish)
        fresh, state = evaluate(obs, t, state, RULES)
        mine, delta = evaluate_in_place(obs, t, book, RULES)
        assert [x.id for x in mine] == [x.id for x in fresh]
        assert book.alerts == dict(state.alerts)
        # the firing count ``summary`` shows, kept by put and drop, is the count
        assert book.firing == sum(r.status is AlertStatus.FIRING for r in state.alerts.values())
        for rec in delta.upserts:
            stored[rec.key] = rec
        for key in delta.deletes:
            del stored[key]
        for s, p in delta.peaks:
            if p is None:
                peaks.pop(s, None)
            else:
                peaks[s] = p
        assert stored == book.alerts and peaks == book.peaks


def _firing(i: int, last_sent: float) -> AlertRecord:
    return AlertRecord(
        key=f"margin_ratio|hyperliquid:0x{i}/cross",
        rule="margin_ratio",
        subject=f"hyperliquid:0x{i}/cross",
        group=f"hyperliquid:0x{i}",
        status=AlertStatus.FIRING,
        severity=Severity.CRITICAL,
        since=last_sent,
        venue="hyperliquid",
        fired_at=last_sent,
        last_sent=last_sent,
    )


def test_only_the_alerts_whose_timer_came_due_are_looked_at() -> None:
    # 1,000 firing criticals (repeat every 120 s): one sent at T0 − 120, the rest at T0
    recs = [_firing(i, T0) for i in range(1, 1000)] + [_firing(0, T0 - 120.0)]
    book = AlertBook(AlertState(alerts={r.key: r for r in recs}), RULES)
    assert book.pop_due(T0 - 0.5) == []
    assert book.pop_due(T0) == ["margin_ratio|hyperliquid:0x0/cross"]  # T0 − 120 + 120


def test_a_repeat_comes_from_the_heap_without_any_new_figure() -> None:
    rec = _firing(0, T0)
    book = AlertBook(AlertState(alerts={rec.key: rec}), RULES)
    assert evaluate_in_place(Observation(), T0 + 119.0, book, RULES)[0] == []
    [rep], delta = evaluate_in_place(Observation(), T0 + 120.0, book, RULES)
    assert rep.kind.value == "repeat" and rep.at == T0 + 120.0  # 120 s after the last send
    assert [r.last_sent for r in delta.upserts] == [T0 + 120.0]
    assert evaluate_in_place(Observation(), T0 + 239.0, book, RULES)[0] == []
    assert len(evaluate_in_place(Observation(), T0 + 240.0, book, RULES)[0]) == 1


def test_the_scope_index_follows_adds_and_removals() -> None:
    book = AlertBook(None, RULES)
    evaluate_in_place(Observation(risks=[scope(0.95, key=KEYS[0])]), T0, book, RULES)
    assert book.keys_of(str(KEYS[0])) == [f"margin_ratio|{KEYS[0]}"]
    assert book.firing_of(str(KEYS[0])) == ["critical:margin_ratio"]
    evaluate_in_place(Observation(vanished=[KEYS[0]]), T0 + 1, book, RULES)
    assert book.keys_of(str(KEYS[0])) == [] and book.alerts == {}
    assert book.groups() == []
