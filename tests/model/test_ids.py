"""Typed identities: one formatter, one parser, injective over arbitrary names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.ids import (
    AccountKey,
    FeedKey,
    IdError,
    MonitorKey,
    PositionKey,
    ScopeKey,
    Subject,
    covers,
    parse_subject,
    parse_user,
)
from monitor.model.venues import BINANCE_USDM, DYDX, HYPERLIQUID

venues = st.sampled_from([HYPERLIQUID, DYDX, BINANCE_USDM, "okx", "kucoinfutures", "x.y-z_1"])
names = st.text(min_size=1)
scopes = st.one_of(st.sampled_from(["cross", "venue-ratio"]), names.map(lambda s: f"isolated:{s}"))
accounts = st.builds(AccountKey, venues, names)
scope_keys = st.builds(ScopeKey, venues, names, scopes)
subjects: st.SearchStrategy[Subject] = st.one_of(
    accounts,
    scope_keys,
    st.builds(PositionKey, scope_keys, names),
    st.builds(FeedKey, venues, st.none() | names),
    st.just(MonitorKey()),
)


@given(subjects)
def test_any_identity_round_trips_through_its_text(subject: Subject) -> None:
    assert parse_subject(str(subject)) == subject


@given(subjects, subjects)
def test_two_identities_never_print_the_same_text(a: Subject, b: Subject) -> None:
    assert (str(a) == str(b)) == (a == b)


@given(scope_keys, names)
def test_engine_splits_find_the_real_separators(key: ScopeKey, symbol: str) -> None:
    # the engine (monitor/alerts/engine.py, monitor/engine/core.py) splits subjects by hand
    text = str(PositionKey(key, symbol))
    assert text.split("#", 1)[0] == str(key)
    assert text.partition(":")[0] == key.venue
    assert str(key).rpartition("/")[0] == str(key.account_key)
    assert str(key).startswith(str(key.account_key) + "/")


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (ScopeKey("hyperliquid", "0xabc", "cross"), "hyperliquid:0xabc/cross"),
        (ScopeKey("dydx", "dydx1qq/0", "cross"), "dydx:dydx1qq/0/cross"),
        (
            ScopeKey("hyperliquid", "0xab@xyz", "isolated:xyz:TSLA"),
            "hyperliquid:0xab@xyz/isolated:xyz:TSLA",
        ),
        (ScopeKey("okx", "a#b", "isolated:A/B"), "okx:a%23b/isolated:A%2FB"),
        (AccountKey("okx", "desk/hedge"), "okx:desk/hedge"),
        (AccountKey("okx", "desk/cross"), "okx:desk%2Fcross"),
        (AccountKey("okx", "100%\n"), "okx:100%25%0A"),
        (FeedKey("okx", "account:dydx1/0"), "feed:okx/account:dydx1/0"),
    ],
)
def test_text_forms_keep_ordinary_names_as_written(key: Subject, text: str) -> None:
    assert str(key) == text
    assert parse_subject(text) == key


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("0xabc", "no venue"),
        ("Hyperliquid:0xabc", "lower-case"),
        ("feed:0xabc", None),
        ("hyperliquid:", "cannot be empty"),
        ("hyperliquid:0xabc/cross#", "empty symbol"),
        ("hyperliquid:0xabc#BTC", "needs a scope"),
        ("hyperliquid:0x%zz", "escape"),
        ("feed:okx/", "empty feed channel"),
    ],
)
def test_bad_names_are_refused_with_the_reason(text: str, why: str | None) -> None:
    if why is None:  # a valid feed subject, for contrast
        assert parse_subject(text) == FeedKey("0xabc")
        return
    with pytest.raises(IdError, match=why):
        parse_subject(text)


def test_construction_refuses_reserved_and_malformed_parts() -> None:
    with pytest.raises(IdError, match="reserved"):
        AccountKey("feed", "okx")
    with pytest.raises(IdError, match="scope"):
        ScopeKey("okx", "main", "hedge")
    with pytest.raises(IdError, match="empty"):
        PositionKey(ScopeKey("okx", "main", "cross"), "")


def test_user_input_normalises_alias_case_and_checksummed_address_with_notes() -> None:
    addr = "0xAbCdEf0123456789abcdef0123456789ABCDEF01"
    parsed = parse_user("Binance_USDM:main/cross")
    assert parsed.subject == ScopeKey(BINANCE_USDM, "main", "cross")
    assert parsed.notes and "binanceusdm" in parsed.notes[0]
    parsed = parse_user(f"hyperliquid:{addr}@xyz")
    assert parsed.subject == AccountKey(HYPERLIQUID, addr.lower() + "@xyz")
    assert any("at the venue" in n for n in parsed.notes)
    assert parse_user("dydx_v4:dydx1qq/0").subject == AccountKey(DYDX, "dydx1qq/0")


@pytest.mark.parametrize(
    ("target", "subject", "covered"),
    [
        ("okx:desk", "okx:desk/cross", True),
        ("okx:desk", "okx:desk/isolated:BTC#BTC", True),
        ("okx:desk", "okx:desk/hedge/cross", False),  # another account, not a child
        ("okx:desk", "okx:desk/hedge", False),
        ("okx:desk", "okx:deskx/cross", False),
        ("okx:desk/cross", "okx:desk/cross#BTC", True),
        ("okx:desk/cross", "okx:desk/isolated:BTC", False),
        ("feed:okx", "feed:okx/tickers", True),
        ("feed:okx/tickers", "feed:okx", False),
        ("monitor", "monitor", True),
        ("monitor", "okx:desk", False),
    ],
)
def test_covers_compares_parts_never_prefixes(target: str, subject: str, covered: bool) -> None:
    assert covers(parse_subject(target), parse_subject(subject)) is covered


@pytest.mark.parametrize("account", ["0xAbC", "a b/c#d", "dydx1xyz/3"])
def test_a_scope_keys_account_key_is_the_checked_key_made_once(account: str) -> None:
    """The account key a scope key hands out (made without a second check) equals, hashes and
    prints as the key made from scratch, and is the same object every time."""
    key = ScopeKey("hyperliquid", account, "cross")
    made = AccountKey("hyperliquid", account)
    got = key.account_key
    assert got == made and hash(got) == hash(made) and str(got) == str(made)
    assert repr(got) == repr(made)
    assert key.account_key is got
    assert {got: 1}[made] == 1


@pytest.mark.parametrize(
    ("account", "scope"),
    [
        (AccountKey("hyperliquid", "0xabc"), "cross"),
        (AccountKey("okx", "a#b"), "isolated:X/Y"),
        (AccountKey("dydx", "dydx1abc/128"), "venue-ratio"),
    ],
)
def test_a_scope_key_made_of_its_account_key_is_the_same_key_sharing_its_text(
    account: AccountKey, scope: str
) -> None:
    made = ScopeKey.of(account, scope)
    plain = ScopeKey(account.venue, account.account, scope)
    assert made == plain and hash(made) == hash(plain) and str(made) == str(plain)
    assert made.account_key is account  # the account's key itself, not a copy
    assert made.account_text is str(account)  # and its text form
    assert parse_subject(str(made)) == plain


def test_a_scope_key_made_of_an_account_key_checks_the_scope() -> None:
    with pytest.raises(IdError):
        ScopeKey.of(AccountKey("bybit", "a"), "isolated:")
