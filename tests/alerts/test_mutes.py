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


@pytest.mark.parametrize(
    ("subject", "muted"),
    [
        ("okx:desk/cross", True),
        ("okx:desk/cross#BTC", True),
        ("okx:desk/hedge/cross", False),  # account "desk/hedge": a name sharing a prefix
        ("okx:desk/hedge", False),
        ("okx:desk%23x/cross", False),  # account "desk#x"
        ("okx:deskx/cross", False),
        ("okx:desk/isolated:A%2Fcross", True),  # a symbol with '/' stays in desk's scope
        ("not an identity", False),
    ],
)
def test_account_mute_covers_its_own_scopes_only(subject: str, muted: bool) -> None:
    m = Mute("okx:desk", until=100.0)
    assert is_muted([m], subject, "shock", critical=False, now=0.0) is muted


def test_mute_on_an_account_whose_name_has_separators_matches_it_exactly() -> None:
    from monitor.model.ids import AccountKey, PositionKey, ScopeKey

    odd = AccountKey("okx", "a#b/cross")
    m = Mute(str(odd), until=100.0)
    inside = PositionKey(ScopeKey("okx", odd.account, "cross"), "BTC")
    assert is_muted([m], str(inside), "shock", critical=False, now=0.0)
    assert not is_muted([m], "okx:a/cross", "shock", critical=False, now=0.0)


def test_a_target_that_is_not_an_identity_is_refused_at_construction() -> None:
    from monitor.model.ids import IdError

    with pytest.raises(IdError):
        Mute("hyperliquid:0xabc#BTC", until=1.0)


def test_an_account_mute_never_covers_another_account_whatever_the_names() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from monitor.model.ids import AccountKey, PositionKey, ScopeKey

    @given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
    def check(a: str, b: str, symbol: str) -> None:
        m = Mute(str(AccountKey("okx", a)), until=100.0)
        subject = str(PositionKey(ScopeKey("okx", b, "cross"), symbol))
        assert is_muted([m], subject, "shock", critical=False, now=0.0) is (a == b)

    check()
