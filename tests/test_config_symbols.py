"""Position symbols (manual positions in TOML and JSON books) and the symbols a venue watches
hold no invisible control or format character (Unicode Cc/Cf: C0/C1 controls, bidi
overrides, a zero-width space, a byte-order mark), as account names and labels do not: a
``BTC\\u200b`` position is never priced by ``BTC`` and reads as it in an alert. The error
names the file, the entry, the field and the code point. Real venue symbols all pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError

ENV = {"HOME": "/home/u"}

#: C0, DEL, C1 (NEL, CSI), bidi override and isolate, zero-width space, BOM, soft hyphen
HIDDEN = ["\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u202e", "\u2067", "\u200b", "\ufeff", "\xad"]
#: symbols as venues write them: Hyperliquid perps, HIP-3 dex coins, spot (@index) and
#: kPEPE; dYdX markets; ccxt unified symbols; Binance/Bybit ids; OKX swaps
REAL = [
    "BTC",
    "kPEPE",
    "xyz:TSLA",
    "@107",
    "PURR/USDC",
    "BTC-USD",
    "BTC/USDT:USDT",
    "1000PEPEUSDT",
    "BTC-USDT-SWAP",
    "ETH-PERP",
]


def _position(symbol: str) -> str:
    return (
        f"[[accounts.positions]]\nsymbol = {json.dumps(symbol)}\nsize = 1\nentry_price = 100\n"
        "mark_price = 100\n"
    )


def _toml(tmp_path: Path, symbols: list[str]) -> Path:
    text = "[venues.bybit]\n[[accounts]]\nvenue = 'bybit'\nname = 'desk'\ncross_collateral = 1\n"
    path = tmp_path / "monitor.toml"
    path.write_text(text + "".join(_position(s) for s in symbols), encoding="utf-8")
    return path


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_a_toml_position_symbol_with_a_control_or_format_character_is_refused(
    tmp_path: Path, char: str
) -> None:
    path = _toml(tmp_path, ["ETHUSDT", f"BTC{char}USDT"])
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    err = info.value
    assert err.source == str(path)
    assert err.field == "accounts[0].positions[1].symbol"
    assert f"U+{ord(char):04X}" in err.problem
    assert char not in str(err)  # the code point is shown, never the character


def test_a_book_position_symbol_with_a_zero_width_space_names_the_book_and_entry(
    tmp_path: Path,
) -> None:
    pos = {"symbol": "BTC", "size": 1, "entry_price": 100, "mark_price": 100}
    book = [
        {"venue": "bybit", "name": "a", "cross_collateral": 1, "positions": [pos]},
        {
            "venue": "bybit",
            "name": "b",
            "cross_collateral": 1,
            "positions": [pos, {**pos, "symbol": "BTC\u200b"}],
        },
    ]
    (tmp_path / "book.json").write_text(json.dumps(book), encoding="utf-8")
    path = tmp_path / "monitor.toml"
    path.write_text('[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert info.value.source == str(tmp_path / "book.json")
    assert info.value.field == "[1].positions[1].symbol"
    assert "U+200B (ZERO WIDTH SPACE)" in info.value.problem


def test_a_watched_venue_symbol_with_a_bidi_override_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[venues.bybit]\nsymbols = ["BTCUSDT", "ETH\\u202eUSDT"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert info.value.field == "venues.bybit.symbols[1]"
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in info.value.problem


def test_real_venue_symbols_are_kept_as_written(tmp_path: Path) -> None:
    path = _toml(tmp_path, REAL)
    (tmp_path / "monitor.toml").write_text(
        path.read_text(encoding="utf-8").replace(
            "[venues.bybit]\n", f"[venues.bybit]\nsymbols = {json.dumps(REAL)}\n", 1
        ),
        encoding="utf-8",
    )
    cfg = load_config(path, env=ENV)
    snapshot = cfg.accounts[0].snapshot
    assert snapshot is not None
    assert [p.symbol for p in snapshot.positions] == REAL
    assert list(cfg.venues["bybit"].symbols) == REAL


@pytest.mark.parametrize("char", ["\u2028", "\u2029"], ids=lambda c: f"U+{ord(c):04X}")
def test_a_line_separator_in_a_position_symbol_is_refused(tmp_path: Path, char: str) -> None:
    path = _toml(tmp_path, [f"BTC{char}USDT"])
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert info.value.field == "accounts[0].positions[0].symbol"
    assert f"U+{ord(char):04X}" in info.value.problem
