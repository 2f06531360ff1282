"""``monitor test-notify`` run as a real process against a loopback webhook and aiosmtpd."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.notify.conftest import SmtpServer, WebhookServer

SECRET = "hookSecretPa55"


async def monitor(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_every_channel_ok(tmp_path: Path, webhook: WebhookServer, smtp: SmtpServer) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f"""
[channels.hook]
url = "json://bot:${{HOOK_SECRET}}@127.0.0.1:{webhook.port}/hook"
[channels.mail]
url = "{smtp.url()}"
"""
    )
    rc, out, err = await monitor("test-notify", "--config", str(cfg), env={"HOOK_SECRET": SECRET})
    assert rc == 0, err
    lines = out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["hook", "mail"]
    assert all(ln.endswith("  ok") for ln in lines)
    assert SECRET not in out + err
    assert webhook.posts[0][1]["title"] == "monitor: test notification"
    assert smtp.messages[0]["Subject"] == "monitor: test notification"


async def test_a_failed_channel_is_named_and_exit_1(tmp_path: Path, webhook: WebhookServer) -> None:
    rc, out, _ = await monitor(
        "test-notify",
        "--url",
        webhook.url(),
        "--url",
        "json://127.0.0.1:1/closed",
        "--timeout",
        "5",
    )
    assert rc == 1
    ok, failed = out.splitlines()
    assert ok.startswith("url0  json://127.0.0.1:") and ok.endswith("  ok")
    assert failed.startswith("url1  json://127.0.0.1:1/closed") and "FAILED: " in failed


async def test_bad_config_exit_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[channels.tg]\nurl = "tgram://${NOT_SET_ANYWHERE}/1"\n')
    rc, out, err = await monitor("test-notify", "--config", str(cfg))
    assert rc == 2 and out == ""
    assert err.strip() == (
        f"monitor test-notify: {cfg}: channels.tg.url: environment variable NOT_SET_ANYWHERE "
        "is not set"
    )
    rc, _, err = await monitor("test-notify")
    assert rc == 2 and "--config" in err
