"""Critical alerts carry a chart: build_messages asks for it on a channel with charts on, the
delivery worker renders it from a real store's risk history at send time and apprise's real
Telegram and email plugins carry it to loopback services (the Bot API stand-in, aiosmtpd); a
render that fails sends the text alone."""

from __future__ import annotations

import dataclasses
import io
import os
import random
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from PIL import Image

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.rules import Severity
from monitor.clock import FakeClock
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.outbound import build_messages, chart_specs
from monitor.notify.sender import AppriseSender
from monitor.ops.charts import ChartSpec, ChartThresholds, decode_specs, encode_specs
from monitor.store import history, outbox
from monitor.store.db import Store, open_store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import SmtpServer, TelegramStandIn, WebhookServer, free_port
from tests.ops.conftest import HEALTHY, NOW, dip, risk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THRESHOLDS = ChartThresholds((("critical", 0.8),), (("critical", 0.05),), "alert rules")


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk (it must come first), after the signature."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def decodes(png: bytes) -> tuple[int, int]:
    """The PNG decoded by Pillow (every pixel read): its size."""
    img = Image.open(io.BytesIO(png))
    img.load()
    return img.size


def left(directory: Path) -> list[str]:
    """What is left in ``directory`` (the worker's temporary charts must be gone)."""
    return sorted(os.listdir(directory))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store with an hour of HEALTHY's risk history ending at NOW (tests/ops: the
    margin ratio from 50 % up to 90 % and back, one sample a minute)."""
    s = await open_store(tmp_path / "m.db")
    await history.record(
        s, [history.Sample.of(risk("alice", 20.0, m, 0.1), t) for t, m in dip()], []
    )
    yield s
    await s.close()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the worker writes its charts to (TMPDIR for this test)."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def channel(url: str, **opts: object) -> Channel:
    (ch,) = parse_channels(
        {"c": {"url": url, "charts": True, **opts}}, "t", env={}, credentials_dir=None
    )
    return ch


async def put_critical(store: Store, key: str, attach: str | None, channel: str = "c") -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    key,
                    channel,
                    "generic:alice",
                    "critical",
                    "CRITICAL generic:alice",
                    "margin ratio 90.0% ≥ 80%",
                    "text",
                    "failure",
                    NOW,
                    attach,
                )
            ],
        )


def worker(store: Store, ch: Channel, **cfg: float) -> DeliveryWorker:
    return DeliveryWorker(
        store,
        [ch],
        AppriseSender(),
        FakeClock(NOW),
        config=DeliveryConfig(**cfg),  # type: ignore[arg-type]
        rng=random.Random(3),
    )


SPEC = encode_specs([ChartSpec(HEALTHY, THRESHOLDS)])


def fired(subject: str, severity: Severity = Severity.CRITICAL, **kw: object) -> Transition:
    base: dict[str, object] = {
        "id": f"margin_ratio|{subject}@1/fired",
        "kind": TransitionKind.FIRED,
        "key": f"margin_ratio|{subject}",
        "rule": "margin_ratio",
        "severity": severity,
        "group": "generic:alice",
        "subject": subject,
        "at": NOW,
        "since": NOW,
        "value": 0.9,
        "threshold": 0.8,
    }
    base.update(kw)
    return Transition(**base)  # type: ignore[arg-type]


# -- which messages ask for a chart ---------------------------------------------------------


def test_a_critical_alert_on_a_charts_channel_asks_for_its_scope_chart_and_others_do_not() -> None:
    on = channel("json://127.0.0.1:9/hook", min_severity="warning")
    (off,) = parse_channels(
        {"plain": {"url": "json://127.0.0.1:9/other", "min_severity": "warning"}},
        "t",
        env={},
        credentials_dir=None,
    )
    t = fired(f"{HEALTHY}#BTC")  # a position's alert: the chart is its scope's
    msgs = {m.channel: m for m in build_messages([t], [on, off], {}, NOW)}
    assert msgs["plain"].attach is None
    attach = msgs["c"].attach
    assert attach is not None
    (spec,) = decode_specs(attach)
    assert spec.scope == HEALTHY
    assert spec.hours == 6.0
    # no rules given: the default fire levels, named as such in the chart's footer
    assert spec.thresholds.source == "default thresholds"
    assert spec.thresholds.margin_ratio  # the default margin-ratio levels are drawn
    warning = fired(HEALTHY, Severity.WARNING)
    (w,) = [m for m in build_messages([warning], [on], {}, NOW) if m.channel == "c"]
    assert w.attach is None  # a warning goes without a picture


def test_chart_specs_skip_resolves_muted_alerts_and_non_scope_subjects() -> None:
    resolved = fired(HEALTHY, kind=TransitionKind.RESOLVED)
    muted = fired(HEALTHY, muted=True)
    feed = fired("feed:hyperliquid/activeAssetCtx", rule="feed_stale")
    other = fired("generic:alice/isolated:ETH")
    specs = chart_specs([resolved, muted, feed, other, fired(HEALTHY), fired(HEALTHY)], None)
    # one chart per scope, in order: the isolated scope, then the cross one (once)
    assert [s.scope for s in specs] == ["generic:alice/isolated:ETH", HEALTHY]


def test_an_outbox_row_keeps_its_chart_request_through_the_store(tmp_path: Path) -> None:
    import asyncio

    async def go() -> None:
        s = await open_store(tmp_path / "s.db")
        try:
            await put_critical(s, "k", SPEC)
            (item,) = await outbox.items(s)
            assert item.attach == SPEC
            assert decode_specs(item.attach or "") == [ChartSpec(HEALTHY, THRESHOLDS)]
        finally:
            await s.close()

    asyncio.run(go())


def test_charts_must_be_true_or_false() -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"channels\.c\.charts"):
        channel("json://127.0.0.1:9/hook", charts="yes")


# -- Telegram: sendPhoto through apprise's real plugin ----------------------------------------


async def test_telegram_gets_the_chart_as_a_photo_with_the_alert_as_caption(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    await put_critical(store, "k1", SPEC)
    w = worker(store, channel(tgram_schema))
    assert await w.step() == 1
    (photo,) = telegram.photos
    # the default chart size, 1000 × 600 pixels, decodes
    assert png_size(photo) == (1000, 600)
    assert decodes(photo) == (1000, 600)
    assert len(photo) > 10_000  # a real picture, not an empty canvas
    # the text (shorter than Telegram's 1,024-character caption) went as the photo's caption
    (caption,) = telegram.captions
    assert "margin ratio 90.0%" in caption
    assert telegram.messages == []  # no separate text message
    assert [i.status for i in await outbox.items(store)] == ["delivered"]
    assert left(scratch) == []  # the temporary chart is gone


async def test_two_scopes_get_two_photos_and_the_caption_goes_with_the_first(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    isolated = "generic:alice/isolated:BTC"
    samples = [history.Sample.of(risk("alice", 30.0, m, 0.1), t) for t, m in dip()]
    await history.record(store, [dataclasses.replace(s, scope=isolated) for s in samples], [])
    specs = [ChartSpec(HEALTHY, THRESHOLDS), ChartSpec(isolated, THRESHOLDS)]
    await put_critical(store, "k1", encode_specs(specs))
    assert await worker(store, channel(tgram_schema)).step() == 1
    assert [decodes(p) for p in telegram.photos] == [(1000, 600), (1000, 600)]
    assert telegram.photos[0] != telegram.photos[1]  # two scopes, two different pictures
    assert "margin ratio 90.0%" in telegram.captions[0]
    assert telegram.captions[1] == ""
    assert left(scratch) == []


async def test_an_html_alert_is_an_html_caption_telegram_accepts(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    "k",
                    "c",
                    "generic:alice",
                    "critical",
                    "CRITICAL generic:alice",
                    "<b>margin ratio 90.0%</b> &gt;= 80% on BTC_PERP",
                    "html",
                    "failure",
                    NOW,
                    SPEC,
                )
            ],
        )
    assert await worker(store, channel(tgram_schema, format="html")).step() == 1
    assert telegram.refused == []
    (caption,) = telegram.captions
    assert "margin ratio 90.0% >= 80% on BTC_PERP" in caption  # as Telegram shows it
    assert len(telegram.photos) == 1


async def test_a_failed_photo_upload_is_retried_with_a_chart_rendered_again(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    telegram.media_replies = [500]
    await put_critical(store, "k1", SPEC)
    clock = FakeClock(NOW)
    w = DeliveryWorker(
        store,
        [channel(tgram_schema)],
        AppriseSender(),
        clock,
        config=DeliveryConfig(base_backoff=1.0, jitter=0.0),
    )
    assert await w.step() == 0  # 500 on sendPhoto: transient, retried
    assert telegram.media_attempts == 1
    assert left(scratch) == []  # deleted after the failed try too
    clock.advance(1.0)
    assert await w.step() == 1
    assert telegram.media_attempts == 2
    (photo,) = telegram.photos
    assert decodes(photo) == (1000, 600)
    assert left(scratch) == []


async def test_a_long_text_goes_as_a_message_and_the_chart_as_a_photo(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    long = "margin ratio 90.0% ≥ 80%\n" + "x" * 1500  # longer than a 1,024-character caption
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    "k", "c", "generic:alice", "critical", "T", long, "text", "failure", NOW, SPEC
                )
            ],
        )
    w = worker(store, channel(tgram_schema))
    assert await w.step() == 1
    assert len(telegram.messages) == 1
    assert "x" * 1500 in telegram.visible[0]
    (photo,) = telegram.photos
    assert decodes(photo) == (1000, 600)


async def test_a_render_failure_still_delivers_the_text(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, tmp_path: Path
) -> None:
    """The worker's temporary directory cannot be created (TMPDIR is a file): the chart
    fails, the alert goes as a plain message, and the row is delivered."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    tempfile.tempdir = str(not_a_dir / "sub")
    try:
        await put_critical(store, "k1", SPEC)
        assert await worker(store, channel(tgram_schema)).step() == 1
    finally:
        tempfile.tempdir = None
    assert telegram.photos == []
    assert len(telegram.messages) == 1
    assert "margin ratio 90.0%" in telegram.visible[0]


