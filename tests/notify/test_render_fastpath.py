"""The renderer's shortcuts (times formatted once, printable text left alone without a
regex, the title made once per message) give exactly what the plain paths give."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.notify import render
from monitor.notify.render import _CONTROL, iso, one_line


def _iso_reference(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{ts:.0f} (epoch s)"


@given(st.one_of(st.floats(), st.integers(min_value=-(2**70), max_value=2**70)))
@example(1_800_000_000.0)
@example(float("nan"))
@example(float("inf"))
@example(-0.0)
@example(1e300)
def test_iso_remembered_equals_iso_computed(ts: float) -> None:
    assert iso(ts) == _iso_reference(ts)
    assert iso(ts) == _iso_reference(ts)  # the second time from the cache


def test_iso_cache_is_bounded() -> None:
    for i in range(render._ISO_MAX + 10):
        assert iso(1_800_000_000.0 + i) == _iso_reference(1_800_000_000.0 + i)
    assert len(render._ISO) <= render._ISO_MAX


def test_every_character_one_line_replaces_is_unprintable() -> None:
    # the shortcut: printable text holds none of them, so it is returned without a regex
    matched = [c for c in range(sys.maxunicode + 1) if _CONTROL.match(chr(c))]
    assert len(matched) > 60  # C0, DEL and C1 alone are 65
    assert not [c for c in matched if chr(c).isprintable()]


@given(st.text())
@example("a\u00a0b")  # NO-BREAK SPACE: unprintable, yet not one of ours: kept
@example("Main\u202edesk\nx\u200b")
def test_one_line_equals_the_regex_substitution(text: str) -> None:
    assert one_line(text) == _CONTROL.sub(" ", text)
