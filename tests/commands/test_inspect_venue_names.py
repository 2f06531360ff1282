"""A snapshot document names its venue as ``[venues]`` does (``binanceusdm``) or by its
rule-set name (``binance_usdm``): both are priced with the same rules; the label of the
account configured under either spelling is shown."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from monitor.cli import main
from tests.commands.test_inspect import SNAP


def _inspect(tmp_path: Path, doc: dict[str, object], *extra: str) -> tuple[int, str, str]:
    path = tmp_path / f"{doc['venue']}.json"
    path.write_text(json.dumps(doc))
    code = main(["inspect", str(path), *extra])
    return code, path.name, str(path)


def test_the_venue_as_in_venues_and_its_rule_set_name_give_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canonical = copy.deepcopy(SNAP) | {"venue": "binanceusdm"}
    old = copy.deepcopy(SNAP) | {"venue": "binance_usdm"}
    assert _inspect(tmp_path, canonical, "--json")[0] == 0
    a = json.loads(capsys.readouterr().out)["accounts"]
    assert _inspect(tmp_path, old, "--json")[0] == 0
    b = json.loads(capsys.readouterr().out)["accounts"]
    assert [s["venue"] for s in a] == ["binanceusdm"]
    for doc in (a, b):
        (btc,) = doc[0]["positions"]
        # cross: 10,000 + 0.5·(p − 60,000) = 0.004·0.5·p → p = 20,000 / 0.498 ≈ 40,160.64
        assert btc["liquidation_price"] == pytest.approx(20000 / 0.498, rel=1e-9)
    assert a[0]["margin_ratio"] == b[0]["margin_ratio"]


def test_an_unknown_venue_names_the_venues_and_the_rule_set_spellings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, path = _inspect(tmp_path, copy.deepcopy(SNAP) | {"venue": "binance"})
    assert code == 2
    assert capsys.readouterr().err == (
        f"monitor inspect: {path}: venue: unknown venue 'binance' (known: hyperliquid, dydx, "
        "binanceusdm, bybit, okx, generic; the rule-set names dydx_v4, binance_usdm are "
        "accepted too)\n"
    )


def test_the_label_of_a_manual_account_is_shown_under_either_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        '[[accounts]]\nvenue = "binanceusdm"\nname = "main"\ncross_collateral = 1\n'
        'label = "binance main"\n'
        '[[accounts.positions]]\nsymbol = "BTCUSDT"\nsize = 0.1\nentry_price = 60000\n'
        "maintenance = { rate = 0.004 }\n"
    )
    for venue in ("binanceusdm", "binance_usdm"):
        code, _, _ = _inspect(
            tmp_path, copy.deepcopy(SNAP) | {"venue": venue}, "--config", str(cfg)
        )
        assert code == 0
        assert capsys.readouterr().out.splitlines()[0] == f"{venue} main (binance main)  [cross]"


def test_past_liquidation_the_json_report_has_no_loss_if_liquidated_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # long 1 at entry 1,000, mark 850, collateral 100, 5 %: equity 100 − 150 = −50 ≤ 0,
    # liquidation price 947.37 is above the mark: already past it. The old report said
    # loss_if_liquidated = 1·(850 − 947.37) = −97.37, a "loss" that reads as a gain.
    doc: dict[str, object] = {
        "venue": "generic",
        "account": "acct",
        "cross_collateral": 100,
        "positions": [
            {"symbol": "BTC", "size": 1, "entry_price": 1000, "mark_price": 850,
             "maintenance": {"rate": 0.05}}
        ],
    }  # fmt: skip
    assert _inspect(tmp_path, doc, "--json")[0] == 0
    (scope,) = json.loads(capsys.readouterr().out)["accounts"]
    assert scope["liquidatable"] is True
    (btc,) = scope["positions"]
    # 100 + (p − 1,000) = 0.05·p → p = 900 / 0.95 ≈ 947.37
    assert btc["liquidation_price"] == pytest.approx(900 / 0.95)
    assert btc["loss_if_liquidated"] is None
    # a healthy position keeps its figure: collateral 300, liquidation at
    # 300 + (p − 1,000) = 0.05·p → p = 700 / 0.95 ≈ 736.84, below the mark 850
    doc["cross_collateral"] = 300
    assert _inspect(tmp_path, doc, "--json")[0] == 0
    (scope,) = json.loads(capsys.readouterr().out)["accounts"]
    assert scope["liquidatable"] is False
    assert scope["positions"][0]["loss_if_liquidated"] > 0