async def test_an_unreadable_chart_request_or_a_scope_without_history_sends_the_text(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    await put_critical(store, "bad", "{not json")
    await put_critical(store, "none", encode_specs([ChartSpec("generic:zed/cross", THRESHOLDS)]))
    w = worker(store, channel(tgram_schema))
    assert await w.step() == 2  # coalesced into one message
    assert telegram.photos == []
    assert len(telegram.messages) == 1
    assert left(scratch) == []


async def test_a_render_slower_than_chart_timeout_sends_the_text_alone(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    await put_critical(store, "k1", SPEC)
    w = worker(store, channel(tgram_schema), chart_timeout=0.0)
    assert await w.step() == 1
    assert telegram.photos == []
    assert len(telegram.messages) == 1


async def test_charts_turned_off_by_a_reload_send_the_text_alone(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, scratch: Path
) -> None:
    await put_critical(store, "k1", SPEC)
    (ch,) = parse_channels({"c": {"url": tgram_schema}}, "t", env={}, credentials_dir=None)
    assert await worker(store, ch).step() == 1
    assert telegram.photos == []
    assert len(telegram.messages) == 1


# -- email: an image/png MIME part -------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    srv = SmtpServer(free_port())
    ctl = Controller(srv, hostname="127.0.0.1", port=srv.port)
    ctl.start()
    yield srv
    ctl.stop()


async def test_email_carries_the_chart_as_an_image_png_part(
    store: Store, smtp: SmtpServer, scratch: Path
) -> None:
    await put_critical(store, "k1", SPEC)
    assert await worker(store, channel(smtp.url())).step() == 1
    (msg,) = smtp.messages
    parts = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    (part,) = parts
    png = part.get_payload(decode=True)
    assert isinstance(png, bytes)
    assert png_size(png) == (1000, 600)
    assert decodes(png) == (1000, 600)
    text = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
    assert any("margin ratio 90.0%" in str(p.get_content()) for p in text)
    assert left(scratch) == []


# -- costs nothing when off -------------------------------------------------------------------

_NO_CHARTS = """
import asyncio, sys, tempfile
from pathlib import Path
from aiohttp import web

async def main(charts):
    from monitor import app  # the daemon and everything it imports
    from monitor.alerts.engine import Transition, TransitionKind
    from monitor.alerts.rules import Severity
    from monitor.clock import FakeClock
    from monitor.notify.channels import parse_channels
    from monitor.notify.delivery import DeliveryWorker
    from monitor.notify.outbound import build_messages
    from monitor.notify.sender import AppriseSender
    from monitor.store import history, outbox
    from monitor.store.db import open_store

    got = []
    async def hook(request):
        got.append(await request.json())
        return web.Response(text="ok")
    web_app = web.Application()
    web_app.router.add_post("/hook", hook)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    (ch,) = parse_channels(
        {"c": {"url": f"json://127.0.0.1:{port}/hook", "charts": charts}},
        "t", env={}, credentials_dir=None,
    )
    store = await open_store(Path(tempfile.mkdtemp()) / "m.db")
    scope = "generic:alice/cross"
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO risk_history (scope, ts, margin_ratio, nearest_liq) VALUES (?, ?, ?, ?)",
            (scope, 999.0, 0.9, 0.02),
        )
    t = Transition("i", TransitionKind.FIRED, "margin_ratio|" + scope, "margin_ratio",
                   Severity.CRITICAL, "generic:alice", scope, 1000.0, 1000.0, value=0.9)
    async with store.transaction() as conn:
        await outbox.enqueue(conn, build_messages([t], [ch], {}, 1000.0))
    w = DeliveryWorker(store, [ch], AppriseSender(), FakeClock(1000.0))
    assert await w.step() == 1
    await store.close()
    await runner.cleanup()
    print(len(got), len(got[0].get("attachments") or []), "matplotlib" in sys.modules)

asyncio.run(main(sys.argv[1] == "on"))
"""


@pytest.mark.parametrize(("charts", "expected"), [("off", "1 0 False"), ("on", "1 1 True")])
def test_matplotlib_is_imported_only_when_a_chart_is_rendered(
    charts: str, expected: str, tmp_path: Path
) -> None:
    """A delivery through the daemon's code with charts off never imports matplotlib; with
    charts on the same webhook post carries one attachment (json:// sends it base64)."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    out = subprocess.run(
        [sys.executable, "-c", _NO_CHARTS, charts],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert out.stdout.strip().splitlines()[-1] == expected


async def test_two_channels_rendering_at_once_both_get_a_decodable_chart(
    store: Store, telegram: TelegramStandIn, tgram_schema: str, smtp: SmtpServer, scratch: Path
) -> None:
    """One step sends on both channels concurrently: their renders run in worker threads at
    the same time (serialised inside matplotlib's use), and each picture decodes."""
    tg = channel(tgram_schema)
    (mail,) = parse_channels(
        {"mail": {"url": smtp.url(), "charts": True}}, "t", env={}, credentials_dir=None
    )
    await put_critical(store, "k-tg", SPEC, channel="c")
    await put_critical(store, "k-mail", SPEC, channel="mail")
    w = DeliveryWorker(store, [tg, mail], AppriseSender(), FakeClock(NOW))
    assert await w.step() == 2
    (photo,) = telegram.photos
    (msg,) = smtp.messages
    (part,) = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    png = part.get_payload(decode=True)
    assert isinstance(png, bytes)
    assert decodes(photo) == decodes(png) == (1000, 600)
    assert left(scratch) == []


async def test_a_service_without_attachments_gets_the_text_as_before(
    store: Store, webhook: WebhookServer, scratch: Path
) -> None:
    """apprise's Gotify plugin (no attachment support) posting to the loopback server: its
    ``charts = true`` stays off (nothing is drawn for nothing), a row that asks for a chart
    goes as text, is delivered, and nothing is left behind."""
    url = f"gotify://127.0.0.1:{webhook.port}/AbCdEfGhIjKlMnO"
    ch = channel(url)
    assert ch.charts is False
    assert build_messages([fired(HEALTHY)], [ch], {}, NOW)[0].attach is None
    assert channel(webhook.url()).charts is True  # json:// carries attachments
    await put_critical(store, "k1", SPEC)
    assert await worker(store, ch).step() == 1
    ((path, doc),) = webhook.posts
    assert path == "/message"
    assert "margin ratio 90.0%" in doc["message"]
    assert "attachments" not in doc
    assert [i.status for i in await outbox.items(store)] == ["delivered"]
    assert left(scratch) == []
