"""``monitor test-notify``: a local file channel shows its path and writes there; an absolute
``monitorfile:///`` path (which apprise folds into a relative one) is refused; a failure's
reason is in its result line, not repeated as a log line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.notify import local
from monitor.notify.channels import parse_channels

ROOT = str(Path(__file__).resolve().parents[2])


async def monitor(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=cwd, env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_a_local_file_shows_its_path_and_a_failure_is_one_line(tmp_path: Path) -> None:
    rc, out, err = await monitor(
        "test-notify", "--url", "monitorfile://out/alerts.txt",
        "--url", "json://127.0.0.1:1/hooks", "--timeout", "5",
        cwd=tmp_path,
    )  # fmt: skip
    assert rc == 1
    ok, failed = out.splitlines()
    assert ok == "url0  monitorfile://out/alerts.txt  ok"
    assert (tmp_path / "out" / "alerts.txt").read_text().startswith("monitor: test notification")
    assert failed.startswith("url1  json://127.0.0.1:1/hooks  FAILED: ")
    assert err == ""  # the reason is in the line above, not repeated as a JSON log line


def test_an_absolute_monitorfile_path_is_refused_naming_where_it_would_write() -> None:
    local.register()  # our apprise plugins, as the daemon and the CLI register them
    with pytest.raises(ConfigError) as exc:
        parse_channels(
            {"file": {"url": "monitorfile:///var/log/alerts.txt"}},
            "m.toml",
            env={},
            credentials_dir=None,
        )
    assert str(exc.value) == (
        "m.toml: channels.file.url: monitorfile:// takes a path relative to the daemon's "
        "working directory (apprise folds '///' into '//': this would write "
        "'var/log/alerts.txt' under it, not /var/log/alerts.txt); write "
        "monitorfile://var/log/alerts.txt and run the daemon from /, or a relative path"
    )
    # the relative form is accepted
    (ch,) = parse_channels(
        {"file": {"url": "monitorfile://var/log/alerts.txt"}},
        "m.toml",
        env={},
        credentials_dir=None,
    )
    assert ch.url == "monitorfile://var/log/alerts.txt"
