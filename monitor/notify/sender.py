"""Sending one message to one channel with apprise's ``async_notify`` (never the blocking
``notify`` on the loop), with a classified per-channel result.

A fresh plugin object is built per send (:meth:`apprise.Apprise.instantiate`): apprise's own
per-plugin throttle (``request_rate_per_sec``, a blocking ``time.sleep`` of 5.5 s between two
emails of one plugin object) then never applies; pacing is the delivery worker's job
(per-chat rate limits).

Timeouts: the channel's ``timeout`` (seconds) becomes the plugin's ``socket_connect_timeout``
and ``socket_read_timeout`` (apprise's ``cto``/``rto``; the HTTP plugins pass them to
``requests``, the email plugin to ``smtplib``); the whole call is bounded by
``2 · timeout + 1`` s (apprise's ``timeout=``), so the plugin's own timeouts fire first.

Webhooks (``json://``, ``form://``, ``xml://``) carry the message's stable idempotency key in
an ``Idempotency-Key`` header: the same message sent twice (a retry after a timeout, a resend
after a crash) has the same key, so the receiver can drop the repeat.

A title folded into the body (Telegram) is HTML-escaped when the body is HTML.

``attach``: local file paths (PNG charts) sent as an :class:`apprise.AppriseAttachment`.
Plugins with attachment support (Telegram: ``sendPhoto``, the text as its caption when it
fits Telegram's 1,024 characters, else a message then the photo; email: a MIME part; ntfy,
Pushover, json:// webhooks: base64 in the payload) carry them; the others ignore them and
send the text alone (apprise drops attachments for a plugin without support when a body is
given).

The result's ``kind`` (:func:`classify`, from the lines apprise logged for the call):

* ``format``: the service refused the markup (Telegram's 400 "can't parse entities");
* ``permanent``: a 4xx other than 408/429 (bad request, unauthorized, chat not found), an
  SMTP 5xx reply (550 recipient refused); an SMTP authentication failure (535: apprise logs
  every SMTP error as "Connection error", so after a failed email the sender logs in once
  more with apprise's own SMTP controller to tell a refused login from an unreachable
  server);
* ``transient``: everything else: 429 (with its ``retry_after``), 408, 5xx, SMTP 4xx,
  connection errors, timeouts, unknown.

``error`` is built from the warnings apprise logged for that service (never the debug lines,
which may hold the payload), with the channel's secrets masked. A Telegram 429 says ``Too
Many Requests: retry after N``; that N (seconds) is returned as ``retry_after``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.notify.channels import Channel
from monitor.notify.render import HTML, MARKDOWN, html_escape

_RETRY_AFTER = re.compile(r"retry[ _]after\D{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)
_ERROR_LEVELS = ("WARNING", "ERROR", "CRITICAL")

OK = "ok"
TRANSIENT = "transient"
PERMANENT = "permanent"
FORMAT = "format"

_FORMAT_REFUSED = re.compile(
    r"can't parse entities|can't find end of the entity|unsupported start tag|"
    r"can't parse (?:message text|markdown)",
    re.IGNORECASE,
)
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
# refused recipients as apprise's email plugin logs them: "SMTP recipient x was refused: 550 …"
_SMTP_REPLY = re.compile(r"was refused: (\d{3})\b")

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class SendResult:
    """``ok``: delivered. ``status``: apprise's SUCCESS/FAILURE/TIMEOUT/NOMATCH.
    ``error``: why not (secrets masked). ``retry_after``: seconds the service asked us to wait.
    ``kind``: ``ok`` | ``transient`` | ``permanent`` | ``format`` (see the module doc).
    ``answered``: the service answered with an HTTP error status, so the message certainly
    did not arrive (a timeout or connection error may have delivered it)."""

    ok: bool
    status: str
    error: str | None = None
    retry_after: float | None = None
    kind: str = TRANSIENT
    answered: bool = False

    @property
    def outcome(self) -> str:
        return OK if self.ok else self.kind


class Sender(Protocol):
    async def send(
        self,
        channel: Channel,
        title: str,
        body: str,
        body_format: str,
        notify_type: str,
        *,
        idem_key: str | None = None,
        attach: Sequence[str] = (),
    ) -> SendResult: ...


def retry_after_of(text: str) -> float | None:
    m = _RETRY_AFTER.search(text)
    return float(m.group(1)) if m else None


def classify(lines: list[str]) -> str:
    """The failure kind (``transient``, ``permanent``, ``format``) of a call from the lines
    apprise logged for it; see the module docstring."""
    text = "\n".join(lines)
    if _FORMAT_REFUSED.search(text):
        return FORMAT
    codes = [int(c) for c in _HTTP_STATUS.findall(text)]
    if any(c in {408, 429} or c >= 500 for c in codes):
        return TRANSIENT
    if any(400 <= c < 500 for c in codes):
        return PERMANENT
    smtp = [int(c) for c in _SMTP_REPLY.findall(text)]
    if any(c >= 500 for c in smtp):
        return PERMANENT
    return TRANSIENT


def _format(apprise: Any, body_format: str) -> Any:
    if body_format == MARKDOWN:
        return apprise.NotifyFormat.MARKDOWN
    if body_format == HTML:
        return apprise.NotifyFormat.HTML
    return apprise.NotifyFormat.TEXT


class AppriseSender:
    """The real sender. ``asset_kwargs`` go to :class:`apprise.AppriseAsset`."""

    def __init__(self, **asset_kwargs: Any) -> None:
        self._asset_kwargs = {"secure_logging": True, **asset_kwargs}

    async def send(
        self,
        channel: Channel,
        title: str,
        body: str,
        body_format: str,
        notify_type: str,
        *,
        idem_key: str | None = None,
        attach: Sequence[str] = (),
    ) -> SendResult:
        import apprise  # noqa: PLC0415 -- slow import, only needed when sending

        asset = apprise.AppriseAsset(**self._asset_kwargs)
        plugin = apprise.Apprise.instantiate(channel.url, asset=asset, suppress_exceptions=True)
        ap = apprise.Apprise(asset=asset)
        if plugin is None or not ap.add(plugin):
            return SendResult(
                False,
                "FAILURE",
                f"{channel.redacted}: apprise cannot use this URL",
                None,
                PERMANENT,
            )
        plugin.socket_connect_timeout = channel.timeout
        plugin.socket_read_timeout = channel.timeout
        headers = getattr(plugin, "headers", None)
        if idem_key is not None and isinstance(headers, dict):
            headers[IDEMPOTENCY_HEADER] = idem_key
        if body_format == HTML and getattr(plugin, "title_maxlen", 1) <= 0:
            title = html_escape(title)
        try:
            files = apprise.AppriseAttachment(list(attach), asset=asset) if attach else None
            result = await ap.async_notify(
                body=body,
                title=title,
                notify_type=apprise.NotifyType(notify_type),
                body_format=_format(apprise, body_format),
                attach=files,
                timeout=2 * channel.timeout + 1,
                log_level=logging.INFO,
            )
        except Exception as exc:  # a plugin bug must not kill the worker
            return SendResult(False, "FAILURE", channel.scrub(f"{type(exc).__name__}: {exc}"))
        status = getattr(getattr(result, "status", None), "name", None)
        if status is None:  # apprise 1.x: True / False / None
            ok = bool(result)
            return SendResult(ok, "SUCCESS" if ok else "FAILURE", None if ok else "send failed")
        if status == "SUCCESS":
            return SendResult(True, status, kind=OK)
        warnings: list[str] = []
        every: list[str] = []
        for service in result.results:
            for entry in service.logs():
                every.append(str(entry.message))
                if entry.level in _ERROR_LEVELS:
                    warnings.append(str(entry.message))
        text = channel.scrub("; ".join(dict.fromkeys(warnings))) if warnings else status.lower()
        kind = TRANSIENT if status == "TIMEOUT" else classify(every)
        if kind == TRANSIENT and channel.kind == "email" and status != "TIMEOUT":
            refusal = await asyncio.to_thread(_smtp_login_refused, plugin)
            if refusal is not None:
                kind = PERMANENT
                text = channel.scrub(f"{text}; {refusal}")
        answered = status != "TIMEOUT" and bool(_HTTP_STATUS.search("\n".join(every)))
        return SendResult(
            False, status, text[:500], retry_after_of(" ".join(warnings)), kind, answered
        )


def _smtp_login_refused(plugin: Any) -> str | None:
    """Log in to the email plugin's server as it does (apprise's SMTP controller): the
    server's refusal (``SMTP 535 …``) if it answered the login with a 5xx, else None."""
    import smtplib  # noqa: PLC0415

    from apprise.plugins.email.smtp import AppriseSMTPController  # noqa: PLC0415

    if not getattr(plugin, "user", None) or not getattr(plugin, "password", None):
        return None
    try:
        with AppriseSMTPController(
            host=plugin.smtp_host,
            port=plugin.port,
            secure_mode=plugin.secure_mode,
            user=plugin.user,
            password=plugin.password,
            verify_certificate=plugin.verify_certificate,
            socket_connect_timeout=plugin.socket_connect_timeout,
        ):
            return None
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            return f"SMTP {exc.smtp_code} at login (authentication refused)"
        return None
    except Exception:  # unreachable, TLS trouble...: transient
        return None
