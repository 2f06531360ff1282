"""Telegram rendering through apprise's REAL Telegram plugin, posting to a loopback Bot API
stand-in that parses entities as Telegram does and refuses what Telegram refuses
(tests/notify/conftest.py): hostile venue- and user-chosen names arrive exactly as written."""

from __future__ import annotations

import pytest

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup
from monitor.alerts.rules import Severity
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.render import group_title, one_line, render_group, to_plain, transition_line
from monitor.notify.sender import FORMAT, AppriseSender
from tests.notify.conftest import TelegramStandIn

T0 = 1_777_636_800.0  # 2026-05-01T12:00:00Z

HOSTILE = [
    "desk_2",
    "a*b",
    "[x](http://evil.example)",
    "`tick`",
    "<b>bold</b>",
    "AT&T &amp; co",
    "line1\nline2",
    "back\\*slash_",
    "x_y*z`w[v",
]


def tr(account: str, **kw: object) -> Transition:
    subject = f"hyperliquid:{account}/cross"
    base: dict[str, object] = {
        "id": "x",
        "kind": TransitionKind.FIRED,
        "key": f"margin_ratio|{subject}",
        "rule": "margin_ratio",
        "severity": Severity.CRITICAL,
        "group": f"hyperliquid:{account}",
        "subject": subject,
        "at": T0,
        "since": T0,
        "value": 0.95,
        "threshold": 0.9,
    }
    base.update(kw)
    return Transition(**base)  # type: ignore[arg-type]


def telegram_channel(url: str, fmt: str) -> Channel:
    (ch,) = parse_channels({"tg": {"url": url, "format": fmt}}, "t", env={}, credentials_dir=None)
    return ch


def test_a_telegram_channel_written_markdown_is_rendered_as_html(tgram_schema: str) -> None:
    assert telegram_channel(tgram_schema, "markdown").format == "html"
    assert telegram_channel(tgram_schema, "text").format == "text"
    assert telegram_channel(tgram_schema, "markdown").kind == "telegram"


@pytest.mark.parametrize("fmt", ["markdown", "html"])
@pytest.mark.parametrize("account", HOSTILE)
async def test_hostile_names_reach_telegram_exactly_as_written(
    telegram: TelegramStandIn, tgram_schema: str, account: str, fmt: str
) -> None:
    ch = telegram_channel(tgram_schema, fmt)
    group = AlertGroup(f"hyperliquid:{account}", (tr(account),))
    title = group_title(group)
    rendered = render_group(group, {}, ch.format, ch.body_limit(title))
    r = await AppriseSender().send(ch, rendered.title, rendered.body, ch.format, "failure")
    assert r.ok, (r.error, telegram.refused)
    assert telegram.refused == []
    (visible,) = (v.replace("\r\n", "\n") for v in telegram.visible)  # apprise's line ends
    (bold,) = telegram.bold
    # the title (apprise folds it into the text in bold) and the alert line, in bold, exactly
    # as rendered in plain text: no visible escape, no entity, the name whole on one line
    line = one_line(transition_line(tr(account)))
    assert bold == [one_line(title), line]
    assert one_line(account) in line
    assert visible.split("\n", 1)[1] == to_plain(rendered.body, ch.format)
    assert "\\" not in visible.replace(account, "")
    assert "&amp;" not in visible.replace(account, "") and "<b>" not in line.replace(account, "")


async def test_legacy_markdown_refuses_a_star_inside_bold_and_shows_escapes(
    telegram: TelegramStandIn, tgram_schema: str
) -> None:
    """What the old rendering sent (CommonMark bold, backslash escapes) through the plugin's
    legacy Markdown: the stand-in refuses a ``*`` inside bold, as Telegram does, and shows
    the escapes of ``_`` inside bold; the sender classifies the refusal as a markup one."""
    ch = telegram_channel(tgram_schema, "text")
    r = await AppriseSender().send(ch, "T", "**FIRING on a\\*b**", "markdown", "failure")
    assert not r.ok and r.kind == FORMAT
    assert r.error is not None and "can't parse entities" in r.error
    r = await AppriseSender().send(ch, "T", "**on binance\\_usdm:desk\\_2**", "markdown", "info")
    assert r.ok
    assert telegram.bold[-1] == ["T", "on binance\\_usdm:desk\\_2"]  # visible backslashes


def test_stand_in_refuses_what_telegram_refuses() -> None:
    from tests.notify.conftest import EntityError, parse_telegram_html

    for bad in ("a < b", "<b>x", "<foo>x</foo>", "AT&T", "x</b>"):
        with pytest.raises(EntityError):
            parse_telegram_html(bad)
    assert parse_telegram_html("<b>a &lt;*_&gt; &amp;</b> [x]") == (
        "a <*_> & [x]",
        [("b", "a <*_> &")],
    )
