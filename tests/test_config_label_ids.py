"""A label that reads as another account's id (or its scope, a feed, the monitor) is refused.

``monitor mute``, ``history`` and ``status`` read a label before an id (``Names.by_label``,
any case): an account labelled ``bybit:a`` would take ``monitor mute bybit:a`` for itself
and silence the wrong account, and its alerts would be headed with another account's id.
The error names the file, both entries and both accounts. A label equal to the account's own
id (any case, an old venue spelling) stays allowed: it names that account either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.commands._store import Names
from tests.test_config_labels import HL, _error, _load, _manual

DYDX = "dydx1" + "q" * 38


def test_a_label_equal_to_another_accounts_id_is_refused_naming_both(tmp_path: Path) -> None:
    err = _error(tmp_path, _manual("a", None) + _manual("b", "bybit:a"))
    assert err.source == str(tmp_path / "monitor.toml")
    assert err.field == "accounts[1].label"
    assert "'bybit:a' (the label of bybit:b)" in err.problem
    assert "the id of accounts[0] (bybit:a)" in err.problem


def test_the_label_is_refused_whichever_entry_comes_first(tmp_path: Path) -> None:
    # the label is written before the account whose id it is
    err = _error(tmp_path, _manual("b", "bybit:a") + _manual("a", None))
    assert err.field == "accounts[0].label"
    assert "the id of accounts[1] (bybit:a)" in err.problem


@pytest.mark.parametrize(
    "label",
    [
        "BYBIT:A",  # by_label compares in any case
        " bybit:a ",  # stripped, as every label
        "bybit:a/cross",  # a scope of the other account
        "bybit:a/isolated:BTCUSDT",
        "bybit:a/cross#BTCUSDT",  # a position of it
    ],
)
def test_spellings_of_another_accounts_id_or_scopes_are_refused(tmp_path: Path, label: str) -> None:
    err = _error(tmp_path, _manual("a", None) + _manual("b", label))
    assert err.field == "accounts[1].label"
    assert "accounts[0] (bybit:a)" in err.problem


def test_an_old_venue_spelling_and_a_checksummed_address_are_the_same_id(tmp_path: Path) -> None:
    toml = (
        '[[accounts]]\nid = "binanceusdm:main"\napi_key = "${K}"\nsecret = "${S}"\n'
        f'[[accounts]]\nid = "hyperliquid:{HL}"\nlabel = "binance_usdm:main"\n'
    )
    err = _error(tmp_path, toml)
    assert err.field == "accounts[1].label"
    assert "(binanceusdm:main)" in err.problem
    upper = "0x" + "1A" * 20
    toml = (
        f'[[accounts]]\nid = "hyperliquid:{HL}"\n'
        f'[[accounts]]\nid = "binanceusdm:main"\napi_key = "${{K}}"\nsecret = "${{S}}"\n'
        f'label = "Hyperliquid:{upper}"\n'
    )
    (tmp_path / "2").mkdir()
    err = _error(tmp_path / "2", toml)
    assert err.field == "accounts[1].label"
    assert f"(hyperliquid:{HL})" in err.problem


def test_a_dex_or_child_account_of_another_account_is_refused(tmp_path: Path) -> None:
    # a HIP-3 dex account 0x…@xyz belongs to the address; dYdX 128 is a child of parent 0
    toml = f'[[accounts]]\nid = "hyperliquid:{HL}"\n' + _manual("b", f"hyperliquid:{HL}@xyz")
    err = _error(tmp_path, toml)
    assert err.field == "accounts[1].label"
    assert f"accounts[0] (hyperliquid:{HL})" in err.problem
    toml = f'[[accounts]]\nid = "dydx:{DYDX}/0"\nparent = true\n' + _manual("b", f"dydx:{DYDX}/128")
    (tmp_path / "2").mkdir()
    err = _error(tmp_path / "2", toml)
    assert err.field == "accounts[1].label"
    assert f"accounts[0] (dydx:{DYDX}/0)" in err.problem


def test_a_label_naming_its_own_scope_is_refused_its_own_id_is_allowed(tmp_path: Path) -> None:
    # `monitor mute bybit:b/cross` would silence the whole account, not its cross pool
    err = _error(tmp_path, _manual("b", "bybit:b/cross"))
    assert err.field == "accounts[0].label"
    assert "names bybit:b/cross, a scope of its own account" in err.problem
    (tmp_path / "ok").mkdir()
    cfg = _load(tmp_path / "ok", _manual("a", "bybit:a") + _manual("b", "Bybit:B"))
    assert [a.label for a in cfg.accounts] == ["bybit:a", "Bybit:B"]
    names = Names.of(cfg)
    assert [str(k) for k in names.by_label("bybit:a")] == ["bybit:a"]  # itself either way


@pytest.mark.parametrize(
    ("label", "words"),
    [("monitor", "the monitor itself"), ("Monitor", "the monitor itself"), ("feed:bybit", "feed")],
)
def test_a_label_that_names_the_monitor_or_a_feed_is_refused(
    tmp_path: Path, label: str, words: str
) -> None:
    err = _error(tmp_path, _manual("a", label))
    assert err.field == "accounts[0].label"
    assert words in err.problem


@pytest.mark.parametrize(
    "label", ["desk:main", "HL: main", "okx:desk", "main desk", "bybit main", "a:b@c"]
)
def test_labels_with_a_colon_that_name_no_configured_account_stay_allowed(
    tmp_path: Path, label: str
) -> None:
    cfg = _load(tmp_path, _manual("a", label) + _manual("b", None))
    assert cfg.accounts[0].label == label


def test_a_book_label_equal_to_a_toml_id_names_the_book_and_the_toml_entry(tmp_path: Path) -> None:
    book: list[dict[str, object]] = [
        {"venue": "bybit", "name": "b", "label": "bybit:a", "cross_collateral": 1}
    ]
    err = _error(tmp_path, _manual("a", None) + '[[accounts]]\nfile = "book.json"\n', book)
    assert err.source == str(tmp_path / "book.json") and err.field == "[0].label"
    assert f"the id of {tmp_path / 'monitor.toml'}: accounts[0] (bybit:a)" in err.problem


def test_a_toml_label_equal_to_a_book_id_names_the_book_entry(tmp_path: Path) -> None:
    book: list[dict[str, object]] = [{"venue": "bybit", "name": "a", "cross_collateral": 1}]
    err = _error(tmp_path, '[[accounts]]\nfile = "book.json"\n' + _manual("b", "bybit:a"), book)
    assert err.source == str(tmp_path / "monitor.toml") and err.field == "accounts[1].label"
    assert f"the id of {tmp_path / 'book.json'}: [0] (bybit:a)" in err.problem
