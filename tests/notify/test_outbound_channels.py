"""Several channels in one batch: the plain lines are made once and styled per channel, so
each channel's message must be exactly the one it gets when it is the batch's only channel."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.rules import Severity
from monitor.margin.remedy import Remedy
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.outbound import Recent, build_messages, remedy_for
from monitor.notify.render import RenderMemo, render_group, render_titled
from monitor.report import portfolio_of
from monitor.store.outbox import OutboundMessage
from tests.notify.test_outbound import T0, fired, rules

LABELS = {"generic:a0": "Desk <a> *_[`", "generic:a1": "Swing\u202e"}


def channels() -> list[Channel]:
    return parse_channels(
        {
            "mail": {"url": "json://127.0.0.1:9/m", "format": "text", "min_severity": "info"},
            "md": {"url": "json://127.0.0.1:9/d", "format": "markdown", "send_resolved": False},
            "tg": {"url": "json://127.0.0.1:9/t", "format": "html", "min_severity": "critical"},
            "hook": {"url": "json://127.0.0.1:9/h", "format": "text", "charts": True},
        },
        "t",
        env={},
        credentials_dir=None,
    )


def burst() -> tuple[list[Transition], Portfolio]:
    """Two accounts, BTC +1 and ETH +10 each, MM 1 %: margin-ratio and distance alerts of
    every severity and a resolve, each with the scope's figures."""
    sched = MaintenanceSchedule.flat(0.01)
    btc = Position("BTC", 1.0, 50_000.0, mark_price=48_000.0, maintenance=sched)
    eth = Position("ETH", 10.0, 3_000.0, mark_price=2_900.0, maintenance=sched)
    p = portfolio_of([AccountSnapshot("generic", f"a{i}", 3_000.0, (btc, eth)) for i in (0, 1)])
    risks = {str(r.key): r for r in p.risks()}
    ts: list[Transition] = []
    for i in (0, 1):
        scope = f"generic:a{i}/cross"
        risk = risks[scope]
        group = f"generic:a{i}"
        ts += [
            fired(id=f"m{i}", group=group, subject=scope, risk=risk),
            fired(
                "liquidation_distance",
                f"{scope}#BTC",
                id=f"b{i}",
                group=group,
                value=0.03,
                threshold=0.05,
                risk=risk,
            ),
            fired(
                "liquidation_distance",
                f"{scope}#ETH",
                id=f"e{i}",
                group=group,
                value=0.04,
                threshold=0.05,
                severity=Severity.WARNING,
                risk=risk,
            ),
            fired(
                "drawdown",
                scope,
                id=f"d{i}",
                group=group,
                value=0.2,
                threshold=0.1,
                severity=Severity.INFO,
            ),
            fired(
                "equity",
                scope,
                id=f"r{i}",
                group=group,
                kind=TransitionKind.RESOLVED,
                value=900.0,
                threshold=500.0,
                peak=400.0,
            ),
        ]
    return ts, p


def test_each_channel_gets_the_message_it_gets_alone() -> None:
    ts, p = burst()
    recent = Recent(every=60.0)
    recent.record([r for t in ts if (r := t.risk) is not None], T0 - 600.0)

    def remedy(t: Transition, *, reduce: bool = True) -> Remedy | None:
        return remedy_for(p, t, rules(), reduce=reduce)

    def batch(chs: list[Channel]) -> list[OutboundMessage]:
        return build_messages(
            ts, chs, {}, T0, labels=LABELS, rules=rules(), remedy=remedy, recent=recent
        )

    together = batch(channels())
    alone = [m for ch in channels() for m in batch([ch])]
    assert len(together) == len(alone) == 2 * 4  # 2 accounts × 4 channels
    assert sorted(together, key=repr) == sorted(alone, key=repr)
    bodies = {m.channel: m.body for m in together if m.group == "generic:a0"}
    assert "<b>FIRING CRITICAL: Desk &lt;a&gt; *_[`" in bodies["tg"]
    assert "**FIRING CRITICAL: Desk <a> \\*\\_\\[\\`" in bodies["md"]
    assert "What to do on Desk <a> *_[` (generic:a0/cross):" in bodies["mail"]
    assert "RESOLVED" in bodies["mail"] and "RESOLVED" not in bodies["md"]  # send_resolved


def test_a_memo_shared_by_renders_gives_what_each_gives_alone() -> None:
    ts, _ = burst()
    from monitor.alerts.grouping import group_transitions

    groups = group_transitions(ts)
    memo = RenderMemo()
    for fmt in ("text", "markdown", "html", "text"):
        for g in groups:
            shared = render_titled(g, "T", {}, fmt, 900, labels=LABELS, memo=memo)
            assert shared == replace(render_group(g, {}, fmt, 900, labels=LABELS), title="T")
