"""The offline demo's recording is reproducible and internally consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor import demo
from monitor.report import portfolio_of
from monitor.venues.hyperliquid.accounts import clearinghouse_to_snapshot

BUNDLED = Path(__file__).parents[1] / "config" / "demo_recording.jsonl"


def test_the_script_writes_the_bundled_recording_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    assert demo.main([str(out)]) == 0
    assert out.read_bytes() == BUNDLED.read_bytes()


def test_every_account_frame_agrees_with_our_liquidation_prices() -> None:
    checked = 0
    peak = {}
    for line in BUNDLED.read_text().splitlines():
        rec = json.loads(line)
        assert set(rec) == {"ts_recv", "venue", "channel", "frame"}
        if rec["channel"] != "clearinghouseState":
            continue
        snap = clearinghouse_to_snapshot(json.loads(rec["frame"]), "demo")
        for r in portfolio_of([snap]).risks():
            for p in r.positions:
                assert p.venue_liquidation_price is not None
                assert p.liquidation_price == pytest.approx(p.venue_liquidation_price, rel=1e-6)
                checked += 1
            assert r.margin_ratio is not None
            peak[r.key] = max(peak.get(r.key, 0.0), r.margin_ratio)
    assert checked > 60
    # the crash takes the cross pool past 70 % and the isolated SOL past 60 %, never to 100 %
    assert sorted(round(v, 1) for v in peak.values()) == [0.6, 0.7]


def test_the_crash_path_goes_down_and_back() -> None:
    assert demo.drawdown(0, 0.1) == 0.0
    assert demo.drawdown(700, 0.1) == pytest.approx(-0.1)
    assert demo.drawdown(1800, 0.1) == pytest.approx(-0.01)
    assert demo.funding("SOL", 700) > 100 * demo.funding("BTC", 700)
