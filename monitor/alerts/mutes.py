"""Mutes (silences): time-boxed, by target and optionally by rule (pure).

A mute's ``target`` is the text of an identity (:mod:`monitor.model.ids`): an account
(``"venue:account"``), a scope (``"venue:account/scope"``), a position
(``"venue:account/scope#SYMBOL"``), a feed (``"feed:venue"`` or ``"feed:venue/channel"``) or
``"monitor"``. It is parsed once, at construction (``Mute.key``; a target that is not an
identity raises :class:`~monitor.model.ids.IdError`), and matches an alert whose subject is
that identity or lies under it, comparing parts, never text prefixes: an account mute covers
its scopes and positions, and a mute on account ``desk`` never silences account
``desk/hedge``. ``rule`` (None: every rule) narrows it to one rule. A muted critical still goes
out unless the mute has ``critical=True``. ``until`` is epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.model.ids import IdError, Subject, covers, parse_subject


@dataclass(frozen=True, slots=True)
class Mute:
    target: str
    until: float
    rule: str | None = None
    critical: bool = False
    reason: str = ""
    #: the parsed ``target``
    key: Subject = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", parse_subject(self.target))

    def covers(self, subject: str | Subject, rule: str, critical: bool, now: float) -> bool:
        """True when this mute silences an alert of ``rule`` on ``subject`` at ``now``. A
        subject text that is not an identity is never silenced (fail loud)."""
        if now >= self.until:
            return False
        if self.rule is not None and self.rule != rule:
            return False
        if critical and not self.critical:
            return False
        if isinstance(subject, str):
            try:
                subject = parse_subject(subject)
            except IdError:
                return False
        return covers(self.key, subject)


def subject_under(subject: str, target: str) -> bool:
    """``subject`` is ``target`` or lies under it (parts compared; see the module docstring).
    A text that is not an identity is under nothing."""
    try:
        return covers(parse_subject(target), parse_subject(subject))
    except IdError:
        return False


def is_muted(mutes: Iterable[Mute], subject: str, rule: str, critical: bool, now: float) -> bool:
    """Whether any of ``mutes`` silences an alert of ``rule`` on ``subject`` (its text, as
    alerts carry it) at ``now``. The subject is parsed once."""
    if not mutes:
        return False  # the common case, asked for every transition of a crash
    mutes = [m for m in mutes if now < m.until]
    if not mutes:
        return False
    try:
        key = parse_subject(subject)
    except IdError:
        return False  # not an identity: never silenced
    return any(m.covers(key, rule, critical, now) for m in mutes)
