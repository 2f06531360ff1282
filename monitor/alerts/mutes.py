"""Mutes (silences): time-boxed, by target and optionally by rule (pure).

A mute's ``target`` is an account (``"venue:account"``), a scope
(``"venue:account/scope"``), a position (``"venue:account/scope#SYMBOL"``), a feed
(``"feed:venue"``) or ``"monitor"``. It matches an alert whose subject equals the target or
lies under it (an account mute covers its scopes and positions). ``rule`` (None: every rule)
narrows it to one rule. A muted critical still goes out unless the mute has ``critical=True``.
``until`` is epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mute:
    target: str
    until: float
    rule: str | None = None
    critical: bool = False
    reason: str = ""

    def covers(self, subject: str, rule: str, critical: bool, now: float) -> bool:
        """True when this mute silences an alert of ``rule`` on ``subject`` at ``now``."""
        if now >= self.until:
            return False
        if self.rule is not None and self.rule != rule:
            return False
        if critical and not self.critical:
            return False
        return subject_under(subject, self.target)


def subject_under(subject: str, target: str) -> bool:
    """``subject`` is ``target`` or lies under it (``/`` below an account, ``#`` below a scope)."""
    if subject == target:
        return True
    return subject.startswith(target) and subject[len(target)] in "/#"


def is_muted(mutes: Iterable[Mute], subject: str, rule: str, critical: bool, now: float) -> bool:
    return any(m.covers(subject, rule, critical, now) for m in mutes)
