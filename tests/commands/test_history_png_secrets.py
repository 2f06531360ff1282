"""``monitor history --png --config``: reads the configuration without its channels (no
``${SECRET}`` needed, as the text chart), heads the chart with the account's label, and
never crashes on a ``$`` in a name (matplotlib would read ``$…$`` as math)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.ops.charts import ChartThresholds, render_png
from monitor.store.history import Sample
from tests.ops.conftest import HEALTHY, filled_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return filled_store(tmp_path / "monitor.sqlite3")


def _config(tmp_path: Path, store: Path, label: str = "Alice desk") -> Path:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'[store]\npath = "{store.name}"\n\n'
        '[[accounts]]\nvenue = "generic"\nname = "alice"\n'
        f'label = "{label}"\ncross_collateral = 1000.0\n\n'
        '[channels.hook]\nurl = "json://127.0.0.1:9/in?-token=${REVIEW_HOOK_TOKEN}"\n'
    )
    return cfg


def test_png_with_config_needs_no_channel_secret(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: rc 2, "channels.hook.url: environment variable REVIEW_HOOK_TOKEN is not set",
    while the same command without --png worked."""
    monkeypatch.delenv("REVIEW_HOOK_TOKEN", raising=False)
    cfg = _config(tmp_path, store)
    out = tmp_path / "chart.png"
    assert main(["history", HEALTHY, "--config", str(cfg)]) == 0  # the text chart
    capsys.readouterr()
    assert main(["history", HEALTHY, "--config", str(cfg), "--png", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: chart of {HEALTHY} (Alice desk), 61 samples\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_dollar_in_a_label_or_a_coin_never_breaks_the_chart(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "$^$" is malformed mathtext: matplotlib raised ValueError (a traceback from --png)
    scope = "hyperliquid:0x1111111111111111111111111111111111111111/isolated:xyz:$^$"
    samples = [
        Sample(scope, 1.7e9 + 60 * i, 100.0, 10.0, 0.1, 0.2, 0.2, None, 0.0) for i in range(3)
    ]
    assert render_png(scope, samples, ChartThresholds())[:4] == b"\x89PNG"
    assert render_png(scope, samples, ChartThresholds(), title="desk $^$ 2")[:4] == b"\x89PNG"
    cfg = _config(tmp_path, store, label="desk $^$")
    out = tmp_path / "chart.png"
    assert main(["history", HEALTHY, "--config", str(cfg), "--png", str(out)]) == 0
    assert out.stat().st_size > 10_000
