"""Two notices of one subject in one batch shared a transition id (``key@wall/kind``): the
lines made once per batch (``RenderMemo``) must say each notice's own detail whatever the
ids."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.engine import AlertState, Observation, Transition, evaluate
from monitor.alerts.grouping import group_transitions
from monitor.alerts.rules import AlertRules
from monitor.model.positions import ScopeKey
from monitor.notify.channels import parse_channels
from monitor.notify.outbound import build_messages
from monitor.notify.render import render_group

T0 = 1_800_000_000.0
KEY = ScopeKey("hyperliquid", "0xabc", "cross")


def _two_adl_notices() -> list[Transition]:
    # the venue deleveraged BTC of one scope twice in one batch (two fills): two critical
    # EVENT transitions, same key, same wall, same kind, hence the same id
    obs = Observation(
        deleveraged=[
            (KEY, "BTC", "ADL fill 0.4 BTC @ 50000"),
            (KEY, "BTC", "ADL fill 0.6 BTC @ 49000"),
        ]
    )
    ts, _ = evaluate(obs, T0, AlertState(), AlertRules.default())
    assert len(ts) == 2
    # the engine now gives the second ``…/event#1``; renderers must not rely on that: the
    # two notices with the one id they had
    return [ts[0], replace(ts[1], id=ts[0].id)]


def test_two_adl_notices_with_one_id_each_show_their_own_detail_in_one_render() -> None:
    ts = _two_adl_notices()
    (group,) = group_transitions(ts)
    body = render_group(group, {}).body
    assert "ADL fill 0.4 BTC @ 50000" in body and "ADL fill 0.6 BTC @ 49000" in body


def test_two_adl_notices_with_one_id_each_show_their_own_detail_on_every_channel() -> None:
    ts = _two_adl_notices()
    chans = parse_channels(
        {
            "mail": {"url": "json://127.0.0.1:9/m", "format": "text"},
            "md": {"url": "json://127.0.0.1:9/d", "format": "markdown"},
        },
        "t",
        env={},
        credentials_dir=None,
    )
    msgs = build_messages(ts, chans, {}, T0)
    assert len(msgs) == 2
    for m in msgs:
        assert "0.4 BTC @ 50000" in m.body and "0.6 BTC @ 49000" in m.body
