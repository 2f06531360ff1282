"""PNG charts from a real store: valid PNG, the requested size, decodable, thresholds and
unknown figures drawn as documented; attached to a real apprise notification."""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from monitor.alerts.rules import AlertRules, parse_rules
from monitor.ops.charts import (
    ChartThresholds,
    account_of,
    chart_attachment,
    render_png,
    scope_chart,
    thresholds_from_rules,
)
from monitor.store import history
from tests.ops.botapi import TOKEN, BotApi
from tests.ops.conftest import HEALTHY, NOW, Filled, risk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WARNING_RGB = (0xE6, 0x9F, 0x00)  # the warning threshold's colour
CRITICAL_RGB = (0xD6, 0x27, 0x28)  # critical thresholds, the liquidation line, equity ≤ 0


def _ihdr_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _pixels(png: bytes, rgb: tuple[int, int, int]) -> int:
    """How many pixels are within 8 of ``rgb`` on every channel."""
    data = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    r, g, b = rgb
    return sum(
        1
        for i in range(0, len(data), 3)
        if abs(data[i] - r) <= 8 and abs(data[i + 1] - g) <= 8 and abs(data[i + 2] - b) <= 8
    )


async def _samples(filled: Filled) -> list[history.Sample]:
    samples = await history.read_history(filled.store, HEALTHY, 0.0)
    assert len(samples) == 61
    return samples


async def test_chart_is_a_valid_png_of_the_requested_size_that_decodes(filled: Filled) -> None:
    samples = await _samples(filled)
    png = render_png(HEALTHY, samples, thresholds_from_rules(None, "generic:alice"))
    assert _ihdr_size(png) == (1000, 600)
    img = Image.open(io.BytesIO(png))
    img.load()  # decodes every chunk (a truncated or corrupt file raises here)
    assert (img.format, img.size) == ("PNG", (1000, 600))
    small = render_png(HEALTHY, samples, ChartThresholds(), width=400, height=300)
    assert _ihdr_size(small) == (400, 300)


async def test_thresholds_are_drawn_in_their_severity_colour(filled: Filled) -> None:
    samples = await _samples(filled)
    none = render_png(HEALTHY, samples, ChartThresholds())
    drawn = render_png(
        HEALTHY,
        samples,
        ChartThresholds(margin_ratio=(("warning", 0.8),), liquidation_distance=(("warning", 0.1),)),
    )
    assert _pixels(none, WARNING_RGB) == 0
    # two dashed lines across ~880 px of plot width each, plus their labels
    assert _pixels(drawn, WARNING_RGB) > 500


def test_a_scope_with_equity_at_or_below_zero_is_marked_not_hidden() -> None:
    # collateral 20, 10 % maintenance: at mark 79 equity = 20 + (79 − 100) = −1 ≤ 0
    ok = [
        history.Sample.of(risk("x", 20.0, m, 0.1), NOW + 60.0 * i) for i, m in enumerate((100, 95))
    ]
    broke = history.Sample.of(risk("x", 20.0, 79.0, 0.1), NOW + 120.0)
    assert broke.margin_ratio is None and broke.equity == pytest.approx(-1.0)
    plain = render_png("generic:x/cross", ok, ChartThresholds())
    marked = render_png("generic:x/cross", [*ok, broke], ChartThresholds())
    Image.open(io.BytesIO(marked)).load()
    # the liquidation line is in both; the ✕ marker adds red pixels
    assert _pixels(marked, CRITICAL_RGB) > _pixels(plain, CRITICAL_RGB) + 20


def test_no_samples_still_gives_a_picture_and_tiny_sizes_are_refused() -> None:
    png = render_png("generic:x/cross", [], ChartThresholds())
    assert _ihdr_size(png) == (1000, 600)
    with pytest.raises(ValueError, match="200 × 150"):
        render_png("generic:x/cross", [], ChartThresholds(), width=100, height=100)


@pytest.mark.parametrize(
    ("scope", "account"),
    [
        ("hyperliquid:0xabc/cross", "hyperliquid:0xabc"),
        ("dydx_v4:dydx1qqq/0/cross", "dydx_v4:dydx1qqq/0"),
        ("binance_usdm:main/isolated:BTC/USDT:USDT", "binance_usdm:main"),
        ("not a scope", None),
    ],
)
def test_account_of_a_scope(scope: str, account: str | None) -> None:
    assert account_of(scope) == account


