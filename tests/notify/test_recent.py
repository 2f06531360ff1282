"""``Recent``: the compact samples behind "up from 71.0% 12 min ago" keep the semantics of
the plain list of (time, value) tuples they replaced, and stay bounded."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.rules import Severity
from monitor.notify.outbound import Recent


class ListRecent:
    """The reference: the earlier list-of-tuples implementation of ``Recent._add``/``move``
    (without the rule filter), kept here to compare against."""

    def __init__(self, window: float, every: float) -> None:
        self.window, self.every = window, every
        self.by: dict[str, list[tuple[float, float]]] = {}

    def add(self, subject: str, value: float | None, now: float) -> None:
        if value is None or not math.isfinite(value):
            return
        samples = self.by.get(subject)
        if samples is None:
            self.by[subject] = [(now, value)]
            return
        if samples and now - samples[-1][0] < self.every:
            return
        samples.append((now, value))
        while now - samples[0][0] > self.window:
            samples.pop(0)

    def move(self, subject: str, now: float) -> tuple[float, float] | None:
        for at, value in self.by.get(subject, []):
            age = now - at
            if age <= self.window:
                return (value, age) if age >= self.every else None
        return None


values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=2.0),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=400.0), st.sampled_from("ab"), values),
        max_size=60,
    ),
    window=st.sampled_from([60.0, 300.0, 900.0]),
    every=st.sampled_from([1.0, 10.0, 60.0]),
    later=st.floats(min_value=0.0, max_value=1_000.0),
)
def test_compact_samples_say_what_the_list_of_tuples_said(
    steps: list[tuple[float, str, float | None]], window: float, every: float, later: float
) -> None:
    recent, ref = Recent(window=window, every=every), ListRecent(window, every)
    now = 0.0
    for gap, subject, value in steps:
        now += gap
        recent._add(subject, value, now)
        ref.add(subject, value, now)
        assert recent.samples(subject) == ref.by.get(subject, [])
    for subject in "ab":
        t = Transition(
            id=f"margin_ratio|{subject}@1/fired",
            kind=TransitionKind.FIRED,
            key=f"margin_ratio|{subject}",
            rule="margin_ratio",
            severity=Severity.CRITICAL,
            group="generic:acct",
            subject=subject,
            at=now,
            since=now,
        )
        for at in (now, now + later):
            move = recent.move(t, at)
            assert (None if move is None else (move.value, move.seconds)) == ref.move(subject, at)


def test_a_subject_keeps_at_most_window_over_every_plus_one_samples() -> None:
    recent = Recent(window=900.0, every=60.0)
    for i in range(3_600):  # one value a second for an hour
        recent._add("hyperliquid:0xabc/cross", 0.5 + i * 1e-4, float(i))
    samples = recent.samples("hyperliquid:0xabc/cross")
    # one every 60 s, none older than 900 s before the last (3,540): 2,640 … 3,540 → 16
    assert [t for t, _ in samples] == [float(t) for t in range(2_640, 3_541, 60)]
    assert len(samples) == 900 // 60 + 1
