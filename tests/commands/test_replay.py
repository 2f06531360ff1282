"""``monitor replay``: deterministic output, text and JSON forms, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from monitor.cli import main
from monitor.commands.replay import printer
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, Tier
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey
from monitor.venues.recording import Batch, JsonlRecorder, Record

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
DEMO = Path(__file__).parents[2] / "config" / "demo_recording.jsonl"
USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
DYDX = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4/0"


def recording(path: Path) -> Path:
    """Hyperliquid account then a tick; dYdX markets, subaccount and its delta."""
    hl, dy = FEEDS / "hyperliquid", FEEDS / "dydx"
    rec = JsonlRecorder(path)
    rec(
        10.0,
        "hyperliquid",
        f"clearinghouseState:{USER}",
        (hl / "ws_clearinghouseState.json").read_text(),
    )
    rec(11.0, "hyperliquid", "activeAssetCtx:BTC", (hl / "ws_activeAssetCtx.json").read_text())
    rec(12.0, "dydx_v4", "rest:perpetualMarkets", (dy / "rest_perpetualMarkets.json").read_text())
    rec(
        13.0,
        "dydx_v4",
        f"v4_subaccounts:{DYDX}",
        (dy / "ws_subscribed_v4_subaccounts.json").read_text(),
    )
    rec(
        14.0,
        "dydx_v4",
        f"v4_subaccounts:{DYDX}",
        (dy / "ws_channel_data_v4_subaccounts.json").read_text(),
    )
    rec(15.0, "dydx_v4", "ws", "garbage")
    rec.close()
    return path


def test_replay_prints_one_json_line_per_touched_scope(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(recording(tmp_path / "r.jsonl")), "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(x) for x in captured.out.splitlines()]
    # the REST markets (12.0) touch no scope; the delta's position and balance updates touch
    # the same cross pool: one line; the garbage frame (15.0) is refused
    assert [(x["ts"], x["scope"]) for x in lines] == [
        (10.0, f"hyperliquid:{USER}/cross"),
        (10.0, f"hyperliquid:{USER}/isolated:ETH"),
        (11.0, f"hyperliquid:{USER}/cross"),
        (13.0, f"dydx:{DYDX}/cross"),
        (14.0, f"dydx:{DYDX}/cross"),
    ]
    # after the tick: cross equity = totalRawUsd + szi·markPx = -4190 + 0.05·95031
    assert lines[2]["equity"] == pytest.approx(-4190.0 + 0.05 * 95031.0)
    # dYdX after the delta: equity = USDC + s·oracle = -2127.303114 + 0.15·95018.54,
    # maintenance = |s|·oracle·MMF = 0.15·95018.54·0.012
    last = lines[-1]
    assert last["equity"] == pytest.approx(-2127.303114 + 0.15 * 95018.54)
    assert last["maintenance_margin"] == pytest.approx(0.15 * 95018.54 * 0.012)
    assert last["margin_ratio"] == pytest.approx(last["maintenance_margin"] / last["equity"])
    assert "6 frames" in captured.err
    assert "1 refused" in captured.err


def test_replay_twice_gives_identical_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recording(tmp_path / "r.jsonl")
    outs = []
    for _ in range(2):
        assert main(["replay", str(path)]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]
    assert (
        outs[0]
        .splitlines()[0]
        .startswith(f"1970-01-01T00:00:10.000Z hyperliquid:{USER}/cross equity=561.55")
    )


@pytest.mark.skipif(not DEMO.exists(), reason="the bundled demo recording is not there")
def test_the_bundled_demo_recording_replays_cleanly_and_identically(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outs = []
    for _ in range(2):
        assert main(["replay", str(DEMO), "--json"]) == 0
        captured = capsys.readouterr()
        assert "0 refused" in captured.err
        outs.append(captured.out)
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) > 100


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_malformed_recording_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"ts_recv": 1, "venue": "v", "channel": "c", "frame": "f"}\nnope\n\n')
    assert main(["replay", str(path)]) == 2
    assert "line 2" in capsys.readouterr().err


def test_negative_speed_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recording(tmp_path / "r.jsonl")
    assert main(["replay", str(path), "--speed", "-2"]) == 2
    assert "speed" in capsys.readouterr().err


class _Faulty(MaintenanceSchedule):
    """A flat 1 % schedule whose bracket lookup raises while ``broken`` (a margin-model bug
    on an odd tier). Fault injection through a ``Position``'s public ``maintenance``."""

    broken: ClassVar[bool] = False

    def index_for(self, notional: float) -> int:
        if type(self).broken:
            raise RuntimeError("odd tier")
        return super().index_for(notional)


@pytest.mark.parametrize("as_json", [True, False])
def test_a_scope_whose_figures_raise_is_printed_unknown_and_the_replay_goes_on(
    as_json: bool,
) -> None:
    """The printer recomputes each touched scope's figures: one that raises is printed
    without figures, with the error (before: the exception ended ``monitor replay``)."""
    portfolio = Portfolio()
    flat = MaintenanceSchedule.flat(0.01)
    faulty = _Faulty((Tier(0.0, 0.01),))
    btc = Position("BTC", 1.0, 100.0, maintenance=faulty, mark_price=100.0)
    eth = Position("ETH", 1.0, 100.0, maintenance=flat, mark_price=100.0)
    portfolio.apply(AccountSnapshot("generic", "bad", 10.0, (btc,)))
    portfolio.apply(AccountSnapshot("generic", "good", 10.0, (eth,)))
    bad, good = ScopeKey("generic", "bad", "cross"), ScopeKey("generic", "good", "cross")
    batch = Batch(Record(20.0, "generic", "c", "{}"), (), (bad, good), portfolio)
    out: list[str] = []
    _Faulty.broken = True
    try:
        printer(as_json, out.append)(batch)
    finally:
        _Faulty.broken = False
    assert len(out) == 2
    if as_json:
        first, second = (json.loads(x) for x in out)
        assert first["scope"] == "generic:bad/cross"
        assert first["equity"] is None and first["margin_ratio"] is None
        assert first["error"] == "RuntimeError: odd tier"
        # the other scope: 0.01·100 / 10 = 10 %
        assert second["margin_ratio"] == pytest.approx(0.1) and "error" not in second
    else:
        assert out[0].endswith(
            "generic:bad/cross equity=- mm=- ratio=- nearest_liq=- "
            "unknown (RuntimeError: odd tier)\n"
        )
        assert "ratio=10.00%" in out[1]
