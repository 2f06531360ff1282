"""Channel URLs whose query keys apprise drops silently are refused (check-config, start-up,
test-notify), with the nearest key apprise reads and the prefix that sends the value.

The premise is checked against a real loopback HTTP server: apprise really drops ``?token=``
from a ``json://`` URL, sends ``?-token=`` as a query parameter and ``?+token=`` as a header.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import apprise
import pytest
from aiohttp import web

from monitor.cli import main
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.notify.channels import parse_channels

SECRET = "s3cr3t-w3bh00k-t0ken"


class Recorder:
    """A loopback HTTP server recording each request's query and headers."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{path:.*}", self._any)
        self.port = 0

    async def _any(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(status=200, text="ok")


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    runner = web.AppRunner(rec.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = runner.addresses[0][1]
    yield rec
    await runner.cleanup()


async def _send(url: str) -> bool:
    ap = apprise.Apprise()
    assert ap.add(url)
    return bool(await ap.async_notify(body="b", title="t"))


@pytest.mark.parametrize("scheme", ["json", "form", "xml"])
async def test_apprise_drops_a_bare_token_key_but_sends_the_prefixed_ones(
    recorder: Recorder, scheme: str
) -> None:
    base = f"{scheme}://127.0.0.1:{recorder.port}/hook"
    assert await _send(f"{base}?token={SECRET}")
    assert await _send(f"{base}?-token={SECRET}")
    assert await _send(f"{base}?+token={SECRET}")
    dropped, as_param, as_header = zip(recorder.queries, recorder.headers, strict=True)
    # ?token= reaches the server neither as a query parameter nor as a header
    assert "token" not in dropped[0] and "token" not in dropped[1]
    assert as_param[0] == {"token": SECRET}
    assert as_header[1]["token"] == SECRET


@pytest.mark.parametrize("scheme", ["json", "jsons", "form", "forms", "xml", "xmls"])
def test_a_bare_token_key_is_refused_with_the_prefixes_and_without_the_value(
    scheme: str,
) -> None:
    url = f"{scheme}://hooks.example.com/in?token={SECRET}"
    with pytest.raises(ConfigError) as err:
        parse_channels({"hook": {"url": url}}, "m.toml", env={}, credentials_dir=None)
    assert str(err.value) == (
        f"m.toml: channels.hook.url: apprise drops the query key 'token' of a {scheme}:// URL "
        "silently: write '?-token=…' (sent as a query parameter), '?+token=…' (sent as a "
        "header) or '?:token=…' (sent as a payload field)"
    )
    assert SECRET not in str(err.value)


def test_a_mistyped_known_key_is_refused_with_the_nearest_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_channels(
            {"hook": {"url": "json://h.example.com/in?mehtod=GET"}},
            "m.toml",
            env={},
            credentials_dir=None,
        )
    assert err.value.problem == (
        "apprise drops the query key 'mehtod' of a json:// URL silently: did you mean "
        "'method'? Otherwise write '?-mehtod=…' (sent as a query parameter), '?+mehtod=…' "
        "(sent as a header) or '?:mehtod=…' (sent as a payload field)"
    )


def test_a_mistyped_telegram_key_is_refused_with_the_nearest_key() -> None:
    url = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ/-100123?slient=yes"
    with pytest.raises(ConfigError) as err:
        parse_channels({"tg": {"url": url}}, "m.toml", env={}, credentials_dir=None)
    assert "the query key 'slient' of a tgram:// URL silently: did you mean 'silent'?" in str(
        err.value
    )
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ" not in str(err.value)


def test_a_header_key_on_a_service_without_headers_is_refused() -> None:
    url = "ntfys://ntfy.example.net/alerts?+X-Token=abc"
    with pytest.raises(ConfigError) as err:
        parse_channels({"n": {"url": url}}, "m.toml", env={}, credentials_dir=None)
    assert err.value.problem == (
        "apprise drops the query key '+X-Token' of a ntfys:// URL silently: it takes no '+' "
        "keys (a header); prefixes it takes: none"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"json://h.example.com/in?-token={SECRET}&+Authorization=Bearer%20x&:source=m&method=PUT",
        "json://h.example.com/in?Method=POST&verify=no&cto=3&rto=5&overflow=split&format=text",
        "xmls://u:p@h.example.com/in?+X=1",
        "mailtos://alice:pw@smtp.example.com:587?to=bob@example.com&cc=c@example.com&name=M",
        "ntfys://ntfy.example.net/topic?priority=max&tags=rotating_light",
        "pover://uuuuuuuuuuuuuuuuuuuuuuuuuuuuuu@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "?priority=emergency&interval=60&expire=3600",
        "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ/-100123?silent=yes&preview=no",
    ],
)
def test_keys_apprise_reads_are_accepted(url: str) -> None:
    (ch,) = parse_channels({"c": {"url": url}}, "m.toml", env={}, credentials_dir=None)
    assert ch.name == "c"


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(
        "[venues.hyperliquid]\n\n"
        '[[accounts]]\nid = "hyperliquid:0x1111111111111111111111111111111111111111"\n\n'
        f'[channels.hook]\nurl = "{url}"\n\n'
        f'[store]\npath = "{tmp_path / "m.db"}"\n'
    )
    return path


def test_check_config_refuses_a_dropped_key_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    path = _config(tmp_path, "json://hooks.example.com/in?token=${HOOK_TOKEN}")
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == (
        f"monitor check-config: {path}: channels.hook.url: apprise drops the query key 'token' "
        "of a json:// URL silently: write '?-token=…' (sent as a query parameter), "
        "'?+token=…' (sent as a header) or '?:token=…' (sent as a payload field)\n"
    )
    assert SECRET not in err


def test_start_up_refuses_a_dropped_key(tmp_path: Path) -> None:
    path = _config(tmp_path, f"json://hooks.example.com/in?token={SECRET}")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert "channels.hook.url: apprise drops the query key 'token'" in str(err.value)
    assert SECRET not in str(err.value)
    # the daemon itself exits 2 with that line, before it opens the store
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "apprise drops the query key 'token' of a json:// URL silently" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    assert not (tmp_path / "m.db").exists()


async def test_test_notify_reports_the_dropped_key_and_tries_the_other_url(
    recorder: Recorder,
) -> None:
    good = f"json://127.0.0.1:{recorder.port}/hook?-token={SECRET}"
    bad = f"json://127.0.0.1:{recorder.port}/hook?token={SECRET}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "test-notify",
        "--url",
        bad,
        "--url",
        good,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    raw_out, raw_err = await asyncio.wait_for(proc.communicate(), 60)
    out = raw_out.decode()
    lines = out.splitlines()
    assert proc.returncode == 1
    assert lines[0] == (
        "url0  (not shown)  UNUSABLE: url[0]: apprise drops the query key 'token' of a json:// "
        "URL silently: write '?-token=…' (sent as a query parameter), '?+token=…' (sent as a "
        "header) or '?:token=…' (sent as a payload field)"
    )
    assert lines[1] == f"url1  json://127.0.0.1:{recorder.port}/hook?-token=***  ok"
    assert recorder.queries == [{"token": SECRET}]
    assert SECRET not in out + raw_err.decode()


def test_every_query_key_apprise_writes_into_its_own_urls_is_accepted() -> None:
    """No false refusal: for every apprise service, the keys its ``url()`` writes (the
    canonical form of a URL it was given) are among the keys we accept for it."""
    import inspect
    import re

    from apprise.manager_plugins import NotificationManager

    from monitor.notify.channels import query_keys

    manager = NotificationManager()  # type: ignore[no-untyped-call]
    manager.load_modules()  # type: ignore[no-untyped-call]
    classes = {manager[s] for s in manager.schemas()}  # type: ignore[no-untyped-call]
    written = 0
    refused: dict[str, set[str]] = {}
    for cls in classes:
        src = inspect.getsource(cls.url)
        keys: set[str] = set()
        for m in re.finditer(r"params\s*(?:=|\.update\()\s*\{(.*?)\n\s*\}", src, re.S):
            keys |= set(re.findall(r'^\s*"([A-Za-z0-9_]+)"\s*:', m.group(1), re.M))
        keys |= set(re.findall(r'params\["([A-Za-z0-9_]+)"\]\s*=', src))
        known, _ = query_keys(cls)
        written += len(keys)
        if missing := {k for k in keys if k.lower() not in known}:
            refused[cls.__name__] = missing
    assert written > 300  # the scan found what apprise writes (532 keys in apprise 2.3)
    assert refused == {}


def test_a_token_written_as_a_key_is_refused_without_being_echoed() -> None:
    token = "abcdef0123456789abcdef0123456789"  # pasted where a key goes: ?TOKEN
    with pytest.raises(ConfigError) as err:
        parse_channels(
            {"hook": {"url": f"json://h.example.com/in?{token}"}},
            "m.toml",
            env={},
            credentials_dir=None,
        )
    assert err.value.problem == (
        "apprise drops a query key of 32 characters (not shown: it may be a secret) of a "
        "json:// URL silently; a value is written ?key=value"
    )
    assert token not in str(err.value)
