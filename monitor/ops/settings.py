"""Configuration of the optional operator parts (pure: parses the raw TOML tables).

``[metrics]`` (Prometheus ``/metrics`` and ``/healthz``)::

    [metrics]
    enabled = false              # default
    listen = "127.0.0.1:9108"    # HOST:PORT; "[::1]:9108" for IPv6; port 0 picks a free one

``[telegram_bot]`` (the command bot, long polling)::

    [telegram_bot]
    enabled = false                        # default
    token = "${TELEGRAM_BOT_TOKEN}"        # or "${file:telegram-bot-token}" (systemd credential)
    chat_ids = [123456789, -1001234567890] # only these chats are answered
    poll_timeout = 30                      # seconds of one getUpdates long poll
    history_hours = 6                      # /history without a duration
    api_url = "http://127.0.0.1:8081/bot"  # optional: a Bot API server other than Telegram's

Secrets: ``${NAME}`` is the environment variable NAME, ``${file:NAME}`` the file
``$CREDENTIALS_DIRECTORY/NAME``, as for channel URLs. The token is never part of a repr, a log
line or an error message.

Errors are :class:`OpsConfigError` (a :class:`~monitor.errors.ConfigError` and a
:class:`ValueError`) naming the key path, e.g. ``monitor.toml: metrics.listen: ...``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.notify.channels import _resolve

METRICS_KEYS = ("enabled", "listen")
BOT_KEYS = ("enabled", "token", "chat_ids", "api_url", "poll_timeout", "history_hours")
DEFAULT_LISTEN = "127.0.0.1:9108"
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class OpsConfigError(ConfigError, ValueError):
    """An invalid ``[metrics]`` or ``[telegram_bot]`` table; ``field`` is the key path."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``host``/``port``: where ``/metrics`` and ``/healthz`` listen (port 0: any free one)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True, slots=True)
class TelegramBotConfig:
    """``chat_ids``: the only chats answered. ``api_url``: the Bot API base URL the token is
    appended to (None: Telegram's). Seconds for ``poll_timeout``; hours for
    ``history_hours``."""

    enabled: bool = False
    token: str = field(default="", repr=False)
    chat_ids: frozenset[int] = frozenset()
    api_url: str | None = None
    poll_timeout: float = 30.0
    history_hours: float = 6.0


def _known(table: Mapping[str, Any], keys: tuple[str, ...], source: str, section: str) -> None:
    import difflib  # noqa: PLC0415 -- only on the error path

    for key in table:
        if key not in keys:
            near = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(keys)})"
            raise OpsConfigError(source, f"{section}.{key}", f"unknown key{hint}")


def _bool(table: Mapping[str, Any], key: str, source: str, section: str) -> bool:
    v = table.get(key, False)
    if not isinstance(v, bool):
        raise OpsConfigError(source, f"{section}.{key}", f"expected true or false, got {v!r}")
    return v


def _positive(
    table: Mapping[str, Any], key: str, default: float, source: str, section: str
) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise OpsConfigError(source, f"{section}.{key}", f"expected a number > 0, got {v!r}")
    return float(v)


def parse_listen(text: object, source: str, path: str) -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"[IPv6]:PORT"`` → (host, port)."""
    if not isinstance(text, str):
        raise OpsConfigError(source, path, f'expected "HOST:PORT", got {text!r}')
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text.strip())
    if not m:
        raise OpsConfigError(source, path, f'expected "HOST:PORT" such as {DEFAULT_LISTEN!r}')
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise OpsConfigError(source, path, f"port {port} is above 65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if m.group(1) or not _HOSTNAME.match(host):
            raise OpsConfigError(source, path, f"{host!r} is not an address or host name") from None
    return host, port


def parse_metrics(table: Mapping[str, Any], source: str = "config") -> MetricsConfig:
    """The ``[metrics]`` table (empty: disabled). Raises :class:`OpsConfigError`."""
    _known(table, METRICS_KEYS, source, "metrics")
    enabled = _bool(table, "enabled", source, "metrics")
    host, port = parse_listen(table.get("listen", DEFAULT_LISTEN), source, "metrics.listen")
    return MetricsConfig(enabled=enabled, host=host, port=port)


def parse_telegram_bot(
    table: Mapping[str, Any],
    source: str = "config",
    *,
    env: Mapping[str, str] | None = None,
    credentials_dir: Path | None = None,
) -> TelegramBotConfig:
    """The ``[telegram_bot]`` table (empty: disabled). ``env`` resolves ``${NAME}`` (default:
    an empty mapping) and ``credentials_dir`` ``${file:NAME}``. A disabled bot's token and
    chats are not resolved or required. Raises :class:`OpsConfigError`."""
    s = "telegram_bot"
    _known(table, BOT_KEYS, source, s)
    enabled = _bool(table, "enabled", source, s)
    poll_timeout = _positive(table, "poll_timeout", 30.0, source, s)
    history_hours = _positive(table, "history_hours", 6.0, source, s)
    api_url = table.get("api_url")
    if api_url is not None and (
        not isinstance(api_url, str) or not re.match(r"^https?://[^\s/]+", api_url)
    ):
        raise OpsConfigError(source, f"{s}.api_url", "expected an http(s):// URL")
    raw_ids = table.get("chat_ids", [])
    if not isinstance(raw_ids, list) or any(
        isinstance(c, bool) or not isinstance(c, int) for c in raw_ids
    ):
        raise OpsConfigError(
            source, f"{s}.chat_ids", "expected a list of integer chat ids, e.g. [123456789]"
        )
    if not enabled:
        return TelegramBotConfig(
            enabled=False,
            chat_ids=frozenset(raw_ids),
            api_url=api_url,
            poll_timeout=poll_timeout,
            history_hours=history_hours,
        )
    if not raw_ids:
        raise OpsConfigError(
            source, f"{s}.chat_ids", "list at least one chat id: the bot answers no one else"
        )
    raw_token = table.get("token")
    if not isinstance(raw_token, str) or not raw_token.strip():
        raise OpsConfigError(
            source, f"{s}.token", 'required when enabled, e.g. "${TELEGRAM_BOT_TOKEN}"'
        )
    secrets: list[str] = []
    try:
        token = _resolve(
            raw_token.strip(),
            source,
            f"{s}.token",
            env=env or {},
            credentials_dir=credentials_dir,
            secrets=secrets,
        )
    except ConfigError as exc:
        raise OpsConfigError(exc.source, exc.field, exc.problem) from None
    if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", token):
        # never echo the value: it may be a real token with a typo
        raise OpsConfigError(
            source, f"{s}.token", "does not look like a bot token (digits:letters from BotFather)"
        )
    return TelegramBotConfig(
        enabled=True,
        token=token,
        chat_ids=frozenset(raw_ids),
        api_url=api_url,
        poll_timeout=poll_timeout,
        history_hours=history_hours,
    )
