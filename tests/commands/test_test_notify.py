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
        "json://127.0.0.1:1/hooks",
        "--timeout",
        "5",
    )
    assert rc == 1
    ok, failed = out.splitlines()
    assert ok.startswith("url0  json://127.0.0.1:") and ok.endswith("  ok")
    assert failed.startswith("url1  json://127.0.0.1:1/hooks") and "FAILED: " in failed


async def test_an_unusable_channel_is_reported_and_the_others_are_still_sent(
    tmp_path: Path, webhook: WebhookServer, smtp: SmtpServer
) -> None:
    # the issue: one bad URL aborted every channel, its reason only in a JSON log line
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f"""
[channels.tg]
url = "tgram://${{NOT_SET_ANYWHERE}}/1"
[channels.hook]
url = "{webhook.url()}"
[channels.typo]
url = "telegrm://123456:abcdef/-100123"
[channels.mail]
url = "{smtp.url()}"
"""
    )
    rc, out, err = await monitor("test-notify", "--config", str(cfg))
    assert rc == 1, err
    lines = out.splitlines()
    assert lines[0] == (
        "tg    (not shown)  UNUSABLE: channels.tg.url: environment variable NOT_SET_ANYWHERE "
        "is not set"
    )
    assert lines[1].startswith("hook  json://127.0.0.1:") and lines[1].endswith("  ok")
    assert lines[2] == (
        "typo  (not shown)  UNUSABLE: channels.typo.url: not a URL apprise can use (scheme "
        "'telegrm'; the rest is not shown, it may hold a secret); apprise has no telegrm:// "
        "service; did you mean tgram://?"
    )
    assert lines[3].startswith("mail  ") and lines[3].endswith("  ok")
    assert len(lines) == 4
    assert "abcdef" not in out + err  # the typo'd channel's token is never echoed
    assert len(webhook.posts) == 1 and len(smtp.messages) == 1  # the good ones got through


async def test_every_url_gets_its_own_line_and_reason(webhook: WebhookServer) -> None:
    rc, out, _ = await monitor(
        "test-notify",
        "--url",
        "nothing-here",
        "--url",
        "tgram://",
        "--url",
        webhook.url(),
    )
    assert rc == 1
    assert out.splitlines()[:2] == [
        "url0  (not shown)  UNUSABLE: url[0]: not a URL apprise can use (no scheme; it is not "
        "shown, it may hold a secret); it has no scheme (an apprise URL looks like "
        "tgram://BOT_TOKEN/CHAT_ID)",
        "url1  (not shown)  UNUSABLE: url[1]: not a URL apprise can use (scheme 'tgram'; the "
        "rest is not shown, it may hold a secret); apprise's tgram:// service cannot parse the "
        "rest of it (a token, host or id missing or malformed?)",
    ]
    assert out.splitlines()[2].endswith("  ok")
    assert len(webhook.posts) == 1


async def test_an_unreadable_config_or_no_channel_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text("[channels\n")
    rc, out, err = await monitor("test-notify", "--config", str(cfg))
    assert rc == 2 and out == ""
    assert err.startswith(f"monitor test-notify: {cfg}: not valid TOML: ")
    rc, _, err = await monitor("test-notify")
    assert rc == 2
    assert err == "monitor test-notify: give --config FILE and/or --url URL\n"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    rc, _, err = await monitor("test-notify", "--config", str(empty))
    assert rc == 2
    assert err == f"monitor test-notify: {empty}: no channels configured\n"
