"""``monitor test-notify``: send a test message to every channel and say which worked."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import difflib
import logging
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.clock import SystemClock
from monitor.commands.check_config import LOCAL_SCHEMES
from monitor.errors import ConfigError
from monitor.logs import configure_logging, redact
from monitor.notify.channels import Channel, adhoc_channel, parse_channels
from monitor.notify.render import iso
from monitor.notify.sender import AppriseSender, Sender, SendResult
from monitor.units import duration_arg

HELP = "send a test message to every notification channel and print each result"
DESCRIPTION = """\
Send one test message to each channel of the [channels] table of a configuration file
(--config) and/or to ad-hoc apprise URLs (--url, repeatable), all at once, then print one line
per channel: its name, its URL with secrets masked, and "ok", "FAILED: <why the service
refused or could not be reached>" or "UNUSABLE: <why the URL cannot be used>" (a secret that is
not set, a URL apprise does not know, a bad option). An unusable channel does not stop the
others: every channel is tried and reported.

Secrets in channel URLs come from ${ENV_VARS} and ${file:NAME} (a file in
$CREDENTIALS_DIRECTORY, as systemd LoadCredential= provides); they are never printed.
"""
EPILOG = """\
examples:
  monitor test-notify --config /etc/monitor/monitor.toml
  monitor test-notify --url 'json://127.0.0.1:8080/hook' --url 'tgram://$TOKEN/-100123'

exit codes: 0 every channel accepted the message; 1 at least one failed or is unusable;
2 the configuration file cannot be read, or no channel was given.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "test-notify",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="TOML configuration whose [channels] table to test",
    )
    p.add_argument(
        "--url",
        metavar="URL",
        action="append",
        default=[],
        help="an apprise URL to test (repeatable)",
    )
    p.add_argument(
        "--timeout",
        metavar="DURATION",
        type=duration_arg,
        default=None,
        help="per-channel time limit (default: each channel's timeout, 30 s)",
    )
    p.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class Unusable:
    """A channel that cannot be tried: ``name``, and ``reason`` naming the key path and the
    problem (never a secret value)."""

    name: str
    reason: str


def _reason(exc: ConfigError, raw_url: object = None) -> str:
    """``key.path: problem``, plus what apprise makes of the URL's scheme when it cannot use
    the URL (the scheme is the only part shown: the rest may hold a secret)."""
    where = f"{exc.field}: " if exc.field else ""
    problem = exc.problem
    if problem.startswith(_UNUSABLE + ": ") and isinstance(raw_url, str):
        # adhoc_channel echoes the --url whole; a token there is no known secret, so the
        # redactor cannot mask it: show the scheme only, as for a configured channel
        scheme = urlsplit(raw_url.strip()).scheme
        shown = f"scheme {scheme!r}; the rest" if scheme else "no scheme; it"
        problem = f"{_UNUSABLE} ({shown} is not shown, it may hold a secret)"
    text = redact(f"{where}{problem}")
    if _UNUSABLE in problem and isinstance(raw_url, str):
        text += f"; {scheme_hint(urlsplit(raw_url.strip()).scheme)}"
    return text


_UNUSABLE = "not a URL apprise can use"


def scheme_hint(scheme: str) -> str:
    """Why apprise may refuse a URL of ``scheme``: none given, a service apprise does not
    have (with the nearest one it has), or a known service whose rest is malformed."""
    from apprise.manager_plugins import NotificationManager  # noqa: PLC0415 -- slow import

    known = sorted(NotificationManager().schemas())  # type: ignore[no-untyped-call]
    scheme = scheme.lower()
    if not scheme:
        return "it has no scheme (an apprise URL looks like tgram://BOT_TOKEN/CHAT_ID)"
    if scheme not in known:
        near = difflib.get_close_matches(scheme, known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}://?" if near else ""
        return f"apprise has no {scheme}:// service{hint}"
    return (
        f"apprise's {scheme}:// service cannot parse the rest of it (a token, host or id "
        "missing or malformed?)"
    )


