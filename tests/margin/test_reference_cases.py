"""Every worked example the venues publish (tests/fixtures/reference/margin_cases.json) goes
through ``monitor inspect --json`` and must match the venue's printed figure within the case's
own tolerance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main

CASES = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "reference" / "margin_cases.json").read_text()
)["cases"]


def _inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any) -> dict[str, Any]:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(doc))
    assert main(["inspect", str(path), "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    report: dict[str, Any] = json.loads(out.out)
    return report


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reference_case_matches_the_venue_figure(
    case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _inspect(tmp_path, capsys, case["input"])
    assert report["version"] == 1
    by_symbol = {p["symbol"]: p for scope in report["accounts"] for p in scope["positions"]}
    tol = case["tolerance"]
    checked = 0
    for symbol, expected in case["expected"]["positions"].items():
        got = by_symbol[symbol]
        for key, want in expected.items():
            if key == "unrealized_pnl" and "abs_pnl" in tol:
                assert got[key] == pytest.approx(want, abs=tol["abs_pnl"]), key
            elif "abs" in tol:
                assert got[key] == pytest.approx(want, abs=tol["abs"]), key
            else:
                assert got[key] == pytest.approx(want, rel=tol["rel"]), key
            checked += 1
    assert checked >= 1


def test_every_reference_case_is_run() -> None:
    assert len(CASES) >= 8
