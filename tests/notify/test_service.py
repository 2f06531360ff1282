"""End to end: Engine → shell (one transaction on a real store) → delivery worker → apprise →
real loopback Telegram stand-in, webhook and SMTP servers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import structlog

from monitor.clock import FakeClock, SystemClock
from monitor.logs import redact
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.delivery import DeliveryConfig
from monitor.notify.sender import AppriseSender
from monitor.store import alert_state, outbox
from monitor.store.db import open_store
from tests.notify import scenario
from tests.notify.conftest import TG_TOKEN, SmtpServer, TelegramStandIn, WebhookServer
from tests.notify.pipeline import Pipeline

HOOK_PASS = "hookPa55w0rd-zz"
REPO = Path(__file__).resolve().parents[2]


def channels(tgram_url: str, smtp: SmtpServer, webhook: WebhookServer) -> list[Channel]:
    """Telegram (warning+), email (critical only), webhook (everything); secrets from env."""
    return parse_channels(
        {
            "tg": {
                "url": tgram_url.replace(TG_TOKEN, "${TG_TOKEN}"),
                "min_interval": "1s",
                "max_length": 4096,
            },
            "mail": {"url": smtp.url(), "min_severity": "critical"},
            "hook": {
                "url": f"json://hook:${{HOOK_PASS}}@127.0.0.1:{webhook.port}/hook",
                "min_severity": "info",
            },
        },
        "monitor.toml",
        env={"TG_TOKEN": TG_TOKEN, "HOOK_PASS": HOOK_PASS},
        credentials_dir=None,
    )


async def walk(service: Pipeline, clock: FakeClock, prices: tuple[float, ...]) -> list[str]:
    kinds: list[str] = []
    for price in prices:
        clock.advance(10.0)
        ts = await service.process([scenario.price(price)])
        kinds += [f"{t.kind.value}:{t.severity.value}" for t in ts]
        await service.worker.step()
    return kinds


async def test_price_path_fires_once_per_channel_then_resolves(  # noqa: PLR0917 -- fixtures
    tmp_path: Path,
    telegram: TelegramStandIn,
    tgram_schema: str,
    smtp: SmtpServer,
    webhook: WebhookServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="apprise")
    clock = FakeClock(start=1_777_636_800.0)  # 2026-05-01T12:00:00Z
    chans = channels(tgram_schema, smtp, webhook)
    path = tmp_path / "state" / "monitor.db"
    with structlog.testing.capture_logs() as events:
        store = await open_store(path)
        service = await Pipeline.start(
            store, scenario.rules(), chans, sender=AppriseSender(), clock=clock
        )
        await service.process([scenario.snapshot()])
        # 10000 → 9700 → 9500 (fires critical) → 9520 (still firing, no repeat yet)
        kinds = await walk(service, clock, scenario.PATH[:4])
        assert kinds == ["fired:critical"]
        await store.close()

        # restart: the alert is restored, the same figures do not fire again
        store = await open_store(path)
        service = await Pipeline.start(
            store, scenario.rules(), chans, sender=AppriseSender(), clock=clock
        )
        assert list(service.state.alerts) == [f"margin_ratio|{scenario.KEY}"]
        # a new engine learns the account again: at 9520 the restored critical still holds
        clock.advance(10.0)
        assert await service.process([scenario.snapshot(), scenario.price(9520.0)]) == []
        kinds = await walk(service, clock, (9700.0, 10000.0))
        assert kinds == ["resolved:critical"]
        clock.advance(5.0)
        await service.worker.step()
        await store.close()

    # Telegram: one fire, one resolve
    tg = [m["text"] for m in telegram.messages]
    assert len(tg) == 2
    assert "FIRING CRITICAL: generic:acct, cross: margin ratio 0.9500 (95.0%) ≥ 0.9000" in tg[0]
    assert "Collateral at risk: 500.00 (the whole cross pool)" in tg[0]  # equity at 9500
    assert "RESOLVED CRITICAL: generic:acct, cross: margin ratio" in tg[1]
    # email: subject and body, parsed by the standard library
    assert [m["Subject"] for m in smtp.messages] == [
        "[CRITICAL] generic:acct — margin ratio 0.9500 (95.0%)",
        "[RESOLVED] generic:acct — resolved: margin ratio",
    ]
    body = smtp.messages[0].get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "equity 500.00, maintenance 475.00, margin ratio 0.9500 (95.0%)" in text
    # liquidation: 0.05·p = 1000 + p − 10000 → p = 9000 / 0.95 = 9473.68
    assert "BTC long 1 @ mark 9,500: liq 9,473.68 (0.28% away)" in text
    assert "since 2026-05-01T12:00:30Z" in text  # the third price, 3 × 10 s after the start
    # webhook: the same two
    assert [doc["type"] for _, doc in webhook.posts] == ["failure", "success"]

    # no secret in our logs nor in apprise's
    for ev in events:
        assert TG_TOKEN not in str(ev) and HOOK_PASS not in str(ev)
    assert any(ev["event"] == "outbox.delivered" for ev in events)
    for rec in caplog.records:
        if rec.name.startswith("apprise"):
            if rec.levelno >= logging.INFO:
                assert TG_TOKEN not in rec.getMessage() and HOOK_PASS not in rec.getMessage()
            # what our log pipeline writes (monitor.logs redaction) at any level
            assert TG_TOKEN not in redact(rec.getMessage())
            assert HOOK_PASS not in redact(rec.getMessage())


async def test_webhook_down_for_a_while_then_delivered_exactly_once(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    (hook,) = parse_channels(
        {"hook": {"url": webhook.url(), "min_severity": "info"}},
        "t",
        env={},
        credentials_dir=None,
    )
    store = await open_store(tmp_path / "m.db")
    service = await Pipeline.start(
        store,
        scenario.rules(),
        [hook],
        sender=AppriseSender(),
        clock=clock,
        delivery=DeliveryConfig(base_backoff=2.0, jitter=0.0),
    )
    await service.process([scenario.snapshot()])
    webhook.down = True
    await walk(service, clock, (9500.0,))  # fires; first attempt fails
    for _ in range(3):  # retries after 2, 4, 8 s keep failing
        clock.advance(16.0)
        await service.worker.step()
    assert webhook.posts == [] and webhook.attempts == 4
    webhook.down = False
    clock.advance(16.0)
    await service.worker.step()
    for _ in range(3):
        clock.advance(60.0)
        await service.worker.step()
    assert len(webhook.posts) == 1
    assert "FIRING CRITICAL" in webhook.posts[0][1]["message"]
    await store.close()


async def test_mute_holds_warning_and_is_read_from_the_store(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    from monitor.alerts.mutes import Mute
    from monitor.store.mutes import add_mute

    clock = FakeClock()
    (hook,) = parse_channels(
        {"hook": {"url": webhook.url(), "min_severity": "info"}},
        "t",
        env={},
        credentials_dir=None,
    )
    store = await open_store(tmp_path / "m.db")
    service = await Pipeline.start(
        store, scenario.rules(), [hook], sender=AppriseSender(), clock=clock
    )
    await add_mute(store, Mute("generic:acct", clock.now() + 3600, critical=True), clock.now())
    await service.process([scenario.snapshot()])
    kinds = await walk(service, clock, (9500.0,))
    assert kinds == ["fired:critical"]
    assert [t["muted"] for t in await alert_state.history(store)] == [1]
    assert await outbox.items(store) == []  # muted: nothing to deliver
    await store.close()


CHILD = """
import asyncio, sys
from pathlib import Path
from monitor.clock import SystemClock
from monitor.notify.channels import parse_channels
from monitor.notify.sender import AppriseSender
from monitor.store.db import open_store
from tests.notify import scenario
from tests.notify.pipeline import Pipeline

