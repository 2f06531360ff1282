"""``Recent``: the compact rows behind "up from 71.0% 12 min ago" (one ``array('d')`` a scope:
its time, margin ratio and one liquidation distance a position) say what a plain model of
per-scope rows of {subject: value} says, and stay bounded."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.rules import Severity
from monitor.margin.risk import ScopeRisk
from monitor.model.positions import ScopeKey
from monitor.notify.outbound import Recent
from tests.alerts.helpers import position, scope

KEYS = {n: ScopeKey("generic", n, "cross") for n in "ab"}
SYMBOLS = ("BTC", "ETH#1")  # a symbol may hold '#': the subject splits at the first one


class RowsRecent:
    """The reference: per scope, a list of (time, {subject: known value}) rows, one at most
    every ``every`` seconds, none older than ``window`` before the newest; a scope whose
    newest row is older than ``window`` is forgotten when :meth:`record` prunes."""

    def __init__(self, window: float, every: float) -> None:
        self.window, self.every = window, every
        self.rows: dict[str, list[tuple[float, dict[str, float]]]] = {}
        self.pruned = -math.inf

    def record(self, scope: str, values: dict[str, float | None], now: float) -> None:
        known = {s: v for s, v in values.items() if v is not None and math.isfinite(v)}
        rows = self.rows.get(scope, [])
        if known and not (rows and now - rows[-1][0] < self.every):
            rows.append((now, known))
            while now - rows[0][0] > self.window:
                rows.pop(0)
            self.rows[scope] = rows
        if now - self.pruned > self.window:
            self.pruned = now
            for k in [k for k, r in self.rows.items() if now - r[-1][0] > self.window]:
                del self.rows[k]

    def samples(self, subject: str) -> list[tuple[float, float]]:
        rows = self.rows.get(subject.partition("#")[0], [])
        return [(t, v[subject]) for t, v in rows if subject in v]

    def move(self, subject: str, now: float) -> tuple[float, float] | None:
        for at, value in self.samples(subject):
            age = now - at
            if age <= self.window:
                return (value, age) if age >= self.every else None
        return None


values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=2.0),
)
held = st.one_of(st.just("closed"), values)  # a position's distance, or not held


def _risk(name: str, ratio: float | None, distances: tuple[float | str | None, ...]) -> ScopeRisk:
    held_now = tuple(
        dataclasses.replace(position(sym), liquidation_distance=d)
        for sym, d in zip(SYMBOLS, distances, strict=True)
        if not isinstance(d, str)
    )
    r = scope(0.1, key=KEYS[name], positions=held_now)
    return dataclasses.replace(r, margin_ratio=ratio)


def _fired(subject: str, at: float, rule: str = "margin_ratio") -> Transition:
    return Transition(
        id=f"{rule}|{subject}@1/fired",
        kind=TransitionKind.FIRED,
        key=f"{rule}|{subject}",
        rule=rule,
        severity=Severity.CRITICAL,
        group="generic:a",
        subject=subject,
        at=at,
        since=at,
    )


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=400.0),
            st.sampled_from("ab"),
            values,
            st.tuples(held, held),
        ),
        max_size=60,
    ),
    window=st.sampled_from([60.0, 300.0, 900.0]),
    every=st.sampled_from([1.0, 10.0, 60.0]),
    later=st.floats(min_value=0.0, max_value=1_000.0),
)
def test_the_rows_say_what_the_plain_model_says_as_positions_open_and_close(
    steps: list[tuple[float, str, float | None, tuple[float | str | None, ...]]],
    window: float,
    every: float,
    later: float,
) -> None:
    recent, ref = Recent(window=window, every=every), RowsRecent(window, every)
    subjects = [f"{k}{tail}" for k in KEYS.values() for tail in ("", *(f"#{s}" for s in SYMBOLS))]
    now = 0.0
    for gap, name, ratio, distances in steps:
        now += gap
        risk = _risk(name, ratio, distances)
        recent.record([risk], now)
        scope_text = str(KEYS[name])
        ref.record(
            scope_text,
            {
                scope_text: ratio,
                **{f"{scope_text}#{p.symbol}": p.liquidation_distance for p in risk.positions},
            },
            now,
        )
        for subject in subjects:
            assert recent.samples(subject) == ref.samples(subject), subject
    for subject in subjects:
        rule = "liquidation_distance" if "#" in subject else "margin_ratio"
        for at in (now, now + later):
            move = recent.move(_fired(subject, now, rule), at)
            got = None if move is None else (move.value, move.seconds)
            assert got == ref.move(subject, at), subject


def test_a_scope_keeps_at_most_window_over_every_plus_one_rows() -> None:
    recent = Recent(window=900.0, every=60.0)
    key = str(KEYS["a"])
    for i in range(3_600):  # one value a second for an hour
        recent.record([_risk("a", 0.5 + i * 1e-4, (0.3, "closed"))], float(i))
    # one every 60 s, none older than 900 s before the last (3,540): 2,640 … 3,540 → 16
    for subject in (key, f"{key}#BTC"):
        samples = recent.samples(subject)
        assert [t for t, _ in samples] == [float(t) for t in range(2_640, 3_541, 60)]
    assert len(recent._by[key][1]) == 16 * 3  # time, ratio, BTC's distance
    assert recent.samples(f"{key}#ETH#1") == []


def test_scopes_holding_the_same_symbols_share_one_tuple_of_them() -> None:
    recent = Recent()
    recent.record([_risk("a", 0.5, (0.3, 0.2)), _risk("b", 0.6, (0.4, 0.1))], 0.0)
    (sa, _), (sb, _) = recent._by[str(KEYS["a"])], recent._by[str(KEYS["b"])]
    assert sa == SYMBOLS and sa is sb


def test_a_scope_with_no_known_value_gets_no_row_and_an_unknown_value_no_sample() -> None:
    recent = Recent(every=60.0)
    key = str(KEYS["a"])
    recent.record([_risk("a", None, (math.nan, "closed"))], 0.0)
    assert key not in recent._by
    recent.record([_risk("a", math.inf, (0.3, "closed"))], 10.0)
    recent.record([_risk("a", 0.7, (0.2, "closed"))], 70.0)
    assert recent.samples(key) == [(70.0, 0.7)]  # the infinite ratio is not a sample
    assert recent.samples(f"{key}#BTC") == [(10.0, 0.3), (70.0, 0.2)]
    # 130 s: the distance 120 s ago; the ratio's oldest sample is 60 s old
    move = recent.move(_fired(f"{key}#BTC", 130.0, "liquidation_distance"), 130.0)
    assert move is not None and (move.value, move.seconds) == (0.3, 120.0)
    move = recent.move(_fired(key, 130.0), 130.0)
    assert move is not None and (move.value, move.seconds) == (0.7, 60.0)
