"""An alert whose position or scope went away while it fired is not "resolved": the real alert
engine ends it with "position closed" / "scope closed" and the record's LAST value, which the
message used to print as "RESOLVED …: liquidation distance now 8.42% (position closed)", a
value that never recovered, stated as current."""

from __future__ import annotations

from monitor.alerts.engine import AlertState, Observation, Transition, TransitionKind, evaluate
from monitor.alerts.rules import AlertRules
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.positions import Position
from monitor.notify.channels import parse_channels
from monitor.notify.outbound import build_messages
from monitor.notify.render import batch_title, group_title, transition_line
from monitor.report import portfolio_of
from tests.notify.test_render_readme import ADDR, T0, book

LABELS = {f"hyperliquid:{ADDR}": "Main desk"}


def _closed_btc() -> list[Transition]:
    """The README's book: BTC at 90 500 is 8.42 % from liquidation (warning 10 %, for 60 s);
    then the trader closes BTC (the next snapshot holds only the ETH short)."""
    rules = AlertRules.default()
    first = book(90_500.0)
    ts, state = evaluate(Observation(risks=first.risks()), T0, AlertState(), rules)
    ts, state = evaluate(Observation(risks=first.risks()), T0 + 60, state, rules)
    assert [t.kind for t in ts if t.rule == "liquidation_distance"] == [TransitionKind.FIRED]
    eth = Position(
        "ETH", -20.0, 3_400.0, mark_price=3_450.0, maintenance=MaintenanceSchedule.flat(0.01)
    )
    after = portfolio_of([AccountSnapshot("hyperliquid", ADDR, 19_000.0, (eth,))])
    ts, _ = evaluate(Observation(risks=after.risks()), T0 + 120, state, rules)
    return list(ts)


def test_a_closed_positions_alert_ends_with_its_last_value_not_now() -> None:
    (t,) = [t for t in _closed_btc() if t.rule == "liquidation_distance"]
    assert t.kind is TransitionKind.RESOLVED and t.detail == "position closed"
    line = transition_line(t, LABELS)
    # 8.42 %: BTC's distance when it was last seen (see test_render_readme), not a current one
    assert line == (
        "ENDED WARNING: Main desk, cross BTC: liquidation distance no longer watched "
        "(position closed), last 8.42%; lasted 1 min, worst 8.42%"
    )
    assert "now" not in line and "RESOLVED" not in line
    title = group_title([t], f"hyperliquid:{ADDR}", labels=LABELS)
    assert title == "[ENDED] Main desk — ended (position closed): BTC liquidation distance"
    # beside a firing alert the batch says so; alone it is never counted as a resolve
    assert batch_title([title, "[WARNING] Swing — margin ratio 0.8100 (81.0%)"]) == (
        "2 alerts: [WARNING] Swing (1), [ENDED] Main desk (1)"
    )


def test_a_value_that_recovered_still_resolves_with_its_current_value() -> None:
    rules = AlertRules.default()
    first = book(90_500.0)
    ts, state = evaluate(Observation(risks=first.risks()), T0, AlertState(), rules)
    ts, state = evaluate(Observation(risks=first.risks()), T0 + 60, state, rules)
    back = book(97_000.0)  # BTC back at its entry: far above the 12 % clear level
    ts, _ = evaluate(Observation(risks=back.risks()), T0 + 120, state, rules)
    (t,) = [t for t in ts if t.rule == "liquidation_distance"]
    line = transition_line(t, LABELS)
    assert line.startswith("RESOLVED WARNING: Main desk, cross BTC: liquidation distance now ")
    assert group_title([t], f"hyperliquid:{ADDR}", labels=LABELS).startswith("[RESOLVED] ")


def test_an_ended_alert_is_not_sent_as_a_success() -> None:
    (t,) = [t for t in _closed_btc() if t.rule == "liquidation_distance"]
    (ch,) = parse_channels(
        {"mail": {"url": "mailto://u:p@127.0.0.1:2525?to=a@example.com&from=b@example.com"}},
        "t",
        env={},
        credentials_dir=None,
    )
    (msg,) = build_messages([t], [ch], {}, T0 + 120, labels=LABELS)
    assert msg.notify_type != "success"