async def main(db, port):
    chans = parse_channels(
        {"a": {"url": f"json://127.0.0.1:{port}/a", "min_severity": "info"},
         "b": {"url": f"json://127.0.0.1:{port}/b", "min_severity": "info"}},
        "child", env={}, credentials_dir=None)
    store = await open_store(Path(db))
    service = await Pipeline.start(store, scenario.rules(), chans, sender=AppriseSender(),
                                       clock=SystemClock())
    await service.process([scenario.snapshot()])
    await service.process([scenario.price(9500.0)])
    print("ENQUEUED", flush=True)
    await asyncio.sleep(3600)   # killed before the worker ever runs

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_sigkill_between_enqueue_and_delivery_delivers_once_after_restart(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    db = tmp_path / "m.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(db),
        str(webhook.port),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    lines = []
    while not lines or lines[-1] != b"ENQUEUED":  # structlog's default output goes first
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, b"".join(lines)
        lines.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    await proc.communicate()  # drain and close the pipe before the loop ends
    assert proc.returncode == -signal.SIGKILL
    assert webhook.posts == []

    chans = parse_channels(
        {
            "a": {"url": f"json://127.0.0.1:{webhook.port}/a", "min_severity": "info"},
            "b": {"url": f"json://127.0.0.1:{webhook.port}/b", "min_severity": "info"},
        },
        "t",
        env={},
        credentials_dir=None,
    )
    clock = SystemClock()
    store = await open_store(db)  # the dead child's lock is gone with it
    service = await Pipeline.start(
        store,
        scenario.rules(),
        chans,
        sender=AppriseSender(),
        clock=clock,
        delivery=DeliveryConfig(idle_poll=0.05),
    )
    task = asyncio.create_task(service.worker.run())
    for _ in range(250):
        if len(webhook.posts) >= 2:
            break
        await asyncio.sleep(0.02)
    # the restored state: the same figures do not fire again
    assert await service.process([scenario.snapshot(), scenario.price(9500.0)]) == []
    assert await service.worker.drain(clock.monotonic() + 5) == 0
    await asyncio.wait_for(task, 5)
    await store.close()
    assert sorted(path for path, _ in webhook.posts) == ["/a", "/b"]
    assert all("FIRING CRITICAL" in doc["message"] for _, doc in webhook.posts)


async def test_expired_channel_raises_delivery_failing_through_the_working_one(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    chans = parse_channels(
        {
            "dead": {"url": "json://127.0.0.1:1/hooks", "min_severity": "info", "timeout": 5},
            "hook": {"url": webhook.url(), "min_severity": "info"},
        },
        "t",
        env={},
        credentials_dir=None,
    )
    store = await open_store(tmp_path / "m.db")
    service = await Pipeline.start(
        store,
        scenario.rules(),
        chans,
        sender=AppriseSender(),
        clock=clock,
        delivery=DeliveryConfig(base_backoff=5.0, jitter=0.0, max_age=10.0),
    )
    await service.process([scenario.snapshot()])
    await walk(service, clock, (9500.0,))  # fired: hook gets it, dead fails (retry +5 s)
    clock.advance(5.0)
    await service.worker.step()  # dead fails again; the next retry (+10 s) is past max age
    assert service.worker.failing_channels == (chans[0].label,)
    ts = await service.tick()
    assert [(t.rule, t.kind.value, t.severity.value) for t in ts] == [
        ("delivery_failing", "fired", "critical")
    ]
    await service.worker.step()
    messages = [doc["message"] for _, doc in webhook.posts]
    assert len(messages) == 2
    assert "FIRING CRITICAL: monitor: notification delivery failing" in messages[1]
    assert "dead (json://127.0.0.1:1/hooks" in messages[1]
    await store.close()


def test_build_messages_routes_by_severity_and_fits_telegram() -> None:
    from monitor.alerts.engine import Transition, TransitionKind
    from monitor.alerts.rules import Severity
    from monitor.notify.outbound import build_messages

    chans = parse_channels(
        {
            "tg": {"url": f"tgram://{TG_TOKEN}/-100123"},  # warning+, 4096, resolves
            "mail": {
                "url": "mailto://127.0.0.1:25?from=a@example.com&to=b@example.com",
                "min_severity": "critical",
                "send_resolved": False,
            },
        },
        "t",
        env={},
        credentials_dir=None,
    )

    def tr(i: int, sev: Severity, kind: TransitionKind = TransitionKind.FIRED) -> Transition:
        return Transition(
            id=f"t{i}",
            kind=kind,
            key=f"liquidation_distance|g:a/cross#S{i}",
            rule="liquidation_distance",
            severity=sev,
            group="g:a",
            subject=f"g:a/cross#S{i}",
            at=1.0,
            since=1.0,
            value=0.01,
            threshold=0.05,
        )

    warn = build_messages([tr(0, Severity.WARNING)], chans, {}, 1.0)
    assert [m.channel for m in warn] == ["tg"]  # email takes critical only
    resolved = build_messages([tr(1, Severity.CRITICAL, TransitionKind.RESOLVED)], chans, {}, 1.0)
    assert [(m.channel, m.notify_type) for m in resolved] == [("tg", "success")]
    many = build_messages([tr(i, Severity.CRITICAL) for i in range(300)], chans, {}, 1.0)
    tg, mail = many
    assert (tg.channel, mail.channel) == ("tg", "mail")
    assert len(tg.title) + len(tg.body) + 2 <= 4096  # Telegram folds the title into the text
    assert tg.body.endswith("more lines cut)")
    assert mail.body.count("\n") > 300  # email has no length limit
    assert tg.idem_key.endswith(":tg") and tg.idem_key.split(":")[0] == mail.idem_key.split(":")[0]
