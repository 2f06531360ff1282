"""The daemon's :class:`~monitor.app.Freezer`: when the book goes to the collector's
permanent generation, and that the cycles made before a freeze are freed, not frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from monitor.app import Freezer


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_the_book_is_frozen_when_a_tenth_of_it_is_new_or_evaluated_anew() -> None:
    f = Freezer()
    assert f.step(10_000, 0)  # first sight of a book: 10,000 ≥ 1.1·0 + 1,000
    frozen = gc.get_freeze_count()
    assert not f.step(10_000, 1_500)  # 1,500 evaluations < 10 % of 10,000 + 1,000
    assert f.step(10_000, 500)  # 2,000 evaluations since the last freeze
    assert f.churn == 0 and f.freezes == 2
    assert not f.step(11_900, 0)  # grew by less than a tenth (+ 1,000)
    assert f.step(12_000, 0)  # 12,000 ≥ 1.1·10,000 + 1,000
    assert f.size == 12_000
    assert gc.get_freeze_count() >= frozen


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_cycles_made_before_a_freeze_are_freed_not_frozen() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    ref = weakref.ref(a)
    del a, b
    kept = [_Node() for _ in range(100)]  # live objects: these are frozen
    Freezer().freeze()
    assert ref() is None
    assert gc.get_freeze_count() >= len(kept)
