"""The dead-man heartbeat: ping a URL every ``interval`` seconds while the engine is healthy,
so that a watcher outside the monitor (healthchecks.io, a self-hosted Healthchecks, Uptime
Kuma's push monitor, Gatus, ...) alerts the user when the pings stop: the monitor itself is
dead, hung, cut off the network, or its engine is stuck.

Configuration (``[daemon]``)::

    heartbeat_url = "https://hc.example.net/ping/${HC_UUID}"   # ${NAME} / ${file:NAME} as in
                                                               # channel URLs
    heartbeat_interval = "60s"                                 # default 60 s

Each ping is an HTTP ``GET`` of the URL (healthchecks.io's ping API; any 2xx/3xx is fine),
bounded by ``timeout`` (default 10 s). When ``healthy()`` is false nothing is sent, so the
watcher's grace period runs out and it alerts. A failed ping is logged (URL redacted) and the
loop goes on; it never raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from monitor.alerts.rules import parse_duration
from monitor.clock import Clock
from monitor.errors import ConfigError
from monitor.notify.channels import mask, resolve_url

KEYS = ("heartbeat_url", "heartbeat_interval", "heartbeat_timeout")


def log() -> Any:
    """A fresh logger per call (see monitor.notify.delivery.log)."""
    return structlog.get_logger()


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """``url``: the real URL (secrets in it: never log it; ``redacted`` is its scheme and
    host only). ``interval`` and ``timeout``: seconds."""

    url: str = field(repr=False)
    redacted: str
    interval: float = 60.0
    timeout: float = 10.0
    secrets: tuple[str, ...] = field(default=(), repr=False)


def parse_heartbeat(
    daemon: Mapping[str, object],
    source: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> HeartbeatConfig | None:
    """The heartbeat keys of the raw ``[daemon]`` table (other keys are ignored), or None
    when ``heartbeat_url`` is not set. Raises :class:`ConfigError` naming ``daemon.<key>``."""
    raw = daemon.get("heartbeat_url")
    if raw is None:
        for key in ("heartbeat_interval", "heartbeat_timeout"):
            if key in daemon:
                raise ConfigError(source, f"daemon.{key}", "needs daemon.heartbeat_url")
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(source, "daemon.heartbeat_url", "expected an http(s) URL string")
    url, secrets = resolve_url(
        raw.strip(), source, "daemon.heartbeat_url", env=env, credentials_dir=credentials_dir
    )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            source,
            "daemon.heartbeat_url",
            f"expected an http:// or https:// URL (scheme {parts.scheme!r}; the rest is not "
            "shown, it may hold a secret)",
        )
    interval = parse_duration(
        daemon.get("heartbeat_interval", 60.0), source, "daemon.heartbeat_interval"
    )
    timeout = parse_duration(
        daemon.get("heartbeat_timeout", 10.0), source, "daemon.heartbeat_timeout"
    )
    if interval < 1.0:
        raise ConfigError(source, "daemon.heartbeat_interval", "must be at least 1 s")
    if timeout <= 0:
        raise ConfigError(source, "daemon.heartbeat_timeout", "must be > 0")
    return HeartbeatConfig(
        url=url,
        redacted=f"{parts.scheme}://{parts.hostname}/…",
        interval=interval,
        timeout=min(timeout, interval),
        secrets=secrets,
    )


class Heartbeat:
    """The ping loop; see the module docstring. ``sent``, ``failed``, ``skipped``: counts."""

    def __init__(
        self,
        url: str,
        interval: float,
        healthy: Callable[[], bool],
        clock: Clock,
        *,
        timeout: float = 10.0,
        redacted: str | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.interval = interval
        self.healthy = healthy
        self.clock = clock
        self.timeout = timeout
        self.redacted = redacted or f"{urlsplit(url).scheme}://{urlsplit(url).hostname}/…"
        self._secrets = secrets
        self.sent = 0
        self.failed = 0
        self.skipped = 0

    async def run(self) -> None:
        """Ping, then sleep ``interval`` s, until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.beat(session)
                await self.clock.sleep(self.interval)

    async def beat(self, session: aiohttp.ClientSession) -> bool:
        """One ping if healthy; True when the watcher acknowledged it (status < 400)."""
        if not self.healthy():
            self.skipped += 1
            log().warning("heartbeat.skipped", url=self.redacted, reason="engine not healthy")
            return False
        try:
            async with session.get(self.url, allow_redirects=True) as resp:
                await resp.read()
                if resp.status >= 400:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=resp.reason or ""
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.failed += 1
            error = mask(f"{type(exc).__name__}: {exc}".replace(self.url, "…"), self._secrets)
            log().warning("heartbeat.failed", url=self.redacted, error=error)
            return False
        self.sent += 1
        return True


async def heartbeat_loop(
    url: str,
    interval: float,
    healthy: Callable[[], bool],
    clock: Clock,
    *,
    request_timeout: float = 10.0,
) -> None:
    """Ping ``url`` every ``interval`` s while ``healthy()``; runs until cancelled.
    ``request_timeout``: seconds allowed for one ping."""
    await Heartbeat(url, interval, healthy, clock, timeout=request_timeout).run()


def start(config: HeartbeatConfig, healthy: Callable[[], bool], clock: Clock) -> asyncio.Task[None]:
    """Start the loop of a parsed configuration as a task (cancel it at shutdown)."""
    beat = Heartbeat(
        config.url,
        config.interval,
        healthy,
        clock,
        timeout=config.timeout,
        redacted=config.redacted,
        secrets=config.secrets,
    )
    return asyncio.create_task(beat.run(), name="heartbeat")
