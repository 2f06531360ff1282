"""Outbox rows from alert transitions: one message per (account group, channel), rendered in
the channel's dialect (:mod:`monitor.notify.render`), with a stable idempotency key
``sha1(transition ids of the group) : channel``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup, group_transitions
from monitor.margin.risk import ScopeRisk
from monitor.notify.channels import Channel
from monitor.notify.render import group_title, notify_type, render_group
from monitor.store.outbox import OutboundMessage


def build_messages(
    transitions: Sequence[Transition],
    channels: Sequence[Channel],
    risks: Mapping[str, ScopeRisk],
    now: float,
) -> list[OutboundMessage]:
    """One message per (group, channel) for the unmuted transitions a channel takes
    (severity ≥ its ``min_severity``; resolves only if it ``send_resolved``)."""
    out: list[OutboundMessage] = []
    for group in group_transitions(transitions):
        for ch in channels:
            mine = tuple(
                t
                for t in group.transitions
                if ch.accepts(t.severity)
                and (t.kind is not TransitionKind.RESOLVED or ch.send_resolved)
            )
            if not mine:
                continue
            sub = AlertGroup(group.group, mine)
            title = group_title(sub)
            rendered = render_group(sub, risks, ch.format, ch.body_limit(title))
            resolved_only = all(t.kind is TransitionKind.RESOLVED for t in mine)
            digest = hashlib.sha1(sub.id.encode(), usedforsecurity=False).hexdigest()
            out.append(
                OutboundMessage(
                    idem_key=f"{digest}:{ch.name}",
                    channel=ch.name,
                    group=sub.group,
                    severity=max((t.severity for t in mine), key=lambda s: s.rank).value,
                    title=rendered.title,
                    body=rendered.body,
                    body_format=ch.format,
                    notify_type=notify_type(sub.severity, resolved_only),
                    created_at=now,
                )
            )
    return out
