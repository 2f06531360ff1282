"""Thinning a series for a chart without losing its worst point (pure).

``monitor history`` shows at most N rows of a scope's samples. Picking evenly spaced samples
can skip the one moment that mattered (the margin ratio's peak before a rebound), so the
series is cut into N consecutive buckets of (nearly) equal size and each bucket is
represented by its **extreme**: the sample whose ``badness`` is highest. A sample whose
badness is unknown (``None``: a margin ratio that cannot be computed because equity is at or
below zero) is the worst of all (fail closed). Ties keep the earliest sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def _rank(value: float | None) -> float:
    if value is None or math.isnan(value):
        return math.inf
    return value


def thin_extremes(items: Sequence[T], rows: int, badness: Callable[[T], float | None]) -> list[T]:
    """At most ``rows`` (>= 1) of ``items``, in their order: bucket ``i`` holds
    ``items[floor(i·n/rows) : floor((i+1)·n/rows)]`` and contributes its worst item
    (highest ``badness``; ``None`` counts as worst). ``items`` is returned unchanged when it
    already fits. Raises ValueError for ``rows < 1``."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    n = len(items)
    if n <= rows:
        return list(items)
    out: list[T] = []
    for i in range(rows):
        bucket = items[i * n // rows : (i + 1) * n // rows]
        worst = bucket[0]
        worst_rank = _rank(badness(worst))
        for item in bucket[1:]:
            r = _rank(badness(item))
            if r > worst_rank:
                worst, worst_rank = item, r
        out.append(worst)
    return out
