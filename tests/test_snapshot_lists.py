"""A JSON list of normalized snapshots: each snapshot is its own moment (issue 13.3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.errors import InputError
from monitor.snapshot import load_document


def snap(account: str, size: float, mark: float, collateral: float = 375_000.0) -> dict[str, Any]:
    return {
        "venue": "binance_usdm",
        "account": account,
        "cross_collateral": collateral,
        "positions": [
            {
                "symbol": "BTCUSDT",
                "size": size,
                "entry_price": 20_000,
                "mark_price": mark,
                "maintenance": {"rate": 0.004},
            }
        ],
    }


def write(tmp_path: Path, doc: Any) -> Path:
    p = tmp_path / "list.json"
    p.write_text(json.dumps(doc))
    return p


def test_inspect_prices_each_snapshot_of_a_list_with_its_own_marks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, [snap("a", 10, 15_000), snap("b", 1, 34_880.4, 1_000)])
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by = {s["account"]: s for s in report["accounts"]}
    # a: 375,000 + 10·(15,000 − 20,000) = 325,000 (priced at b's mark it would be 523,804)
    assert by["a"]["equity"] == pytest.approx(325_000.0)
    assert by["a"]["positions"][0]["mark_price"] == 15_000
    # b: 1,000 + 1·(34,880.4 − 20,000) = 15,880.4
    assert by["b"]["equity"] == pytest.approx(15_880.4)


def test_a_list_priced_as_one_refuses_conflicting_marks_naming_both_snapshots(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, [snap("a", 10, 15_000), snap("b", 1, 34_880.4)])
    with pytest.raises(InputError) as exc:
        load_document(path)
    assert exc.value.field == "[1].positions[0].mark_price"
    assert "34880.4 here but 15000 in snapshot [0]" in exc.value.problem
    # the same marks are fine
    assert len(load_document(write(tmp_path, [snap("a", 10, 15_000), snap("b", 1, 15_000)]))) == 2


def test_whatif_refuses_a_conflicting_list_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, [snap("a", 10, 15_000), snap("b", 1, 34_880.4)])
    assert main(["whatif", str(path), "--shock=-10%"]) == 2
    err = capsys.readouterr().err
    assert "[1].positions[0].mark_price" in err and "snapshot [0]" in err


@pytest.mark.parametrize("own_marks", [False, True])
def test_a_list_naming_one_account_twice_is_refused(tmp_path: Path, own_marks: bool) -> None:
    path = write(tmp_path, [snap("a", 10, 15_000), snap("a", 1, 15_000)])
    with pytest.raises(InputError, match=r"binance_usdm:a is already snapshot \[0\]"):
        load_document(path, own_marks=own_marks)
