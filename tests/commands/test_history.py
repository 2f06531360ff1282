"""``monitor history``: the scope named as people write it (venue alias, checksummed address,
label, account), absurd stored values, a missing store."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.logs import reset_logging
from monitor.store.db import open_store

ADDR = "0xabcdef0123456789abcdef0123456789abcdef01"
SCOPE = f"hyperliquid:{ADDR}/cross"


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> Iterator[None]:
    yield
    reset_logging()


def make(path: Path, rows: list[tuple[object, ...]]) -> str:
    async def go() -> None:
        store = await open_store(path)
        try:
            async with store.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO risk_history (scope, ts, equity, margin_ratio, nearest_liq)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
        finally:
            await store.close()

    asyncio.run(go())
    return str(path)


GOOD = [
    (SCOPE, 1_790_000_000.0, 1000.0, 0.25, 0.12),
    ("binanceusdm:main/cross", 1_790_000_000.0, 50.0, 0.5, 0.3),
]


def test_alias_checksummed_address_and_account_name_the_scope(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make(tmp_path / "s.db", GOOD)
    capsys.readouterr()
    assert main(["history", "binance_usdm:main/cross", "--store", db, "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["scope"] == "binanceusdm:main/cross"
    assert "old spelling" in out.err
    checksummed = "0xAbCdEf0123456789abcdef0123456789ABCDEF01"
    assert main(["history", f"hyperliquid:{checksummed}", "--store", db, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scope"] == SCOPE and len(doc["samples"]) == 1  # the account means its cross


def test_a_label_names_the_account_and_heads_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make(tmp_path / "s.db", GOOD)
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[venues.hyperliquid]\n[[accounts]]\nid = "hyperliquid:{ADDR}"\nlabel = "BTC desk"\n'
        f'[store]\npath = "{db}"\n'
    )
    capsys.readouterr()
    assert main(["history", "BTC desk", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SCOPE} (BTC desk): 1 samples")
    assert "25.0%" in out  # margin ratio 0.25


def test_an_unknown_scope_gets_the_nearest_known_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make(tmp_path / "s.db", GOOD)
    capsys.readouterr()
    assert main(["history", "binanceusdm:mian/cross", "--store", db]) == 2
    assert "did you mean 'binanceusdm:main/cross'?" in capsys.readouterr().err


def test_a_missing_store_is_an_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.db"
    assert main(["history", SCOPE, "--store", str(missing)]) == 1
    assert "no store yet" in capsys.readouterr().err
    assert not missing.exists()


def test_absurd_stored_values_are_shown_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make(
        tmp_path / "s.db",
        [
            (SCOPE, 1e300, math.inf, 1e300, -1e300),
            (SCOPE, -1e300, 1.0, -5.0, 0.1),
            (SCOPE, 1_790_000_000.0, -math.inf, math.inf, math.inf),
        ],
    )
    capsys.readouterr()
    assert main(["history", SCOPE, "--store", db]) == 0
    out = capsys.readouterr().out
    # the sample at ts −1e300 is before any --since (0 without it): 2 shown
    assert "2 samples" in out and "1e+300" in out and "1e+302%" in out and "-1e+302%" in out
    assert max(len(line) for line in out.splitlines()) < 120
    assert main(["history", SCOPE, "--store", db, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # strict JSON: no Infinity
    assert doc["samples"][0]["margin_ratio"] is None  # ts 1.79e9 sorts first; inf → null
