"""Mute matching: target hierarchy, rule, critical, expiry."""

from __future__ import annotations

import pytest

from monitor.alerts.mutes import Mute, is_muted, subject_under

SCOPE = "hyperliquid:0xabc/cross"
POS = "hyperliquid:0xabc/cross#BTC"


@pytest.mark.parametrize(
    ("subject", "target", "under"),
    [
        (SCOPE, "hyperliquid:0xabc", True),
        (POS, "hyperliquid:0xabc", True),
        (POS, SCOPE, True),
        (POS, POS, True),
        ("hyperliquid:0xabcd/cross", "hyperliquid:0xabc", False),  # a prefix is not a parent
        (SCOPE, POS, False),
        ("feed:okx/tickers", "feed:okx", True),
        ("monitor", "monitor", True),
    ],
)
def test_subject_under(subject: str, target: str, under: bool) -> None:
    assert subject_under(subject, target) is under


def test_rule_critical_and_expiry() -> None:
    m = Mute("hyperliquid:0xabc", until=100.0, rule="shock")
    assert m.covers(SCOPE, "shock", critical=False, now=99.9)
    assert not m.covers(SCOPE, "shock", critical=False, now=100.0)  # expired at `until`
    assert not m.covers(SCOPE, "margin_ratio", critical=False, now=50.0)
    assert not m.covers(SCOPE, "shock", critical=True, now=50.0)  # critical breaks through
    loud = Mute("hyperliquid:0xabc", until=100.0, critical=True)
    assert is_muted([m, loud], SCOPE, "margin_ratio", critical=True, now=50.0)
