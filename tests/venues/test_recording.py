from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.errors import InputError
from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.venues.recording import (
    Batch,
    JsonlRecorder,
    Record,
    Replayer,
    read_recording,
    replay,
    risk_line,
)
from monitor.venues.registry import PARSERS

HL = Path(__file__).parents[1] / "fixtures" / "feeds" / "hyperliquid"
USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"


class SleepLog:
    """A clock whose sleep only notes the duration (time is data here)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now(self) -> float:
        return 0.0

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def tick(mark: float) -> str:
    d = json.loads((HL / "ws_activeAssetCtx.json").read_text())
    d["data"]["ctx"]["markPx"] = str(mark)
    return json.dumps(d)


def session(path: Path) -> Path:
    """A small Hyperliquid session: metadata, the account, then three BTC ticks."""
    rec = JsonlRecorder(path)
    rec(
        100.0,
        "hyperliquid",
        "rest:metaAndAssetCtxs",
        (HL / "rest_info_metaAndAssetCtxs_response.json").read_text(),
    )
    rec(
        100.5,
        "hyperliquid",
        f"clearinghouseState:{USER}",
        (HL / "ws_clearinghouseState.json").read_text(),
    )
    rec(101.0, "hyperliquid", "activeAssetCtx:BTC", tick(95031.0))
    rec(103.0, "hyperliquid", "activeAssetCtx:BTC", tick(90000.0))
    rec(104.0, "hyperliquid", "ws", "Websocket connection established.")
    rec.close()
    return path


def test_recorder_writes_one_json_object_per_line_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path)
    rec(1.5, "dydx_v4", "v4_markets", '{"type":"connected"}')
    rec(2.0, "hyperliquid", "ws", "Websocket connection established.")
    rec.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {
        "ts_recv": 1.5,
        "venue": "dydx_v4",
        "channel": "v4_markets",
        "frame": '{"type":"connected"}',
    }
    # a recording of the old spelling reads back under the canonical venue name
    assert list(read_recording(path)) == [
        Record(1.5, "dydx", "v4_markets", '{"type":"connected"}'),
        Record(2.0, "hyperliquid", "ws", "Websocket connection established."),
    ]
    assert rec.by_venue == {"dydx_v4": 1, "hyperliquid": 1}


def test_recorder_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for ts in (1.0, 2.0):
        rec = JsonlRecorder(path)
        rec(ts, "v", "c", "f")
        rec.close()
    assert [r.ts_recv for r in read_recording(path)] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "line 2"),
        ('{"ts_recv": "x", "venue": "v", "channel": "c", "frame": "f"}', "ts_recv"),
        ('{"ts_recv": 1, "venue": 3, "channel": "c", "frame": "f"}', "venue"),
        ('{"ts_recv": 1, "venue": "v", "channel": "c"}', "frame"),
        ("[1, 2]", "object"),
    ],
)
def test_a_malformed_line_names_its_line_number(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "r.jsonl"
    good = Record(1.0, "v", "c", "f").to_line().decode()
    path.write_text(f"{good}\n{line}\n{good}\n")
    with pytest.raises(InputError, match=problem) as info:
        list(read_recording(path))
    assert info.value.field == "line 2"


def test_a_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    good = Record(1.0, "v", "c", "f").to_line().decode()
    path.write_text(f'{good}\n{good}\n{{"ts_recv": 3, "ven')
    assert len(list(read_recording(path))) == 2


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jsonl"):
        list(read_recording(tmp_path / "nope.jsonl"))


def test_replayer_applies_frames_to_the_engine_and_reports_touched_scopes(
    tmp_path: Path,
) -> None:
    batches: list[Batch] = []
    replayer = Replayer(PARSERS, batches.append)
    for record in read_recording(session(tmp_path / "s.jsonl")):
        replayer.feed(record)
    assert replayer.stats.frames == 5
    assert replayer.stats.bad_frames == 0
    # the metadata touches no scope yet; the snapshot touches cross and isolated:ETH
    assert batches[0].touched == ()
    assert isinstance(batches[1].events[0], AccountSnapshot)
    assert [str(k) for k in batches[1].touched] == [
        f"hyperliquid:{USER}/cross",
        f"hyperliquid:{USER}/isolated:ETH",
    ]
    last_tick = batches[3]
    assert isinstance(last_tick.events[0], MarkPrice)
    (cross,) = last_tick.touched
    line = risk_line(last_tick, cross, as_json=True)
    assert line is not None
    out = json.loads(line)
    # cross equity = totalRawUsd + szi·mark = -4190 + 0.05·90000
    assert out["equity"] == pytest.approx(-4190.0 + 0.05 * 90_000.0)
    assert out["margin_ratio"] == pytest.approx(out["maintenance_margin"] / out["equity"])
    assert out["ts"] == 103.0
    assert out["scope"] == f"hyperliquid:{USER}/cross"
    text = risk_line(last_tick, cross, as_json=False)
    assert text is not None
    assert text.startswith(f"1970-01-01T00:01:43.000Z hyperliquid:{USER}/cross equity=310.00 ")


def test_bad_frames_and_unknown_venues_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path)
    rec(1.0, "hyperliquid", "ws", "}{")
    rec(2.0, "nowhere", "ws", "{}")
    rec(3.0, "nowhere", "ws", "{}")
    rec(4.0, "hyperliquid", "activeAssetCtx:BTC", tick(1.0))
    rec.close()
    batches: list[Batch] = []
    replayer = Replayer(PARSERS, batches.append)
    for record in read_recording(path):
        replayer.feed(record)
    assert (replayer.stats.bad_frames, replayer.stats.unknown_venue) == (1, 2)
    assert replayer.stats.bad_by_venue == {"hyperliquid": 1}
    assert len(batches) == 1


async def test_replay_is_identical_twice(tmp_path: Path) -> None:
    path = session(tmp_path / "s.jsonl")
    outputs = []
    for _ in range(2):
        lines: list[str] = []

        def collect(batch: Batch, lines: list[str] = lines) -> None:
            for key in batch.touched:
                line = risk_line(batch, key, as_json=False)
                if line is not None:
                    lines.append(line)

        await replay(path, PARSERS, collect)
        outputs.append(lines)
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 4  # snapshot: 2 scopes; each tick: the cross scope (BTC)


async def test_replay_paces_frames_by_recorded_gaps_divided_by_speed(tmp_path: Path) -> None:
    path = session(tmp_path / "s.jsonl")
    clock = SleepLog()
    await replay(path, PARSERS, lambda _b: None, speed=2.0, clock=clock)
    # gaps 0.5, 0.5, 2.0, 1.0 seconds at twice the recorded speed
    assert clock.sleeps == pytest.approx([0.25, 0.25, 1.0, 0.5])
    fast = SleepLog()
    await replay(path, PARSERS, lambda _b: None, speed=0.0, clock=fast)
    assert fast.sleeps == []


async def test_negative_speed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="speed"):
        await replay(session(tmp_path / "s.jsonl"), PARSERS, lambda _b: None, speed=-1.0)


class _BuggyParser:
    venue = "buggy"

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> object:
        raise KeyError("bug")

    def parse(self, frame: str | bytes, ts_recv: float) -> list[object]:
        raise KeyError("bug")

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[object]:
        raise KeyError("bug")


def test_a_parser_bug_is_counted_and_the_replay_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path)
    rec(1.0, "buggy", "ws", "{}")
    rec(2.0, "hyperliquid", "activeAssetCtx:BTC", tick(5.0))
    rec.close()
    batches: list[Batch] = []
    replayer = Replayer({**PARSERS, "buggy": _BuggyParser}, batches.append)  # type: ignore[dict-item]
    for record in read_recording(path):
        replayer.feed(record)
    assert replayer.stats.bad_by_venue == {"buggy": 1}
    assert len(batches) == 1


def test_replay_runs_the_daemons_engine_and_streams_the_file() -> None:
    """``monitor replay`` drives the same engine as the daemon (its alert decisions come with
    each frame) and reads the recording line by line."""
    from monitor.venues.recording import Replayer
    from monitor.venues.registry import PARSERS

    demo = Path(__file__).resolve().parents[2] / "config" / "demo_recording.jsonl"
    kinds: list[str] = []

    def on_batch(b: Batch) -> None:
        assert b.step is not None
        kinds.extend(t.kind.value for t in b.step.transitions)

    replayer = Replayer(PARSERS, on_batch)
    records = read_recording(demo)
    first = next(records)  # a generator: nothing read beyond what was asked for
    replayer.feed(first)
    for record in records:
        replayer.feed(record)
    # the crash fires and the rebound resolves, decided by the engine during the replay
    assert "fired" in kinds and "resolved" in kinds
    assert replayer.portfolio is replayer.engine.portfolio
