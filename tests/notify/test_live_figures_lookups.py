"""Figures computed when a message is built (``monitor.shell.LiveFigures``: the scope's
figures at the portfolio's latest prices, a full margin computation per scope) are asked
for only where the message shows them: a resolve shows none, so its scope's figures are
never computed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from monitor.alerts.engine import TransitionKind
from monitor.margin.risk import ScopeRisk
from monitor.model.positions import ScopeKey
from monitor.notify.outbound import build_messages
from monitor.shell import LiveFigures
from tests.notify.test_outbound import CROSS, T0, book, fired, text_channel


class Asked(Mapping[str, ScopeRisk]):
    """The figures of ``inner``, recording each name asked for."""

    def __init__(self, inner: Mapping[str, ScopeRisk]) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def __getitem__(self, name: str) -> ScopeRisk:
        self.asked.append(name)
        return self.inner[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def test_a_resolve_without_figures_computes_none_and_a_repeat_computes_its_own() -> None:
    portfolio = book(600.0)  # one scope, generic:acct/cross: MM 500, equity 600
    other = ScopeKey("generic", "acct", "isolated:ETH")  # not held: no figures
    resolved = fired(id="r", kind=TransitionKind.RESOLVED, value=0.7)
    repeat = fired("margin_ratio", str(other), id="p", kind=TransitionKind.REPEAT)
    figures = Asked(LiveFigures({}, portfolio))
    messages = build_messages([resolved], [text_channel()], figures, T0)
    assert len(messages) == 1  # the resolve goes out (the channel sends resolves)
    assert figures.asked == []  # ... and no figures were computed for it
    # control: a repeat without figures of its own asks for its scope's
    messages = build_messages([repeat], [text_channel()], figures, T0)
    assert len(messages) == 1
    assert figures.asked == [str(other)]
    # and the held scope's live figures are those of the portfolio: 500 / 600
    shown = LiveFigures({}, portfolio)[str(CROSS)]
    assert shown.margin_ratio == 500.0 / 600.0
