"""Notification channels: any apprise URL, routed by severity, with secrets kept out of sight.

The ``[channels]`` TOML table, one sub-table per channel::

    [channels.telegram]
    url = "tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890"
    min_severity = "warning"     # info | warning | critical (default: warning)
    send_resolved = true         # default true
    format = "text"              # text | markdown | html (default text; Telegram: html)
    min_interval = "1s"          # per chat; Telegram default 1 s
    per_minute = 20              # Telegram default 20 when a chat id is a group (< 0)
    max_length = 4096            # Telegram default 4096
    charts = true                # critical alerts carry a PNG chart of the scope (default false)

    [channels.email]
    url_file = "smtp_url"        # the whole URL from $CREDENTIALS_DIRECTORY/smtp_url
    min_severity = "critical"

Secrets: ``${NAME}`` in a URL is replaced by the environment variable ``NAME``;
``${file:NAME}`` (or ``${cred:NAME}``) by the contents of ``$CREDENTIALS_DIRECTORY/NAME``
(systemd ``LoadCredential=``), trailing newline stripped; ``url_file`` takes the whole URL
from such a file. A substituted value is **percent-encoded for the URL part it lands in**
(:func:`encode_for_part`): in the user or password (``scheme://USER:PASS@host``), a query
value or the fragment every reserved character is encoded (``:``, ``@``, ``/``, ``#``,
``?``, ``&``, ``+``, ``%`` …); in the host and path everything but ``:`` (a Telegram bot
token ``123:AA…`` sits in the host part). A reference that comes before ``://`` (the whole
URL or its scheme) is inserted as is. apprise decodes user, password and query values, so
``p:a@s/s#`` reaches the SMTP server as typed.

Masking: every substituted value is registered with the log redactor
(:func:`monitor.logs.register_secret`) in each spelling a library may log: as is,
percent-encoded (path, query, either case) and, for a URL password, the base64 of
``user:password`` that HTTP Basic authentication sends. **Short secrets**: a value shorter
than :data:`MIN_SECRET_LENGTH` (6) characters is never masked as a substring (it would turn
unrelated text such as ``error=400`` into ``error=***``); :meth:`Channel.scrub` masks it
only where it stands alone (no letter or digit on either side), and its base64 form is still
masked. A channel shows itself only by its name and its redacted URL (apprise's privacy form),
never the real one, in ``repr``, logs and errors.

Format: ``text`` is plain text; ``markdown`` is CommonMark that apprise converts to each
service's dialect; ``html`` is HTML. A Telegram channel (``tgram://``) written ``markdown`` or
``html`` is rendered as Telegram **HTML** (its legacy Markdown cannot escape inside bold text,
and a ``*`` or ``_`` in a venue-chosen name makes it refuse the message).
"""

from __future__ import annotations

import base64
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

#: secrets shorter than this are masked only as whole words (see the module docstring)
MIN_SECRET_LENGTH = 6

#: what a channel is, for delivery: ``telegram``, ``webhook`` (json/form/xml: one request per
#: message with an ``Idempotency-Key`` header), ``email`` or ``other``
KINDS = ("telegram", "webhook", "email", "other")
FORMATS = ("text", "markdown", "html")

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
    "charts",
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _spellings(s: str) -> set[str]:
    """How ``s`` may appear in a URL: as is, percent-encoded (path or query, either case)."""
    return {
        s,
        quote(s, safe=""),
        quote(s),
        quote(s, safe=":"),
        quote_plus(s),
        quote(s, safe="").lower(),
    }


def _short_pattern(s: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])")


