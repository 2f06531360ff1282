"""The parts of a test daemon's configuration that the end-to-end tests share: only the
margin-ratio rule switched on (at once, no `for`), alerts written to `alerts.txt` in the
daemon's directory, a relative store, JSON logs."""

from __future__ import annotations

from pathlib import Path

OTHER_RULES = (
    "liquidation_distance",
    "shock",
    "drawdown",
    "funding_cost_pct",
    "funding_rate",
    "funding_runway",
)


def margin_ratio_rules(warning: float, warning_clear: float) -> str:
    """``[rules]``: margin_ratio warning/critical (critical 0.95, clear 0.9); every other
    threshold rule off."""
    off = "".join(f"[rules.{name}]\nenabled = false\n" for name in OTHER_RULES)
    return f"""
[rules]
for = "0s"

[rules.margin_ratio]
warning = {warning}
warning_clear = {warning_clear}
critical = 0.95
critical_clear = 0.9

{off}"""


def file_channel_and_store(*, ready_timeout: int, stale_alert_after: str | None = None) -> str:
    """The ``monitorfile://alerts.txt`` channel (everything), the store under ``state/``,
    JSON logs and ``[daemon]`` with a 5 s drain."""
    stale = f'stale_alert_after = "{stale_alert_after}"\n' if stale_alert_after else ""
    return f"""
[channels.file]
url = "monitorfile://alerts.txt"
min_severity = "info"

[store]
path = "state/monitor.sqlite3"

[logging]
level = "info"
format = "json"

[daemon]
drain_deadline = 5
ready_timeout = {ready_timeout}
{stale}"""


def alerts(tmp: Path) -> str:
    """What the file channel wrote so far ("" before the first alert)."""
    out = tmp / "alerts.txt"
    return out.read_text() if out.exists() else ""
