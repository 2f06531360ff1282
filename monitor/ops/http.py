"""``/metrics`` and ``/healthz`` over HTTP (aiohttp), for Prometheus and uptime checks.

* ``GET /metrics``: the Prometheus text exposition (format 0.0.4) of the source, read at
  scrape time (:class:`monitor.ops.metrics.Exporter`). A source that fails answers 500 with
  the error's type, and the failure is logged (``metrics.scrape_failed``).
* ``GET /healthz``: 200 ``ok`` while ``healthy()`` returns ``(True, _)``, else 503 with the
  reason it returned (one line of text). A ``healthy`` that raises counts as unhealthy.

Bound to 127.0.0.1 by default (``[metrics] listen``). No extra task: aiohttp's server lives in
the event loop's own socket callbacks; :meth:`MetricsServer.close` stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from monitor.config import MetricsConfig
from monitor.errors import FatalError
from monitor.logs import redact
from monitor.ops.figures import MetricsSource
from monitor.ops.metrics import Exporter

#: ``healthy()`` → (ok, reason): the reason is shown with a 503
Healthy = Callable[[], tuple[bool, str]]


def log() -> Any:
    return structlog.get_logger()


class MetricsServer:
    """A running ``/metrics`` + ``/healthz`` server. ``port`` is the bound port (useful with
    port 0); ``url`` its base URL. An async context manager; :meth:`close` is idempotent."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner: web.AppRunner | None = runner
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def make_app(exporter: Exporter, healthy: Healthy) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        try:
            body = await exporter.scrape()
        except Exception as exc:  # the store may be busy or broken: say so, stay up
            log().warning("metrics.scrape_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return web.Response(status=500, text=f"scrape failed: {type(exc).__name__}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def healthz(_: web.Request) -> web.Response:
        try:
            ok, reason = healthy()
        except Exception as exc:
            ok, reason = False, f"health check failed: {type(exc).__name__}"
        if ok:
            return web.Response(text="ok\n")
        line = (reason.splitlines() or ["unhealthy"])[0]
        return web.Response(status=503, text=redact(line) + "\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


async def serve_metrics(
    cfg: MetricsConfig, source: MetricsSource, healthy: Healthy
) -> MetricsServer:
    """Start serving on ``cfg.host:cfg.port``; returns the running server (close it on the way
    out). Raises :class:`~monitor.errors.FatalError` naming the address when it cannot bind."""
    runner = web.AppRunner(
        make_app(Exporter(source), healthy), handle_signals=False, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise FatalError(
            f"metrics: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}"
        ) from None
    port = int(runner.addresses[0][1]) if runner.addresses else cfg.port
    log().info("metrics.listening", host=cfg.host, port=port)
    return MetricsServer(runner, cfg.host, port)
