"""Grouping: one message per account per evaluation, muted left out, worst first."""

from __future__ import annotations

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.grouping import group_transitions
from monitor.alerts.rules import Severity


def tr(
    group: str,
    key: str,
    sev: Severity,
    kind: TransitionKind = TransitionKind.FIRED,
    muted: bool = False,
) -> Transition:
    return Transition(
        id=f"{key}@1",
        kind=kind,
        key=key,
        rule="margin_ratio",
        severity=sev,
        group=group,
        subject=key,
        at=1.0,
        since=1.0,
        muted=muted,
    )


def test_groups_by_account_in_first_seen_order() -> None:
    ts = [
        tr("hl:a", "a1", Severity.WARNING),
        tr("hl:b", "b1", Severity.CRITICAL),
        tr("hl:a", "a2", Severity.CRITICAL),
        tr("hl:a", "a3", Severity.CRITICAL, TransitionKind.RESOLVED),
        tr("hl:c", "c1", Severity.CRITICAL, muted=True),
    ]
    groups = group_transitions(ts)
    assert [g.group for g in groups] == ["hl:a", "hl:b"]  # hl:c only had a muted one
    assert [t.key for t in groups[0].transitions] == ["a2", "a1", "a3"]
    assert groups[0].severity is Severity.CRITICAL
    assert groups[0].id == "a1@1,a2@1,a3@1"


def test_resolves_alone_count_as_info() -> None:
    (g,) = group_transitions([tr("hl:a", "a", Severity.CRITICAL, TransitionKind.RESOLVED)])
    assert g.severity is Severity.INFO
