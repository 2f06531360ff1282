"""Notification channels: any apprise URL, routed by severity, with secrets kept out of sight.

The ``[channels]`` TOML table, one sub-table per channel::

    [channels.telegram]
    url = "tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890"
    min_severity = "warning"     # info | warning | critical (default: warning)
    send_resolved = true         # default true
    format = "text"              # text | markdown (default text)
    min_interval = "1s"          # per chat; Telegram default 1 s
    per_minute = 20              # Telegram default 20 when a chat id is a group (< 0)
    max_length = 4096            # Telegram default 4096

    [channels.email]
    url_file = "smtp_url"        # the whole URL from $CREDENTIALS_DIRECTORY/smtp_url
    min_severity = "critical"

Secrets: ``${NAME}`` in a URL is replaced by the environment variable ``NAME``;
``${file:NAME}`` (or ``${cred:NAME}``) by the contents of ``$CREDENTIALS_DIRECTORY/NAME``
(systemd ``LoadCredential=``), trailing newline stripped; ``url_file`` takes the whole URL
from such a file. Every substituted value is registered with the log redactor
(:func:`monitor.logs.register_secret`), and a channel shows itself only by its name and its
redacted URL (apprise's privacy form), never the real one, in ``repr``, logs and errors.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, urlsplit

from monitor.alerts.rules import Severity, parse_duration
from monitor.errors import ConfigError
from monitor.logs import redact, register_secret

_REF = re.compile(r"\$\{(?:(file|cred):)?([A-Za-z_][A-Za-z0-9_.-]*)\}")
_KEYS = (
    "url",
    "url_file",
    "min_severity",
    "send_resolved",
    "format",
    "min_interval",
    "per_minute",
    "max_length",
    "timeout",
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _spellings(s: str) -> set[str]:
    """How ``s`` may appear in a URL: as is, percent-encoded (path or query, either case)."""
    return {s, quote(s, safe=""), quote(s), quote_plus(s), quote(s, safe="").lower()}


@dataclass(frozen=True, slots=True)
class Channel:
    """One destination. ``url`` is the real apprise URL (secrets in it): never log it; use
    ``name`` and ``redacted``. Intervals are seconds."""

    name: str
    url: str = field(repr=False)
    redacted: str
    min_severity: Severity = Severity.WARNING
    send_resolved: bool = True
    format: str = "text"
    min_interval: float = 0.0
    per_minute: int | None = None
    max_length: int | None = None
    timeout: float = 30.0
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def label(self) -> str:
        """What to show: ``name (redacted-url)``."""
        return f"{self.name} ({self.redacted})"

    def body_limit(self, title: str) -> int | None:
        """Room for the body when ``title`` goes with it: services like Telegram fold the
        title into the text, so it counts against ``max_length`` (with a line break)."""
        if self.max_length is None:
            return None
        return max(self.max_length - len(title) - 8, 100)

    def accepts(self, severity: Severity) -> bool:
        return severity.rank >= self.min_severity.rank

    def scrub(self, text: str) -> str:
        """``text`` with this channel's secrets (and anything secret-looking) masked."""
        for s in sorted(self.secrets, key=len, reverse=True):
            if s:
                text = text.replace(s, "***")
        return redact(text)


def _resolve(
    template: str,
    source: str,
    path: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
    secrets: list[str],
) -> str:
    def sub(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2)
        if kind is None:
            if name not in env:
                raise ConfigError(source, path, f"environment variable {name} is not set")
            value = env[name]
        else:
            value = _credential(name, source, path, credentials_dir)
        if not value:
            raise ConfigError(source, path, f"secret {m.group(0)} is empty")
        secrets.append(value)
        return value

    return _REF.sub(sub, template)


def _credential(name: str, source: str, path: str, credentials_dir: Path | None) -> str:
    if credentials_dir is None:
        raise ConfigError(
            source,
            path,
            f"credential {name!r} needs $CREDENTIALS_DIRECTORY (systemd "
            "LoadCredential=), which is not set",
        )
    if "/" in name or name in (".", ".."):
        raise ConfigError(source, path, f"credential name {name!r} must be a plain file name")
    file = credentials_dir / name
    try:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(source, path, f"cannot read credential {file}: {exc.strerror}") from None


def _privacy_url(url: str) -> str | None:
    """apprise's privacy form of ``url`` (secrets masked), or None if apprise can't parse it."""
    import apprise  # noqa: PLC0415 -- apprise is slow to import; only channels need it

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    text: object = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    return str(text)


_SECRETISH = re.compile(r"(?i)(token|key|pass|secret|auth|sig)")


def _mask_query(url: str) -> str:
    """Mask query values that carry headers (``+H=v``), payload fields (``:k=v``) or look
    secret (``token=``, ``apikey=``, ...): apprise's privacy form keeps those in clear."""
    head, sep, query = url.partition("?")
    if not sep:
        return url
    parts = []
    for item in query.split("&"):
        k, eq, _v = item.partition("=")
        if eq and (k.startswith(("+", "%2B", "%2b", ":", "-")) or _SECRETISH.search(k)):
            parts.append(f"{k}=***")
        else:
            parts.append(item)
    return head + "?" + "&".join(parts)


def _only_given_params(redacted: str, original: str) -> str:
    """Drop the query parameters apprise adds with its defaults (``overflow=upstream``,
    ``retry=0``, ...): keep those the user wrote."""
    head, sep, query = redacted.partition("?")
    if not sep:
        return redacted
    given = {
        unquote(item.partition("=")[0]) for item in urlsplit(original).query.split("&") if item
    }
    kept = [item for item in query.split("&") if unquote(item.partition("=")[0]) in given]
    return head + ("?" + "&".join(kept) if kept else "")