def test_thresholds_follow_the_rules_and_their_per_account_overrides() -> None:
    rules = parse_rules(
        {
            "margin_ratio": {"warning": 0.7, "critical": 0.85},
            "accounts": {"generic:alice": {"margin_ratio": {"warning": 0.5}}},
        },
        "m.toml",
    )
    everyone = thresholds_from_rules(rules, "generic:bob", "m.toml")
    assert everyone.margin_ratio == (("warning", 0.7), ("critical", 0.85))
    assert everyone.liquidation_distance == (("warning", 0.10), ("critical", 0.05))
    assert thresholds_from_rules(rules, "generic:alice").margin_ratio == (("warning", 0.5),)
    off = replace(
        AlertRules.default(),
        thresholds={
            **AlertRules.default().thresholds,
            **{
                k: replace(v, enabled=False)
                for k, v in AlertRules.default().thresholds.items()
                if k.value == "margin_ratio"
            },
        },
    )
    assert thresholds_from_rules(off, None).margin_ratio == ()
    assert thresholds_from_rules(None, None).source == "default thresholds"


async def test_scope_chart_reads_the_period_from_the_store(filled: Filled) -> None:
    th = thresholds_from_rules(None, None)
    png = await scope_chart(filled.store, HEALTHY, since=NOW - 600.0, thresholds=th)
    assert png is not None and _ihdr_size(png) == (1000, 600)
    assert await scope_chart(filled.store, "generic:nobody/cross", since=0.0, thresholds=th) is None
    # the fixture's last sample is at NOW: nothing after it
    assert await scope_chart(filled.store, HEALTHY, since=NOW + 1.0, thresholds=th) is None


async def test_chart_attachment_travels_with_an_apprise_notification(
    filled: Filled, tmp_path: Path, webhook: Any
) -> None:
    import apprise

    path = await chart_attachment(
        filled.store,
        HEALTHY,
        tmp_path / "charts",
        since=NOW - 3600.0,
        thresholds=thresholds_from_rules(None, None),
    )
    assert path is not None and path.parent == tmp_path / "charts"
    assert path.name.startswith("generic_alice_cross-") and path.suffix == ".png"
    ap = apprise.Apprise()
    assert ap.add(webhook.url())
    assert await ap.async_notify(body="critical: margin ratio 90 %", title="t", attach=str(path))
    ((_, doc),) = webhook.posts
    (att,) = doc["attachments"]
    assert att["mimetype"] == "image/png"
    assert base64.b64decode(att["base64"]) == path.read_bytes()
    assert (
        await chart_attachment(
            filled.store,
            "generic:nobody/cross",
            tmp_path,
            since=0.0,
            thresholds=ChartThresholds(),
        )
        is None
    )


@pytest.fixture
async def tgram(filled: Filled) -> AsyncIterator[tuple[BotApi, str]]:
    """apprise's real Telegram plugin, subclassed only to post to the loopback Bot API
    stand-in instead of api.telegram.org (as tests/notify/conftest.py does); schema
    ``tgramchart://``."""
    from apprise.manager_plugins import NotificationManager
    from apprise.plugins.telegram import NotifyTelegram

    api = BotApi()
    await api.start()

    def parse_url(url: str) -> dict[str, Any] | None:
        results = NotifyTelegram.parse_url("tgram://" + url.split("://", 1)[1])
        if results is not None:
            results["schema"] = "tgramchart"
        return results

    plugin = type(
        "ChartTelegram",
        (NotifyTelegram,),
        {
            "notify_url": api.url,
            "secure_protocol": "tgramchart",
            "protocol": None,
            "parse_url": staticmethod(parse_url),
        },
    )
    manager = NotificationManager()
    assert manager.add(plugin, force=True)
    yield api, f"tgramchart://{TOKEN}/-1001234567890"
    manager.remove("tgramchart", unload=False)
    await api.stop()


async def test_chart_attachment_goes_to_telegram_as_a_photo(
    filled: Filled, tmp_path: Path, tgram: tuple[BotApi, str]
) -> None:
    import apprise

    api, url = tgram
    path = await chart_attachment(
        filled.store, HEALTHY, tmp_path, since=0.0, thresholds=thresholds_from_rules(None, None)
    )
    assert path is not None
    ap = apprise.Apprise()
    assert ap.add(url)
    assert await ap.async_notify(body="CRITICAL margin ratio 90 %", title="alice", attach=str(path))
    photos = [s for s in api.sent if s.method == "sendPhoto"]
    assert len(photos) == 1 and photos[0].chat_id == -1001234567890
    assert photos[0].photo == path.read_bytes()
    # one photo; apprise puts the title and body in its caption
    assert [s.method for s in api.sent] == ["sendPhoto"]
    assert photos[0].caption == "<b>alice</b>\r\nCRITICAL margin ratio 90 %"


def test_under_systemd_matplotlib_keeps_its_cache_in_the_state_directory(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "from monitor.ops.charts import render_png, ChartThresholds\n"
        "render_png('generic:x/cross', [], ChartThresholds())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env["STATE_DIRECTORY"] = str(tmp_path / "state")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    # matplotlib built its font cache there (fontlist-vNNN.json)
    assert list((tmp_path / "state" / "matplotlib").glob("fontlist-*.json"))
