"""``monitor history``: a mistyped label is answered with the label it probably meant, an
unknown scope with the nearest known one and its label; errors name the command once."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from tests.commands.test_history import ADDR, GOOD, SCOPE, make


def _config(tmp_path: Path) -> Path:
    db = make(tmp_path / "s.db", GOOD)
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[venues.hyperliquid]\n[[accounts]]\nid = "hyperliquid:{ADDR}"\nlabel = "BTC desk"\n'
        f'[store]\npath = "{db}"\n'
    )
    return cfg


def test_a_mistyped_label_gets_the_label_it_probably_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    capsys.readouterr()
    assert main(["history", "BTC dsk", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err == (
        "monitor history: SCOPE: not a scope: 'BTC dsk': no venue; write "
        "VENUE:ACCOUNT[/SCOPE[#SYMBOL]], feed:VENUE[/CHANNEL] or monitor; did you mean the "
        f"label 'BTC desk' (hyperliquid:{ADDR})?\n"
    )


def test_the_nearest_known_scope_is_offered_with_its_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    capsys.readouterr()
    typo = SCOPE.replace("01/cross", "02/cross")
    assert main(["history", typo, "--config", str(cfg)]) == 2
    assert capsys.readouterr().err == (
        f"monitor history: unknown scope '{typo}' (did you mean '{SCOPE}' (BTC desk)?)\n"
    )


def test_thinned_rows_keep_the_worst_point_of_each_bucket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 100 samples at a 20 % margin ratio with one spike to 91.7 % at sample 37: shown in
    # 10 rows, the spike is one of them (even spacing would show samples 0, 11, 22, 33, …)
    t0 = 1_790_000_000.0
    rows = [(SCOPE, t0 + 60 * i, 1000.0, 0.917 if i == 37 else 0.2, 0.3) for i in range(100)]
    db = make(tmp_path / "s.db", rows)
    capsys.readouterr()
    assert main(["history", SCOPE, "--store", db, "--rows", "10"]) == 0
    out = capsys.readouterr().out
    assert "91.7%" in out
    assert out.count("20.0%") == 9
