"""The reduction's search (the bisection, evaluating only the leg it cuts) finds exactly what
a search through the public :func:`reduced` and :func:`_figures` finds, on random books of
every rule set: same fraction, same size, same figures, bit for bit."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.margin.base import RuleSet
from monitor.margin.registry import VENUES
from monitor.margin.remedy import (
    ALERT_FRACTION_STEP,
    FRACTION_STEP,
    Figures,
    Target,
    _figures,
    meets,
    reduced,
)
from monitor.margin.risk import LegState
from monitor.model.portfolio import Portfolio
from monitor.whatif import remedy_of, scope_inputs

from .strategies import snapshots

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
targets = st.one_of(
    st.builds(Target, margin_ratio=st.floats(0.05, 0.95)),
    st.builds(Target, distance=st.floats(0.01, 0.9)),
    st.builds(Target, margin_ratio=st.floats(0.05, 0.95), distance=st.floats(0.01, 0.9)),
)


def reference_search(
    rules: RuleSet,
    legs: list[LegState],
    collateral: float,
    symbol: str,
    *,
    target: Target,
    step: float,
) -> tuple[float, Figures] | None:
    """The least fraction of ``symbol`` to close and its figures (None: closing all of it
    does not reach ``target``), each step through reduced() and _figures()."""

    def ok(x: float) -> tuple[bool, Figures]:
        new_legs, new_coll = reduced(rules, legs, collateral, symbol, x)
        fig = _figures(None, rules, new_legs, new_coll)  # type: ignore[arg-type]
        return meets(fig, target, has_positions=bool(new_legs)), fig

    good, fig = ok(1.0)
    if not good:
        return None
    lo, hi, hi_fig = 0.0, 1.0, fig
    for _ in range(200):
        if hi - lo <= step:
            break
        mid = (lo + hi) / 2.0
        good, fig = ok(mid)
        if good:
            hi, hi_fig = mid, fig
        else:
            lo = mid
    return hi, hi_fig


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data(), target=targets, step=st.sampled_from([FRACTION_STEP, ALERT_FRACTION_STEP]))
def test_the_reduction_is_the_reference_searchs(
    venue: str, data: st.DataObject, target: Target, step: float
) -> None:
    p = Portfolio()
    p.apply(data.draw(snapshots(venue, max_positions=3)))
    key = data.draw(st.sampled_from(p.scope_keys()))
    inputs = scope_inputs(p, key)
    assert inputs is not None
    rules, legs, collateral = inputs
    symbol = data.draw(st.sampled_from([None, *(ls.leg.symbol for ls in legs)]))
    r = remedy_of(p, key, target, symbol=symbol, fraction_step=step)
    assert r is not None
    assume(r.unknown is None and not r.met and r.reduce_symbol is not None)
    assert r.reduce_symbol is not None
    ref = reference_search(rules, legs, collateral, r.reduce_symbol, target=target, step=step)
    if ref is None:
        assert r.reduce_fraction is None and r.after_reduction is None
        assert r.reduce_note is not None and r.reduce_note.startswith("closing all of")
        return
    fraction, figures = ref
    assert r.reduce_fraction == fraction
    assert r.after_reduction == figures
    leg = next(ls.leg for ls in legs if ls.leg.symbol == r.reduce_symbol)
    assert r.reduce_size == leg.qty * fraction
