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


def test_the_book_is_frozen_after_every_2000_additions_or_evaluations() -> None:
    f = Freezer()
    assert not f.step(1_500, 0)  # 1,500 accounts, scopes and alerts so far
    assert f.step(1_500, 500)  # and 500 evaluations: 2,000
    frozen = gc.get_freeze_count()
    assert f.churn == 0 and f.size == 1_500 and f.freezes == 1
    assert not f.step(2_500, 900)  # 1,000 added + 900 evaluated
    assert f.step(2_500, 100)
    assert not f.step(1_000, 1_999)  # a book that shrank counts no growth
    assert f.step(1_000, 1)
    assert f.freezes == 3
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
