"""config/prometheus.yml, config/prometheus-rules.yml and config/grafana-dashboard.json: valid
for their tools, and naming only metrics the exporter really exposes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.ops.figures import BatchTimings, VenueFrames
from monitor.ops.metrics import Exporter, StoreMetricsSource
from tests.ops.conftest import NOW, Filled

CONFIG = Path(__file__).parents[2] / "config"
PROMTOOL = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install -y prometheus)",
)


async def _promtool(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "promtool",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _exposed(filled: Filled) -> set[str]:
    """Every sample name the exporter produces for the filled store (…_total, …_bucket …)."""
    source = StoreMetricsSource(
        filled.store,
        frames=lambda: [VenueFrames("hyperliquid", 1, 0)],
        batch=BatchTimings(),
        bot_ignored=lambda: 0,
        now=lambda: NOW,
    )
    text = (await Exporter(source).scrape()).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _names(expr: str) -> set[str]:
    return set(re.findall(r"\bmonitor_[a-z_]+", expr))


@PROMTOOL
async def test_prometheus_example_and_rules_pass_promtool() -> None:
    code, out = await _promtool("check", "config", str(CONFIG / "prometheus.yml"))
    assert code == 0, out
    code, out = await _promtool("check", "rules", str(CONFIG / "prometheus-rules.yml"))
    assert code == 0, out
    assert "SUCCESS: 6 rules found" in out


@PROMTOOL
async def test_rules_fire_on_the_exporters_series(tmp_path: Path) -> None:
    """promtool's rule unit test: a liquidatable scope (+Inf ratio, as exported when equity
    ≤ 0) and a notification stuck for 11 minutes fire; a healthy scope does not."""
    scope = 'venue="hyperliquid",account="0xabc",label="",scope="cross"'
    ok_scope = 'venue="hyperliquid",account="0xdef",label="",scope="cross"'
    test = {
        "rule_files": [str(CONFIG / "prometheus-rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"monitor_scope_margin_ratio{{{scope}}}", "values": "0.5 0.95 +Inf"},
                    {
                        "series": f"monitor_scope_margin_ratio{{{ok_scope}}}",
                        "values": "0.2 0.2 0.2",
                    },
                    {
                        "series": 'monitor_outbox_oldest_age_seconds{channel="tg"}',
                        "values": "0 60 660",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "2m",
                        "alertname": "MonitorScopeLiquidatable",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "venue": "hyperliquid",
                                    "account": "0xabc",
                                    "scope": "cross",  # an empty label is no label
                                },
                                "exp_annotations": {
                                    "summary": "hyperliquid:0xabc/cross is liquidatable"
                                },
                            }
                        ],
                    },
                    {"eval_time": "1m", "alertname": "MonitorScopeLiquidatable", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "MonitorNotificationsStuck",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "channel": "tg"},
                                "exp_annotations": {
                                    "summary": "channel tg: a notification has waited over 10 min"
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "rules_test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    code, out = await _promtool("test", "rules", str(path))
    assert code == 0, out


async def test_dashboard_and_rules_name_only_exported_metrics(filled: Filled) -> None:
    exposed = await _exposed(filled)
    dash = json.loads((CONFIG / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"]]
    rules = (CONFIG / "prometheus-rules.yml").read_text()
    used = set().union(*(_names(e) for e in exprs)) | _names(rules)
    assert len(used) >= 12
    assert used <= exposed, sorted(used - exposed)
    assert all(
        t["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dash["panels"] for t in p["targets"]
    )
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