def mask(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``: as a substring when it has at
    least :data:`MIN_SECRET_LENGTH` characters, only where it stands alone otherwise."""
    for s in sorted(secrets, key=len, reverse=True):
        if not s:
            continue
        if len(s) >= MIN_SECRET_LENGTH:
            text = text.replace(s, "***")
        elif s in text:
            text = _short_pattern(s).sub("***", text)
    return text


def url_part(template: str, start: int, end: int) -> str:
    """Which part of the URL ``template`` the reference at ``template[start:end]`` lands in:
    ``whole`` (before ``://``), ``userinfo``, ``host``, ``path``, ``query`` or ``fragment``."""
    skel = _REF.sub(lambda m: "x" * len(m.group(0)), template)
    before, after = skel[:start], skel[end:]
    sep = before.find("://")
    if sep < 0:
        return "whole"
    rest = before[sep + 3 :]
    if "#" in rest:
        return "fragment"
    if "?" in rest:
        return "query"
    if "/" in rest:
        return "path"
    authority_after = re.split(r"[/?#]", after, maxsplit=1)[0]
    return "userinfo" if "@" in authority_after else "host"


def encode_for_part(value: str, part: str) -> str:
    """``value`` percent-encoded for ``part`` (see :func:`url_part`; UTF-8, RFC 3986)."""
    if part == "whole":
        return value
    if part in ("host", "path"):
        return quote(value, safe=":")
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Channel:
    """One destination. ``url`` is the real apprise URL (secrets in it): never log it; use
    ``name`` and ``redacted``. Intervals and ``timeout`` are seconds. ``format``: ``text`` |
    ``markdown`` | ``html`` (a Telegram channel written ``markdown`` is ``html``). ``secrets``:
    every spelling of the substituted values (see the module docstring). ``kind``: one of
    :data:`KINDS`, from apprise's plugin class. ``charts``: critical alerts carry a PNG chart
    (``charts = true`` in the table, and only for a service whose apprise plugin carries
    attachments; for the others it stays off, so nothing is drawn for nothing)."""

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
    kind: str = "other"
    charts: bool = False

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
        """``text`` with this channel's secrets in every spelling (short ones only as whole
        words) and anything secret-looking masked."""
        return redact(mask(text, self.secrets))


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
        encoded = encode_for_part(value, url_part(template, m.start(), m.end()))
        secrets.append(value)
        if encoded != value:
            secrets.append(encoded)
        return encoded

    return _REF.sub(sub, template)


def resolve_url(
    template: str,
    source: str,
    path: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> tuple[str, tuple[str, ...]]:
    """Substitute ``${NAME}`` / ``${file:NAME}`` in a URL (each value percent-encoded for its
    part) and register every spelling of the secrets with the log redactor. Returns the URL
    and those spellings. Raises :class:`ConfigError` naming ``path`` (never a secret)."""
    found: list[str] = []
    url = _resolve(template, source, path, env=env, credentials_dir=credentials_dir, secrets=found)
    forms = _secret_forms(url, found)
    for f in forms:
        if len(f) >= MIN_SECRET_LENGTH:
            register_secret(f)
    return url, forms


def _secret_forms(url: str, values: list[str]) -> tuple[str, ...]:
    """Every spelling of ``values`` a library may log: as is, percent-encoded, and the base64
    ``user:password`` of HTTP Basic auth when one of them is in the URL's userinfo."""
    forms: set[str] = set()
    for v in values:
        forms |= _spellings(v)
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        user = password = None
    if user is not None and password:
        # a URL password is a secret however it got there (${NAME}, url_file, typed in)
        u, p = unquote(user), unquote(password)
        forms |= _spellings(p)
        forms.add(base64.b64encode(f"{u}:{p}".encode()).decode())
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


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


def _inspect(url: str) -> tuple[str, str, bool] | None:
    """apprise's privacy form of ``url`` (secrets masked), the channel's kind (see
    :data:`KINDS`) and whether its plugin carries attachments, or None if apprise can't
    parse it."""
    import apprise  # noqa: PLC0415 -- apprise is slow to import; only channels need it
    from apprise.plugins.custom_form import NotifyForm  # noqa: PLC0415
    from apprise.plugins.custom_json import NotifyJSON  # noqa: PLC0415
    from apprise.plugins.custom_xml import NotifyXML  # noqa: PLC0415
    from apprise.plugins.email import NotifyEmail  # noqa: PLC0415
    from apprise.plugins.telegram import NotifyTelegram  # noqa: PLC0415

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    text: object = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    if isinstance(plugin, NotifyTelegram):
        kind = "telegram"
    elif isinstance(plugin, NotifyJSON | NotifyForm | NotifyXML):
        kind = "webhook"
    elif isinstance(plugin, NotifyEmail):
        kind = "email"
    else:
        kind = "other"
    return str(text), kind, bool(getattr(plugin, "attachment_support", False))


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


def _defaults(url: str, kind: str = "other") -> dict[str, object]:
    scheme = urlsplit(url).scheme.lower()
    if kind == "telegram" or scheme in ("tgram", "telegram"):
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
    if ("url" in table) == ("url_file" in table):
        raise ConfigError(source, path, "set exactly one of url, url_file")
    if "url" in table:
        raw = table["url"]
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(source, f"{path}.url", "expected an apprise URL string")
        url, forms = resolve_url(
            raw.strip(), source, f"{path}.url", env=env, credentials_dir=credentials_dir
        )
        secrets = list(forms)
    else:
        ref = table["url_file"]
        if not isinstance(ref, str) or not ref:
            raise ConfigError(source, f"{path}.url_file", "expected a credential file name")
        url = _credential(ref, source, f"{path}.url_file", credentials_dir).strip()
        secrets = [url, *_secret_forms(url, [url])]
        for s in secrets:
            if len(s) >= MIN_SECRET_LENGTH:
                register_secret(s)
    inspected = _inspect(url)
    if inspected is None:
        # never echo the URL: a literal token in it was not registered as a secret
        scheme = urlsplit(url).scheme or "?"
        raise ConfigError(
            source,
            f"{path}.url",
            f"not a URL apprise can use (scheme {scheme!r}; the rest is not shown, it may hold "
            "a secret)",
        )
    redacted, kind, attachments = inspected
    if "url_file" in table:
        redacted = f"{urlsplit(url).scheme}://… (credential {table['url_file']})"
    # apprise's privacy form percent-encodes the path and cuts it at ';', '?' and '#':
    # mask every spelling of the secret and of each of those pieces
    pieces = [*secrets, *(p for s in secrets for p in re.split(r"[;?#]", s) if len(p) >= 4)]
    redacted = mask(redacted, sorted({f for p in pieces for f in _spellings(p)}))
    redacted = _mask_query(redact(_only_given_params(redacted, url)))
    opts: dict[str, object] = _defaults(url, kind)
    opts.update({k: v for k, v in table.items() if k not in ("url", "url_file")})
    min_sev = opts.get("min_severity", "warning")
    if not isinstance(min_sev, str) or min_sev not in ("info", "warning", "critical"):
        raise ConfigError(
            source, f"{path}.min_severity", f"expected info, warning or critical, got {min_sev!r}"
        )
    send_resolved = opts.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        raise ConfigError(source, f"{path}.send_resolved", "expected true or false")
    charts = opts.get("charts", False)
    if not isinstance(charts, bool):
        raise ConfigError(source, f"{path}.charts", "expected true or false")
    fmt = opts.get("format", "text")
    if fmt not in FORMATS:
        raise ConfigError(source, f"{path}.format", f"expected text, markdown or html, got {fmt!r}")
    if kind == "telegram" and fmt == "markdown":
        fmt = "html"  # see the module docstring: Telegram's Markdown cannot escape in bold
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
        secrets=tuple(dict.fromkeys(secrets)),
        kind=kind,
        charts=charts and attachments,
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
    inspected = _inspect(raw)
    if inspected is None:
        raise ConfigError("--url", f"url[{index}]", f"not a URL apprise can use: {redact(raw)}")
    redacted, kind, _ = inspected
    opts = _defaults(raw, kind)
    return Channel(
        name=f"url{index}",
        url=raw,
        redacted=_mask_query(redact(_only_given_params(redacted, raw))),
        min_severity=Severity.INFO,
        max_length=opts.get("max_length"),  # type: ignore[arg-type]
        kind=kind,
    )
