"""Labels are unique across the configuration (TOML entries and JSON books together): two
accounts with one label would make an alert name either. The error names the file, the entry
and account that repeats the label, the entry and account that has it, and the label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.errors import ConfigError

ENV = {"HOME": "/home/u", "K": "key-123456", "S": "secret-123456"}
HL = "0x" + "1a" * 20


def _manual(name: str, label: str | None) -> str:
    text = f"[[accounts]]\nvenue = 'bybit'\nname = '{name}'\ncross_collateral = 1\n"
    return text + (f"label = {json.dumps(label)}\n" if label is not None else "")


def _load(tmp_path: Path, toml: str, book: list[dict[str, object]] | None = None) -> Config:
    if book is not None:
        (tmp_path / "book.json").write_text(json.dumps(book), encoding="utf-8")
    path = tmp_path / "monitor.toml"
    path.write_text("[venues.bybit]\n" + toml, encoding="utf-8")
    return load_config(path, env=ENV)


def _error(tmp_path: Path, toml: str, book: list[dict[str, object]] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml, book)
    return info.value


def test_two_manual_accounts_with_one_label_are_refused_naming_both(tmp_path: Path) -> None:
    err = _error(tmp_path, _manual("a", "desk") + _manual("b", "desk"))
    assert err.source == str(tmp_path / "monitor.toml")
    assert err.field == "accounts[1].label"
    assert "'desk'" in err.problem
    assert "bybit:b" in err.problem  # the account that repeats it
    assert "accounts[0] (bybit:a)" in err.problem  # the account that has it


def test_a_label_is_unique_across_account_kinds(tmp_path: Path) -> None:
    toml = (
        f'[[accounts]]\nid = "hyperliquid:{HL}"\nlabel = "main"\n'
        '[[accounts]]\nid = "binanceusdm:main"\napi_key = "${K}"\nsecret = "${S}"\n'
        'label = "main"\n'
    )
    err = _error(tmp_path, toml)
    assert err.field == "accounts[1].label"
    assert f"accounts[0] (hyperliquid:{HL.lower()})" in err.problem
    assert "binanceusdm:main" in err.problem


def test_labels_compare_after_stripping_and_case_sensitively(tmp_path: Path) -> None:
    # "desk " is stripped to "desk" as every label is: the same label
    err = _error(tmp_path, _manual("a", "desk") + _manual("b", "desk "))
    assert err.field == "accounts[1].label"
    # "Desk" and "desk" differ: both kept, as are accounts without a label
    (tmp_path / "ok").mkdir()
    cfg = _load(
        tmp_path / "ok",
        _manual("a", "desk") + _manual("b", "Desk") + _manual("c", None) + _manual("d", None),
    )
    assert [a.label for a in cfg.accounts] == ["desk", "Desk", None, None]


def test_a_label_repeated_inside_a_book_names_the_book_and_both_entries(tmp_path: Path) -> None:
    book: list[dict[str, object]] = [
        {"venue": "bybit", "name": "a", "label": "hedge", "cross_collateral": 1},
        {"venue": "bybit", "name": "b", "label": "other", "cross_collateral": 1},
        {"venue": "bybit", "name": "c", "label": "hedge", "cross_collateral": 1},
    ]
    err = _error(tmp_path, '[[accounts]]\nfile = "book.json"\n', book)
    assert err.source == str(tmp_path / "book.json")
    assert err.field == "[2].label"
    assert "'hedge' (of bybit:c) is already the label of [0] (bybit:a)" in err.problem


def test_a_book_label_already_used_in_toml_names_the_toml_file(tmp_path: Path) -> None:
    book: list[dict[str, object]] = [
        {"venue": "bybit", "name": "b", "label": "desk", "cross_collateral": 1}
    ]
    err = _error(tmp_path, _manual("a", "desk") + '[[accounts]]\nfile = "book.json"\n', book)
    assert err.source == str(tmp_path / "book.json") and err.field == "[0].label"
    assert f"the label of {tmp_path / 'monitor.toml'}: accounts[0] (bybit:a)" in err.problem


def test_a_toml_label_already_used_in_a_book_names_the_book(tmp_path: Path) -> None:
    book: list[dict[str, object]] = [
        {"venue": "bybit", "name": "b", "label": "desk", "cross_collateral": 1}
    ]
    err = _error(tmp_path, '[[accounts]]\nfile = "book.json"\n' + _manual("a", "desk"), book)
    assert err.source == str(tmp_path / "monitor.toml") and err.field == "accounts[1].label"
    assert f"the label of {tmp_path / 'book.json'}: [0] (bybit:b)" in err.problem
