"""``Engine.summary``'s worst scope (:class:`monitor.engine.core.WorstRatio`): the same scope a
pass over every scope's latest figures finds, without that pass, from the one ratio per scope
the engine keeps (:func:`monitor.engine.core.latest_ratio`)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.core import WorstRatio, latest_ratio
from monitor.margin.risk import ScopeRisk
from monitor.model.positions import ScopeKey
from tests.alerts.helpers import scope

KEYS = [ScopeKey("hyperliquid", f"0x{i}", "cross") for i in range(5)]

# an operation: scope index, its new margin ratio (None: equity ≤ 0; NaN: unknown) and
# whether it holds positions, or "gone" (the scope vanished)
RATIO = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([0.1, 0.5, 0.9]),  # ties are common: a repeated value must not mislead
    st.floats(0.0, 3.0),
)
OP = st.tuples(st.integers(0, len(KEYS) - 1), st.one_of(RATIO, st.just("gone")), st.booleans())


def _badness(r: ScopeRisk) -> float | None:
    """Fail closed: a scope with positions and no equity left, or whose ratio is unknown,
    is worse than any ratio; an empty scope without a ratio is not ranked."""
    if r.margin_ratio is None:
        return math.inf if r.positions else None
    return math.inf if math.isnan(r.margin_ratio) else r.margin_ratio


def _by_pass(latest: dict[ScopeKey, ScopeRisk]) -> float | None:
    ranks = [b for r in latest.values() if (b := _badness(r)) is not None]
    return max(ranks, default=None)


def _ratios(latest: dict[ScopeKey, ScopeRisk]) -> dict[ScopeKey, float | None]:
    """What the engine keeps of the figures (``Engine.ratios``)."""
    return {k: latest_ratio(r) for k, r in latest.items()}


def _record(worst: WorstRatio, latest: dict[ScopeKey, ScopeRisk], key: ScopeKey) -> None:
    worst.record(key, latest_ratio(latest[key]), _ratios(latest))


def _of(worst: WorstRatio, latest: dict[ScopeKey, ScopeRisk]) -> ScopeRisk | None:
    """The figures of the scope ``worst`` names (checking the ratio it gives is that
    scope's)."""
    got = worst.of(_ratios(latest))
    if got is None:
        return None
    key, ratio = got
    kept = latest_ratio(latest[key])
    assert ratio is kept or (math.isnan(ratio) and kept is not None and math.isnan(kept))
    return latest[key]


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(OP, max_size=80))
def test_the_worst_scope_is_the_highest_current_ratio_whatever_came_before(
    ops: list[tuple[int, float | str | None, bool]],
) -> None:
    worst = WorstRatio()
    latest: dict[ScopeKey, ScopeRisk] = {}
    for i, ratio, held in ops:
        key = KEYS[i]
        if ratio == "gone":
            latest.pop(key, None)
        else:
            assert not isinstance(ratio, str)
            risk = scope(ratio, key=key, positions=None if held else ())
            latest[key] = risk
            _record(worst, latest, key)
        got = _of(worst, latest)
        expected = _by_pass(latest)
        if expected is None:
            assert got is None
        else:
            assert got is not None and got is latest[got.key]
            assert _badness(got) == expected


def test_a_scope_that_improved_is_no_longer_the_worst() -> None:
    """0x0 at 90 % then 10 %, 0x1 at 50 %: the worst is 0x1 (its 50 % > 0x0's current 10 %),
    though 0x0's 90 % entry is still the heap's top until it is looked at."""
    worst = WorstRatio()
    latest = {KEYS[0]: scope(0.9, key=KEYS[0]), KEYS[1]: scope(0.5, key=KEYS[1])}
    for k in latest:
        _record(worst, latest, k)
    latest[KEYS[0]] = scope(0.1, key=KEYS[0])
    _record(worst, latest, KEYS[0])
    got = _of(worst, latest)
    assert got is not None and got.key == KEYS[1]


def test_the_heap_stays_bounded_when_the_worst_is_never_asked() -> None:
    """A replay evaluates scopes and never asks for the summary: 20,000 evaluations of 1,000
    scopes keep at most 3 · 1,000 + 16 + 1 = 3,017 entries (one per evaluation: 20,000), and
    the worst is still the highest current ratio (scope 999's last, 0.5 + 0.999 · 0.4 > the
    others' ≤ 0.4)."""
    keys = [ScopeKey("hyperliquid", f"0x{i:x}", "cross") for i in range(1_000)]
    worst = WorstRatio()
    latest: dict[ScopeKey, float | None] = {}
    longest = 0
    for n in range(20_000):
        i = n % 1_000
        latest[keys[i]] = 0.4 * i / 1_000 + (0.5 if n == 19_999 else 0.0)
        worst.record(keys[i], latest[keys[i]], latest)
        longest = max(longest, len(worst._heap))
    assert 1_000 <= longest <= 3 * 1_000 + 16 + 1
    assert worst.of(latest) == (keys[999], 0.4 * 999 / 1_000 + 0.5)


def test_the_summary_names_an_underwater_or_unknown_scope_before_any_ratio() -> None:
    """0x0 at 95 %, 0x1 with positions and equity ≤ 0 (ratio None): the worst is 0x1; then
    0x1 with an unknown ratio (NaN) stays the worst; an empty scope without a ratio never is."""
    worst = WorstRatio()
    latest = {
        KEYS[0]: scope(0.95, key=KEYS[0]),
        KEYS[1]: scope(None, key=KEYS[1]),
        KEYS[2]: scope(None, key=KEYS[2], positions=()),
    }
    for k in latest:
        _record(worst, latest, k)
    got = _of(worst, latest)
    assert got is not None and got.key == KEYS[1]
    latest[KEYS[1]] = scope(math.nan, key=KEYS[1])
    _record(worst, latest, KEYS[1])
    got = _of(worst, latest)
    assert got is not None and got.key == KEYS[1]
    del latest[KEYS[1]]
    got = _of(worst, latest)
    assert got is not None and got.key == KEYS[0]
