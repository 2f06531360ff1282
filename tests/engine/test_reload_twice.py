"""Two reloads decided in one engine step: the first takes a manual account out of the
configuration, the second puts it back, and its snapshot (queued by the second reload) comes
in the same step. The account is monitored at the end of the step: its scope's alerts stand.

Before the fix the scope was evaluated and given a price band, then forgotten by the first
reload (its alerts resolved as "no longer monitored") in the same decision; the band kept the
evaluation's zone, so while the price stayed in that zone no tick evaluated it again and its
critical alert stayed resolved (only a sweep round, when its instruments moved, would bring it
back; never for a manual account whose prices do not move).

Figures (tests/engine/helpers.py): 1 BTC long at 100 on cash 10, maintenance 1 %: at price p
equity = 10 + p − 100 and maintenance = 0.01·p. At 91: 0.91 / 1 = 91 % (critical ≥ 90 %);
at 90.95: 0.9095 / 0.95 = 95.7 % (still critical, below the liquidation level 100 %)."""

from __future__ import annotations

from monitor.alerts.engine import AlertStatus, TransitionKind
from monitor.alerts.rules import Severity
from monitor.engine import Reconfigure
from monitor.model.events import MarkPrice
from monitor.model.positions import ScopeKey
from tests.engine.helpers import T0, VENUE, engine, long_btc, rules, snapshot

KEY = "margin_ratio|generic:a0/cross"


def test_an_account_removed_and_put_back_in_one_step_keeps_its_critical_alert_on_ticks() -> None:
    e, keys = engine(2)
    both = frozenset(keys)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), snapshot("a1", 10.0, long_btc(10.0))], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0, sweep=False)
    assert e.state.alerts[KEY].status is AlertStatus.FIRING
    assert e.state.alerts[KEY].severity is Severity.CRITICAL

    step = e.receive(
        [
            Reconfigure(rules(), frozenset(keys[1:]), removed=(keys[0],)),
            Reconfigure(rules(), both),
            snapshot("a0", 10.0, long_btc(10.0)),  # the second reload's manual snapshot
        ],
        T0 + 2,
        2.0,
        sweep=False,
    )
    # monitored at the end of the step: nothing says otherwise
    assert not [t for t in step.transitions if t.subject == "generic:a0/cross"]
    assert ScopeKey(VENUE, "a0", "cross") not in step.removed
    assert e.state.alerts[KEY].status is AlertStatus.FIRING

    # a tick in the same zone: 95.7 % is still critical (and below 100 %)
    for i, price in enumerate((90.95, 91.0, 90.95), start=3):
        e.receive([MarkPrice(VENUE, "BTC", price)], T0 + i, float(i), sweep=False)
        alert = e.state.alerts.get(KEY)
        assert alert is not None and alert.status is AlertStatus.FIRING
        assert alert.severity is Severity.CRITICAL


def test_an_account_removed_for_good_is_still_forgotten_in_that_step() -> None:
    e, keys = engine(2)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), snapshot("a1", 10.0, long_btc(10.0))], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0, sweep=False)
    step = e.receive(
        [Reconfigure(rules(), frozenset(keys[1:]), removed=(keys[0],))], T0 + 2, 2.0, sweep=False
    )
    resolved = [t for t in step.transitions if t.kind is TransitionKind.RESOLVED]
    assert [(t.subject, t.detail) for t in resolved] == [
        ("generic:a0/cross", "no longer monitored")
    ]
    assert KEY not in e.state.alerts
