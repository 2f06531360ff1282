"""Grouping (pure): what one evaluation produces for one account goes out as one message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.rules import Severity


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """The unmuted transitions of one group (``venue:account``, ``feed:venue``, ``monitor``)
    from one evaluation. ``severity`` is the worst among them (resolves count as info)."""

    group: str
    transitions: tuple[Transition, ...]

    @property
    def severity(self) -> Severity:
        worst = Severity.INFO
        for t in self.transitions:
            if t.kind is TransitionKind.RESOLVED:
                continue
            if t.severity.rank > worst.rank:
                worst = t.severity
        return worst

    @property
    def at(self) -> float:
        return max(t.at for t in self.transitions)

    @property
    def id(self) -> str:
        """Stable identity of the group's content: the ids of its transitions."""
        return ",".join(sorted(t.id for t in self.transitions))


def group_transitions(transitions: Iterable[Transition]) -> list[AlertGroup]:
    """One group per group key, in first-seen order; muted transitions are left out.
    Within a group, the worst first (critical before warning, resolves last)."""
    by: dict[str, list[Transition]] = {}
    for t in transitions:
        if t.muted:
            continue
        by.setdefault(t.group, []).append(t)
    out = []
    for g, ts in by.items():
        ts.sort(key=lambda t: (t.kind is TransitionKind.RESOLVED, -t.severity.rank, t.subject))
        out.append(AlertGroup(g, tuple(ts)))
    return out