def load_channels(
    config: Path | None, urls: Sequence[str], env: Mapping[str, str]
) -> list[Channel | Unusable]:
    """The channels of ``config``'s ``[channels]`` table, then one per ``urls`` entry; each
    one that cannot be used is an :class:`Unusable` in its place. Raises ConfigError only
    when the file itself cannot be read or its ``[channels]`` is not a table."""
    out: list[Channel | Unusable] = []
    if config is not None:
        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(str(config), None, f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(str(config), None, "not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(config), None, f"not valid TOML: {exc}") from None
        table = doc.get("channels", {})
        if not isinstance(table, dict):
            raise ConfigError(str(config), "channels", "expected a table of channels")
        cred = env.get("CREDENTIALS_DIRECTORY")
        for name, sub in table.items():
            try:
                out += parse_channels(
                    {name: sub},
                    str(config),
                    env=env,
                    credentials_dir=Path(cred) if cred else None,
                )
            except ConfigError as exc:
                raw = sub.get("url") if isinstance(sub, dict) else None
                out.append(Unusable(str(name), _reason(exc, raw)))
    for i, u in enumerate(urls):
        try:
            out.append(adhoc_channel(u, i))
        except ConfigError as exc:
            out.append(Unusable(f"url{i}", _reason(exc, u)))
    return out


async def send_all(channels: Sequence[Channel], sender: Sender, now: float) -> list[SendResult]:
    title = "monitor: test notification"
    body = (
        f"This is a test message from monitor at {iso(now)}.\n"
        "If you can read it, alerts will reach you on this channel."
    )
    return list(
        await asyncio.gather(*(sender.send(ch, title, body, "text", "info") for ch in channels))
    )


def _register_local_plugins() -> None:
    """The daemon's local channels (``monitorfile://``, ``monitorconsole://``), when that
    module is part of this installation."""
    try:
        from monitor.notify import local  # noqa: PLC0415 -- optional, registers plugins
    except ImportError:
        return
    local.register()


def run(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout is for the result
    if args.config is None and not args.url:
        print("monitor test-notify: give --config FILE and/or --url URL", file=sys.stderr)
        return 2
    _register_local_plugins()
    try:
        entries = load_channels(args.config, args.url, os.environ)
    except ConfigError as exc:
        print(f"monitor test-notify: {redact(str(exc))}", file=sys.stderr)
        return 2
    if not entries:
        print(f"monitor test-notify: {args.config}: no channels configured", file=sys.stderr)
        return 2
    channels = [e for e in entries if isinstance(e, Channel)]
    if args.timeout is not None:
        channels = [dataclasses.replace(c, timeout=args.timeout) for c in channels]
    # each channel's failure and its reason are in the result lines: apprise's own warning
    # about it would only repeat them as a log line (apprise still records it per result)
    apprise_log = logging.getLogger("apprise")
    propagate, apprise_log.propagate = apprise_log.propagate, False
    try:
        results = (
            asyncio.run(send_all(channels, AppriseSender(), SystemClock().now()))
            if channels
            else []
        )
    finally:
        apprise_log.propagate = propagate
    sent = iter(zip(channels, results, strict=True))  # in the order of ``entries``
    width = max(len(e.name) for e in entries)
    ok = True
    for entry in entries:
        if isinstance(entry, Unusable):
            ok = False
            print(f"{entry.name:<{width}}  (not shown)  UNUSABLE: {entry.reason}")
            continue
        ch, res = next(sent)
        ok = ok and res.ok
        outcome = "ok" if res.ok else f"FAILED: {ch.scrub(res.error or res.status)}"
        # a local file's path matters and holds no secret: shown whole, as check-config does
        shown = redact(ch.url) if ch.url.lower().startswith(LOCAL_SCHEMES) else ch.redacted
        print(f"{ch.name:<{width}}  {shown}  {outcome}")
    return 0 if ok else 1
