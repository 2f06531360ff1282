from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.venues.backoff import Backoff


class FixedRng(random.Random):
    """random() always returns ``value``: makes the jitter arithmetic explicit."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_delays_grow_geometrically_until_the_cap_without_jitter() -> None:
    b = Backoff(initial=0.5, factor=2.0, cap=5.0, jitter=0.0)
    # 0.5, 1, 2, 4, then min(8, 5) = 5 forever
    assert [b.next_delay() for _ in range(7)] == pytest.approx([0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0])


def test_jitter_subtracts_a_fraction_of_the_base_and_is_kept_at_the_cap() -> None:
    b = Backoff(initial=1.0, factor=2.0, cap=4.0, jitter=0.25, rng=FixedRng(0.5))
    # base * (1 - 0.25 * 0.5) = base * 0.875: 1 -> 0.875, 2 -> 1.75, 4 -> 3.5, cap 4 -> 3.5
    assert [b.next_delay() for _ in range(5)] == pytest.approx([0.875, 1.75, 3.5, 3.5, 3.5])


def test_short_lived_connection_does_not_reset_attempts() -> None:
    b = Backoff(initial=1.0, factor=2.0, cap=100.0, jitter=0.0, stable_after=10.0)
    b.next_delay()
    b.next_delay()  # 1, 2
    b.on_connected(100.0)
    b.on_disconnected(105.0)  # up 5 s < 10 s
    assert b.next_delay() == pytest.approx(4.0)


def test_stable_connection_resets_attempts() -> None:
    b = Backoff(initial=1.0, factor=2.0, cap=100.0, jitter=0.0, stable_after=10.0)
    for _ in range(4):
        b.next_delay()
    b.on_connected(100.0)
    b.on_disconnected(110.0)  # up exactly 10 s
    assert b.next_delay() == pytest.approx(1.0)


def test_disconnect_without_connect_keeps_attempts() -> None:
    b = Backoff(initial=1.0, factor=3.0, cap=100.0, jitter=0.0)
    b.next_delay()
    b.on_disconnected(1_000.0)
    assert b.next_delay() == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0.0}, {"cap": -1.0}, {"factor": 0.5}, {"jitter": 1.5}]
)
def test_invalid_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    initial=st.floats(0.01, 10.0),
    factor=st.floats(1.0, 4.0),
    cap=st.floats(0.01, 60.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
    n=st.integers(1, 2_000),
)
def test_delay_is_always_within_jitter_band_and_never_above_cap(
    *, initial: float, factor: float, cap: float, jitter: float, seed: int, n: int
) -> None:
    b = Backoff(initial=initial, factor=factor, cap=cap, jitter=jitter, rng=random.Random(seed))
    for _ in range(n):
        base = b.base_delay()
        d = b.next_delay()
        assert base * (1 - jitter) - 1e-12 <= d <= base + 1e-12
        assert d <= cap + 1e-12
