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


def test_the_book_is_frozen_after_every_500_additions_or_evaluations() -> None:
    assert Freezer.EVERY == 500
    f = Freezer()
    assert not f.step(300, 0)  # 300 accounts, scopes and alerts so far
    assert f.step(300, 200)  # and 200 evaluations: 500
    frozen = gc.get_freeze_count()
    assert f.churn == 0 and f.size == 300 and f.freezes == 1
    assert not f.step(550, 200)  # 250 added + 200 evaluated
    assert f.step(550, 50)
    assert not f.step(100, 499)  # a book that shrank counts no growth
    assert f.step(100, 1)
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


def test_the_configuration_is_read_with_the_collector_paused_then_frozen() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    with Freezer.paused():
        assert not gc.isenabled()
        config = [_Node() for _ in range(1_000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(config)


def test_a_configuration_that_fails_to_load_leaves_the_collector_running() -> None:
    with pytest.raises(ValueError, match="bad configuration"), Freezer.paused():
        raise ValueError("bad configuration")
    assert gc.isenabled()


def test_young_collections_are_every_10000_allocations() -> None:
    saved = gc.get_threshold()
    try:
        Freezer.tune()
        assert gc.get_threshold()[0] == Freezer.YOUNG == 10_000
        assert gc.get_threshold()[1:] == saved[1:]
    finally:
        gc.set_threshold(*saved)
