"""``monitor test-notify``: send a test message to every channel and say which worked."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monitor.clock import SystemClock
from monitor.errors import ConfigError
from monitor.logs import configure_logging, redact
from monitor.notify.channels import Channel, adhoc_channel, parse_channels
from monitor.notify.render import iso
from monitor.notify.sender import AppriseSender, Sender, SendResult

HELP = "send a test message to every notification channel and print each result"
DESCRIPTION = """\
Send one test message to each channel of the [channels] table of a configuration file
(--config) and/or to ad-hoc apprise URLs (--url, repeatable), all at once, then print one line
per channel: its name, its URL with secrets masked, ok or failed with the reason.

Secrets in channel URLs come from ${ENV_VARS} and ${file:NAME} (a file in
$CREDENTIALS_DIRECTORY, as systemd LoadCredential= provides); they are never printed.
"""
EPILOG = """\
examples:
  monitor test-notify --config /etc/monitor/monitor.toml
  monitor test-notify --url 'json://127.0.0.1:8080/hook' --url 'tgram://$TOKEN/-100123'

exit codes: 0 every channel accepted the message; 1 at least one failed; 2 bad configuration.
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
        metavar="SECONDS",
        type=float,
        default=None,
        help="per-channel time limit (default: each channel's timeout, 30 s)",
    )
    p.set_defaults(func=run)


def load_channels(
    config: Path | None, urls: Sequence[str], env: Mapping[str, str]
) -> list[Channel]:
    """The channels of ``config``'s ``[channels]`` table, then one per ``urls`` entry."""
    out: list[Channel] = []
    if config is not None:
        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(str(config), None, f"cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(config), None, f"not valid TOML: {exc}") from None
        table = doc.get("channels", {})
        if not isinstance(table, dict):
            raise ConfigError(str(config), "channels", "expected a table of channels")
        cred = env.get("CREDENTIALS_DIRECTORY")
        out += parse_channels(
            table, str(config), env=env, credentials_dir=Path(cred) if cred else None
        )
    out += [adhoc_channel(u, i) for i, u in enumerate(urls)]
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
        channels = load_channels(args.config, args.url, os.environ)
    except ConfigError as exc:
        print(f"monitor test-notify: {redact(str(exc))}", file=sys.stderr)
        return 2
    if not channels:
        print(f"monitor test-notify: {args.config}: no channels configured", file=sys.stderr)
        return 2
    if args.timeout is not None:
        channels = [dataclasses.replace(c, timeout=args.timeout) for c in channels]
    results = asyncio.run(send_all(channels, AppriseSender(), SystemClock().now()))
    width = max(len(c.name) for c in channels)
    for ch, res in zip(channels, results, strict=True):
        status = "ok" if res.ok else f"FAILED: {ch.scrub(res.error or res.status)}"
        print(f"{ch.name:<{width}}  {ch.redacted}  {status}")
    return 0 if all(r.ok for r in results) else 1
