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
        st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zl", "Zp"]),
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


@pytest.mark.parametrize("char", ["\u2028", "\u2029"], ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("key", ["name", "label"])
def test_a_line_or_paragraph_separator_in_a_name_or_label_is_refused(
    tmp_path: Path, char: str, key: str
) -> None:
    # U+2028/U+2029 (Zl/Zp) break a line wherever str.splitlines, a chat client or a
    # terminal reads them: a one-line alert title or log line would show as two
    text = _toml_string(f"desk{char}forged: all clear")
    other = "label" if key == "name" else "name"
    err = _error(
        tmp_path,
        f"[venues.bybit]\n[[accounts]]\nvenue = 'bybit'\n{key} = {text}\n{other} = 'x'\n"
        "cross_collateral = 1\n",
    )
    assert err.field == f"accounts[0].{key}"
    assert f"U+{ord(char):04X}" in err.problem
    assert char not in str(err)


def test_every_line_break_str_splitlines_knows_is_refused_in_a_name() -> None:
    # the characters str.splitlines() breaks at: the C0/C1 ones (Cc) and U+2028/U+2029
    breaks = [c for c in map(chr, range(0x3000)) if len(f"a{c}b".splitlines()) == 2]
    assert "\u2028" in breaks and "\u2029" in breaks and "\x85" in breaks
    for char in breaks:
        doc = {
            "venues": {"bybit": {}},
            "accounts": [{"venue": "bybit", "name": f"a{char}b", "cross_collateral": 1}],
        }
        with pytest.raises(ConfigError) as info:
            parse_config(doc, Path("monitor.toml"), env=ENV)
        assert f"U+{ord(char):04X}" in info.value.problem
