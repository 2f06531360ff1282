"""``monitor history SCOPE --png FILE``: the chart written from a real store, with the
thresholds of --config; the text chart unchanged beside it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from monitor.cli import main
from tests.ops.conftest import HEALTHY, filled_store

WARNING_RGB = (0xE6, 0x9F, 0x00)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return filled_store(tmp_path / "monitor.sqlite3")


def _warning_pixels(png: bytes) -> int:
    data = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    r, g, b = WARNING_RGB
    return sum(
        1
        for i in range(0, len(data), 3)
        if abs(data[i] - r) <= 8 and abs(data[i + 1] - g) <= 8 and abs(data[i + 2] - b) <= 8
    )


def test_png_is_written_and_the_command_says_so(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chart.png"
    assert main(["history", HEALTHY, "--store", str(store), "--png", str(out)]) == 0
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png))
    img.load()
    assert img.size == (1000, 600)
    assert capsys.readouterr().out == f"{out}: chart of {HEALTHY}, 61 samples\n"
    assert _warning_pixels(png) > 500  # the default warning thresholds (80 %, 10 %) drawn
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_png_takes_the_thresholds_of_the_configuration(store: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'[store]\npath = "{store.name}"\n'
        "[rules.margin_ratio]\nenabled = false\n"
        "[rules.liquidation_distance]\ncritical = 0.05\n"  # no warning level left
    )
    out = tmp_path / "chart.png"
    assert main(["history", HEALTHY, "--config", str(cfg), "--png", str(out)]) == 0
    # the configuration removed both warning levels: no warning-coloured line is drawn
    assert _warning_pixels(out.read_bytes()) == 0


def test_png_with_json_prints_the_samples_too(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.png"
    argv = ["history", HEALTHY, "--store", str(store), "--png", str(out), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["samples"]) == 61 and out.stat().st_size > 10_000


def test_png_of_an_unknown_scope_exits_2_and_writes_nothing(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.png"
    argv = ["history", "generic:nobody/cross", "--store", str(store), "--png", str(out)]
    assert main(argv) == 2
    assert "unknown scope" in capsys.readouterr().err
    assert not out.exists()


def test_png_into_a_missing_directory_exits_1_naming_the_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "c.png"
    assert main(["history", HEALTHY, "--store", str(store), "--png", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"monitor history: {out}: ")
    assert "No such file or directory" in err


def test_text_chart_is_unchanged_without_png(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", HEALTHY, "--store", str(store), "--rows", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{HEALTHY}: 61 samples"
    # 61 rows thinned to 3 buckets (0–19, 20–39, 40–60), each keeping its worst margin ratio:
    # the trough (mark 90: 0.1·90 / (90 − 80) = 90 %) is in the middle one, and the other two
    # keep their own worst rather than their first sample
    ratios = [float(ln.split()[2].rstrip("%")) for ln in lines[3:]]
    assert len(ratios) == 3
    assert ratios[1] == pytest.approx(90.0)
    assert all(r > 50.0 for r in ratios)  # never the calm 50 % of the ends
