"""Account names and labels: no invisible control or format character (Unicode Cc/Cf: the
bidi overrides of Trojan Source, zero-width characters, C0/C1 controls) in a manual account's
name or any account's label, in TOML and in a JSON book alike; the error names the file, the
key and the character's code point."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

ENV = {"HOME": "/home/u"}
HL = "0x" + "1a" * 20

#: the bidi controls, a zero-width space, a BOM, C0 and C1 controls
HIDDEN = [
    *(chr(c) for c in range(0x202A, 0x202F)),
    *(chr(c) for c in range(0x2066, 0x206A)),
    "\u200e",
    "\u200f",
    "\u061c",
    "\u200b",
    "\ufeff",
    "\x1b",
    "\x00",
    "\x7f",
    "\x85",
    "\x9b",
]


def _load(tmp_path: Path, toml: str) -> object:
    path = tmp_path / "monitor.toml"
    path.write_text(toml, encoding="utf-8")
    return load_config(path, env=ENV)


def _error(tmp_path: Path, toml: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml)
    return info.value


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (json.dumps escapes what TOML needs escaped)."""
    return json.dumps(text)


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_a_manual_account_name_with_a_control_or_format_character_is_refused(
    tmp_path: Path, char: str
) -> None:
    name = _toml_string(f"desk{char}gnp")
    err = _error(
        tmp_path,
        f"[venues.bybit]\n[[accounts]]\nvenue = 'bybit'\nname = {name}\ncross_collateral = 1\n",
    )
    assert err.source == str(tmp_path / "monitor.toml")
    assert err.field == "accounts[0].name"
    assert f"U+{ord(char):04X}" in err.problem
    assert char not in str(err)  # the message shows the code point, never the character


@pytest.mark.parametrize(
    ("account", "where"),
    [
        (f'id = "hyperliquid:{HL}"', "accounts[0].label"),
        ('id = "binanceusdm:main"\napi_key = "${K}"\nsecret = "${S}"', "accounts[0].label"),
        ("venue = 'bybit'\nname = 'uta'\ncross_collateral = 1", "accounts[0].label"),
    ],
)
def test_a_label_with_a_bidi_override_is_refused_for_every_account_kind(
    tmp_path: Path, account: str, where: str
) -> None:
    label = _toml_string("main \u202eBTC short\u202c")
    err = _error(tmp_path, f"[venues.bybit]\n[[accounts]]\n{account}\nlabel = {label}\n")
    assert err.field == where
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in err.problem


def test_a_book_entry_name_with_a_control_character_names_the_book_entry_and_code_point(
    tmp_path: Path,
) -> None:
    book = [
        {"venue": "bybit", "name": "a", "cross_collateral": 1},
        {"venue": "bybit", "name": "b\u2067c", "cross_collateral": 1},
    ]
    (tmp_path / "book.json").write_text(json.dumps(book), encoding="utf-8")
    err = _error(tmp_path, '[venues.bybit]\n[[accounts]]\nfile = "book.json"\n')
    assert err.source == str(tmp_path / "book.json")
    assert err.field == "[1].name"
    assert "U+2067" in err.problem


@given(
    st.text(
        st.characters(exclude_categories=["Cc", "Cf", "Cs"]),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s.strip() != "")
)
def test_names_and_labels_without_control_or_format_characters_are_kept(text: str) -> None:
    # accents, CJK, emoji, a no-break space, private-use code points: all visible, all kept
    # (stripped of surrounding blanks, as before)
    doc = {
        "venues": {"bybit": {}},
        "accounts": [{"venue": "bybit", "name": text, "label": text, "cross_collateral": 1}],
    }
    [acct] = parse_config(doc, Path("monitor.toml"), env=ENV).accounts
    assert acct.account == acct.label == text.strip()
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in acct.account)


@pytest.mark.parametrize(
    "name", ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "desk \U0001f469\u200d\U0001f4bb"]
)
def test_the_zero_width_joiners_of_persian_words_and_emoji_sequences_are_kept(name: str) -> None:
    # "می‌خواهم" needs U+200C; 👩‍💻 is woman + U+200D + laptop
    doc = {
        "venues": {"bybit": {}},
        "accounts": [{"venue": "bybit", "name": name, "label": name, "cross_collateral": 1}],
    }
    [acct] = parse_config(doc, Path("monitor.toml"), env=ENV).accounts
    assert acct.account == acct.label == name
