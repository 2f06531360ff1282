"""Sending one message to one channel with apprise's ``async_notify`` (never the blocking
``notify`` on the loop), with a per-channel result.

A fresh :class:`apprise.Apprise` is built per send: apprise's own per-plugin throttle
(``request_rate_per_sec``, a blocking ``time.sleep`` of 5.5 s between two emails of one
plugin object) then never applies; pacing is the delivery worker's job (per-chat rate
limits). Each call is bounded by the channel's ``timeout`` (apprise 2.x ``timeout=``).

The result's ``error`` is built from the warnings apprise logged for that service, with the
channel's secrets masked. A Telegram 429 says ``Too Many Requests: retry after N``; that N
(seconds) is returned as ``retry_after``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.notify.channels import Channel

_RETRY_AFTER = re.compile(r"retry[ _]after\D{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)
_ERROR_LEVELS = ("WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class SendResult:
    """``ok``: delivered. ``status``: apprise's SUCCESS/FAILURE/TIMEOUT/NOMATCH.
    ``error``: why not (secrets masked). ``retry_after``: seconds the service asked us to wait."""

    ok: bool
    status: str
    error: str | None = None
    retry_after: float | None = None


class Sender(Protocol):
    async def send(
        self, channel: Channel, title: str, body: str, body_format: str, notify_type: str
    ) -> SendResult: ...


def retry_after_of(text: str) -> float | None:
    m = _RETRY_AFTER.search(text)
    return float(m.group(1)) if m else None


class AppriseSender:
    """The real sender. ``asset_kwargs`` go to :class:`apprise.AppriseAsset`."""

    def __init__(self, **asset_kwargs: Any) -> None:
        self._asset_kwargs = {"secure_logging": True, **asset_kwargs}

    async def send(
        self, channel: Channel, title: str, body: str, body_format: str, notify_type: str
    ) -> SendResult:
        import apprise  # noqa: PLC0415 -- slow import, only needed when sending

        asset = apprise.AppriseAsset(**self._asset_kwargs)
        ap = apprise.Apprise(asset=asset)
        if not ap.add(channel.url):
            return SendResult(False, "FAILURE", f"{channel.redacted}: apprise cannot use this URL")
        fmt = (
            apprise.NotifyFormat.MARKDOWN
            if body_format == "markdown"
            else apprise.NotifyFormat.TEXT
        )
        try:
            result = await ap.async_notify(
                body=body,
                title=title,
                notify_type=apprise.NotifyType(notify_type),
                body_format=fmt,
                timeout=channel.timeout,
            )
        except Exception as exc:  # a plugin bug must not kill the worker
            return SendResult(False, "FAILURE", channel.scrub(f"{type(exc).__name__}: {exc}"))
        status = getattr(getattr(result, "status", None), "name", None)
        if status is None:  # apprise 1.x: True / False / None
            ok = bool(result)
            return SendResult(ok, "SUCCESS" if ok else "FAILURE", None if ok else "send failed")
        if status == "SUCCESS":
            return SendResult(True, status)
        messages: list[str] = []
        for service in result.results:
            for entry in service.logs():
                if entry.level in _ERROR_LEVELS:
                    messages.append(str(entry.message))
        text = channel.scrub("; ".join(dict.fromkeys(messages))) if messages else status.lower()
        return SendResult(False, status, text[:500], retry_after_of(" ".join(messages)))