def _defaults(url: str) -> dict[str, object]:
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("tgram", "telegram"):
        chats = [p for p in urlsplit(url).path.split("/") if p]
        group = any(c.startswith("-") for c in chats)
        return {"min_interval": 1.0, "per_minute": 20 if group else None, "max_length": 4096}
    return {}


def parse_channel(
    name: str,
    table: Mapping[str, object],
    source: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> Channel:
    path = f"channels.{name}"
    if not _NAME.match(name):
        raise ConfigError(source, path, "a channel name uses letters, digits, '_', '-', '.'")
    for key in table:
        if key not in _KEYS:
            near = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(_KEYS)}"
            raise ConfigError(source, f"{path}.{key}", f"unknown key {key!r}{hint}")
    secrets: list[str] = []
    if ("url" in table) == ("url_file" in table):
        raise ConfigError(source, path, "set exactly one of url, url_file")
    if "url" in table:
        raw = table["url"]
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(source, f"{path}.url", "expected an apprise URL string")
        url = _resolve(
            raw.strip(),
            source,
            f"{path}.url",
            env=env,
            credentials_dir=credentials_dir,
            secrets=secrets,
        )
    else:
        ref = table["url_file"]
        if not isinstance(ref, str) or not ref:
            raise ConfigError(source, f"{path}.url_file", "expected a credential file name")
        url = _credential(ref, source, f"{path}.url_file", credentials_dir).strip()
        secrets.append(url)
    for s in secrets:
        register_secret(s)
    redacted = _privacy_url(url)
    if redacted is None:
        # never echo the URL: a literal token in it was not registered as a secret
        scheme = urlsplit(url).scheme or "?"
        raise ConfigError(
            source,
            f"{path}.url",
            f"not a URL apprise can use (scheme {scheme!r}; the rest is not shown, it may hold "
            "a secret)",
        )
    if "url_file" in table:
        redacted = f"{urlsplit(url).scheme}://… (credential {table['url_file']})"
    for s in secrets:
        # apprise's privacy form percent-encodes the path and cuts it at ';', '?' and '#':
        # mask every spelling of the secret and of each of those pieces
        pieces = [s, *(p for p in re.split(r"[;?#]", s) if len(p) >= 4)]
        forms = {form for p in pieces for form in _spellings(p)}
        for form in sorted(forms, key=len, reverse=True):
            if form:
                redacted = redacted.replace(form, "***")
    redacted = _mask_query(redact(_only_given_params(redacted, url)))
    opts: dict[str, object] = _defaults(url)
    opts.update({k: v for k, v in table.items() if k not in ("url", "url_file")})
    min_sev = opts.get("min_severity", "warning")
    if not isinstance(min_sev, str) or min_sev not in ("info", "warning", "critical"):
        raise ConfigError(
            source, f"{path}.min_severity", f"expected info, warning or critical, got {min_sev!r}"
        )
    send_resolved = opts.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        raise ConfigError(source, f"{path}.send_resolved", "expected true or false")
    fmt = opts.get("format", "text")
    if fmt not in ("text", "markdown"):
        raise ConfigError(source, f"{path}.format", f"expected text or markdown, got {fmt!r}")
    min_interval = parse_duration(opts.get("min_interval", 0.0), source, f"{path}.min_interval")
    timeout = parse_duration(opts.get("timeout", 30.0), source, f"{path}.timeout")
    if timeout <= 0:
        raise ConfigError(source, f"{path}.timeout", "must be > 0")
    per_minute = _opt_int(opts.get("per_minute"), source, f"{path}.per_minute")
    max_length = _opt_int(opts.get("max_length"), source, f"{path}.max_length")
    if max_length is not None and max_length < 200:
        raise ConfigError(source, f"{path}.max_length", "must be at least 200 characters")
    return Channel(
        name=name,
        url=url,
        redacted=redacted,
        min_severity=Severity(min_sev),
        send_resolved=send_resolved,
        format=str(fmt),
        min_interval=min_interval,
        per_minute=per_minute,
        max_length=max_length,
        timeout=timeout,
        secrets=tuple(secrets),
    )


def _opt_int(value: object, source: str, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(source, path, f"expected a positive whole number, got {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ConfigError(source, path, f"expected a positive whole number, got {value!r}")
    return int(value)


def parse_channels(
    table: Mapping[str, object],
    source: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> list[Channel]:
    """Parse the ``[channels]`` table (one sub-table per channel, in order).

    Raises :class:`ConfigError` naming ``channels.<name>.<key>``; the message never contains
    a secret value.
    """
    out = []
    for name, sub in table.items():
        if not isinstance(sub, Mapping):
            raise ConfigError(source, f"channels.{name}", 'expected a table with url = "…"')
        out.append(parse_channel(name, sub, source, env=env, credentials_dir=credentials_dir))
    return out


def adhoc_channel(url: str, index: int) -> Channel:
    """A channel from a bare URL (``monitor test-notify --url``), every severity."""
    raw = url.strip()
    redacted = _privacy_url(raw)
    if redacted is None:
        raise ConfigError("--url", f"url[{index}]", f"not a URL apprise can use: {redact(raw)}")
    opts = _defaults(raw)
    return Channel(
        name=f"url{index}",
        url=raw,
        redacted=_mask_query(redact(_only_given_params(redacted, raw))),
        min_severity=Severity.INFO,
        max_length=opts.get("max_length"),  # type: ignore[arg-type]
    )
