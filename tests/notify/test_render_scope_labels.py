"""The account's label names the scope in every section of an alert, not only the first line:
the "What to do on …" remedy header and the "Scope …" figures say "Main desk
(hyperliquid:0x1111…1111/cross)" so a trader with several accounts knows which one to fund."""

from __future__ import annotations

from monitor.alerts.grouping import AlertGroup
from monitor.notify.render import labelled_scope, render_group, scope_lines, transition_line, who
from tests.alerts.helpers import position, scope
from tests.notify.test_render import ADDR, LABELS, LONG, long_tr
from tests.notify.test_render_readme import messages

T0 = 1_777_636_800.0


def test_the_scope_figures_name_the_label_and_the_short_scope() -> None:
    risk = scope(0.95, equity=1000.0, positions=(position("BTC", mark=100.0, liq=96.0),))
    # the helper builds the 0xabc key; the label map is keyed by the long address
    body = render_group(AlertGroup(f"hyperliquid:{ADDR}", (long_tr(risk=risk),)), {}, labels=LABELS)
    lines = body.body.splitlines()
    scope_line = next(x for x in lines if x.startswith("Scope "))
    # the risk's own key is hyperliquid:0xabc/cross (no label): named by its key alone
    assert scope_line.startswith("Scope hyperliquid:0xabc/cross: equity 1,000.00")
    labelled = scope_lines(risk, {"hyperliquid:0xabc": "Swing"})
    assert labelled[0].startswith("Scope Swing (hyperliquid:0xabc/cross): equity 1,000.00")


def test_labelled_scope_keeps_the_short_id_beside_the_label() -> None:
    assert labelled_scope(str(LONG), LABELS) == "Main desk (hyperliquid:0x1111…1111/cross)"
    assert labelled_scope(str(LONG)) == "hyperliquid:0x1111…1111/cross"
    # a dYdX child subaccount takes its parent's label and its number
    key = "dydx:dydx1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq/128/cross"
    parent = {"dydx:dydx1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq/0": "Desk"}
    assert labelled_scope(key, parent) == "Desk /128 (dydx:dydx1q…qqqq/128/cross)"
    # a label with a line break cannot forge a line of the message
    assert labelled_scope(str(LONG), {f"hyperliquid:{ADDR}": "a\nb"}) == (
        "a b (hyperliquid:0x1111…1111/cross)"
    )


def test_the_remedy_and_the_figures_say_which_account_by_label() -> None:
    _, mail = messages()
    lines = mail.body.splitlines()
    assert "What to do on Main desk (hyperliquid:0x1111…1111/cross):" in lines
    assert any(
        x.startswith("Scope Main desk (hyperliquid:0x1111…1111/cross): equity 18,000.00")
        for x in lines
    )
    assert not any(x.startswith("What to do on hyperliquid:") for x in lines)


def test_a_hip3_dex_account_is_shortened_and_takes_its_addresss_label() -> None:
    """Hyperliquid reports a HIP-3 dex's positions as account ``ADDR@dex``; the configuration
    names the address. Before: the alert said ``hyperliquid:0x1111…(42 characters)@xyz``, no
    label, in every line."""
    group = f"hyperliquid:{ADDR}@xyz"
    subject = f"{group}/isolated:xyz:TSLA"
    line = transition_line(long_tr(group=group, subject=subject), LABELS)
    assert line.startswith("FIRING CRITICAL: Main desk @xyz, isolated:xyz:TSLA: margin ratio")
    assert transition_line(long_tr(group=group, subject=subject)).startswith(
        "FIRING CRITICAL: hyperliquid:0x1111…1111@xyz, isolated:xyz:TSLA: margin ratio"
    )
    assert labelled_scope(subject, LABELS) == (
        "Main desk @xyz (hyperliquid:0x1111…1111@xyz/isolated:xyz:TSLA)"
    )
    assert who(group) == "hyperliquid:0x1111…1111@xyz"
