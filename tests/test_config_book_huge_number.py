"""A JSON book may hold an integer of any length (JSON sets no limit and msgspec decodes it
as a Python int): one past float's range is refused as a ConfigError naming the file, the
entry and the field, never an OverflowError out of ``load_config``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError

HUGE = 10**400  # float(10**400) raises OverflowError (float's range ends near 1.8e308)

ACCOUNT: dict[str, Any] = {
    "venue": "bybit",
    "name": "uta",
    "cross_collateral": 10_000,
    "positions": [
        {
            "symbol": "BTCUSDT",
            "size": 0.5,
            "entry_price": 60_000,
            "mark_price": 61_000,
            "oracle_price": 61_000,
            "funding_rate": 0.0001,
            "funding_interval_hours": 8,
            "fee_rate": 0.0005,
            "initial_margin_rate": 0.01,
            "leverage": 10,
            "maintenance": {
                "tiers": [
                    {"floor": 0, "rate": 0.005, "deduction": 0},
                    {"floor": 1_000_000, "rate": 0.01, "deduction": 5_000},
                ]
            },
        },
        {
            "symbol": "SOLUSDT",
            "size": -10,
            "entry_price": 150,
            "margin_mode": "isolated",
            "isolated_margin": 200,
            "maintenance": {"rate": 0.01, "deduction": 0},
        },
    ],
}

FIELDS = [
    ("cross_collateral",),
    ("positions", 0, "size"),
    ("positions", 0, "entry_price"),
    ("positions", 0, "mark_price"),
    ("positions", 0, "oracle_price"),
    ("positions", 0, "funding_rate"),
    ("positions", 0, "funding_interval_hours"),
    ("positions", 0, "fee_rate"),
    ("positions", 0, "initial_margin_rate"),
    ("positions", 0, "leverage"),
    ("positions", 0, "maintenance", "tiers", 0, "rate"),
    ("positions", 0, "maintenance", "tiers", 1, "floor"),  # tier 0's floor is always 0
    ("positions", 0, "maintenance", "tiers", 1, "deduction"),
    ("positions", 1, "isolated_margin"),
    ("positions", 1, "maintenance", "rate"),
    ("positions", 1, "maintenance", "deduction"),
]


def _path(field: tuple[str | int, ...]) -> str:
    return "[1]" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in field)


def test_the_book_with_ordinary_numbers_loads(tmp_path: Path) -> None:
    # the control: the same book without the huge number is valid
    (tmp_path / "book.json").write_text(json.dumps([{**ACCOUNT, "name": "a"}, ACCOUNT]))
    (tmp_path / "monitor.toml").write_text('[venues.bybit]\n[[accounts]]\nfile = "book.json"\n')
    assert len(load_config(tmp_path / "monitor.toml", env={"HOME": str(tmp_path)}).accounts) == 2


@pytest.mark.parametrize("field", FIELDS, ids=_path)
def test_an_integer_past_float_range_is_a_config_error_naming_file_entry_and_field(
    tmp_path: Path, field: tuple[str | int, ...]
) -> None:
    entry = json.loads(json.dumps(ACCOUNT))
    node: Any = entry
    for k in field[:-1]:
        node = node[k]
    node[field[-1]] = HUGE
    book = tmp_path / "book.json"
    # entry [0] is valid: the error names entry [1]
    book.write_text(json.dumps([{**ACCOUNT, "name": "a"}, entry]))
    (tmp_path / "monitor.toml").write_text('[venues.bybit]\n[[accounts]]\nfile = "book.json"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "monitor.toml", env={"HOME": str(tmp_path)})
    err = info.value
    assert err.source == str(book)
    assert err.field == _path(field)
    assert "out of range" in str(err.problem) or "finite" in str(err.problem)
