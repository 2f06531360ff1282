"""Channel configuration: secrets from the environment and systemd credentials, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerts.rules import Severity
from monitor.errors import ConfigError
from monitor.logs import redact
from monitor.notify.channels import adhoc_channel, parse_channels

TOKEN = "987654321:AAFakeTokenForTestsOnly_abcdefghijkl"
PASSWORD = "s3cr3t-Pa55"


def test_env_substitution_and_telegram_defaults() -> None:
    (ch,) = parse_channels(
        {"tg": {"url": "tgram://${TG_TOKEN}/-1001234", "min_severity": "critical"}},
        "monitor.toml",
        env={"TG_TOKEN": TOKEN},
        credentials_dir=None,
    )
    assert ch.url == f"tgram://{TOKEN}/-1001234"
    assert TOKEN not in ch.redacted and TOKEN not in repr(ch) and TOKEN not in ch.label
    assert ch.min_severity is Severity.CRITICAL
    # Telegram: 1 message/s per chat, 20/min for a group chat (negative id), 4096 characters
    assert (ch.min_interval, ch.per_minute, ch.max_length) == (1.0, 20, 4096)
    assert ch.accepts(Severity.CRITICAL) and not ch.accepts(Severity.WARNING)
    # the substituted secret is now masked in every log line and redacted text
    assert redact(f"posting to {TOKEN}") == "posting to ***"


def test_private_chat_has_no_group_limit() -> None:
    (ch,) = parse_channels(
        {"tg": {"url": f"tgram://{TOKEN}/12345"}}, "f", env={}, credentials_dir=None
    )
    assert ch.per_minute is None and ch.min_interval == 1.0


def test_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "smtp_pass").write_text(PASSWORD + "\n")
    (tmp_path / "hook_url").write_text("json://127.0.0.1:9/hook?+X-Token=abc123secret\n")
    chans = parse_channels(
        {
            "mail": {
                "url": "mailtos://bot:${file:smtp_pass}@smtp.example.com?to=alice@example.com",
                "send_resolved": False,
            },
            "hook": {"url_file": "hook_url", "min_severity": "info"},
        },
        "monitor.toml",
        env={},
        credentials_dir=tmp_path,
    )
    mail, hook = chans
    assert f":{PASSWORD}@" in mail.url
    assert PASSWORD not in mail.redacted and PASSWORD not in repr(mail)
    assert mail.send_resolved is False
    assert hook.url == "json://127.0.0.1:9/hook?+X-Token=abc123secret"
    assert "abc123secret" not in hook.redacted


@pytest.mark.parametrize(
    ("table", "env", "path", "words"),
    [
        (
            {"tg": {"url": "tgram://${NOPE}/1"}},
            {},
            "channels.tg.url",
            "environment variable NOPE is not set",
        ),
        ({"tg": {"url": "tgram://${file:tok}/1"}}, {}, "channels.tg.url", "CREDENTIALS_DIRECTORY"),
        ({"tg": {"ulr": "x"}}, {}, "channels.tg.ulr", "did you mean 'url'"),
        ({"tg": {}}, {}, "channels.tg", "exactly one of url, url_file"),
        (
            {"tg": {"url": "nosuch://${T}/x"}},
            {"T": "topsecretvalue"},
            "channels.tg.url",
            "not a URL apprise can use",
        ),
        (
            {"tg": {"url": "json://h/x", "min_severity": "loud"}},
            {},
            "channels.tg.min_severity",
            "info, warning or critical",
        ),
        (
            {"tg": {"url": "json://h/x", "per_minute": 0}},
            {},
            "channels.tg.per_minute",
            "positive whole number",
        ),
        ({"tg": "json://h/x"}, {}, "channels.tg", "expected a table"),
    ],
)
def test_errors_name_the_key_and_never_the_secret(
    table: dict[str, object], env: dict[str, str], path: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_channels(table, "monitor.toml", env=env, credentials_dir=None)
    assert err.value.field == path
    assert words in err.value.problem
    assert "topsecretvalue" not in str(err.value)


def test_missing_credential_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read credential"):
        parse_channels({"tg": {"url_file": "absent"}}, "f", env={}, credentials_dir=tmp_path)


def test_adhoc_channel_takes_every_severity() -> None:
    ch = adhoc_channel(f"tgram://{TOKEN}/-100", 0)
    assert ch.min_severity is Severity.INFO and ch.max_length == 4096
    assert TOKEN not in ch.redacted
    with pytest.raises(ConfigError):
        adhoc_channel("nosuch://x", 1)


@pytest.mark.parametrize("token", ["s3cr3t T0K3N", "äbc-sécret", "abc,def;xyz1", "plainTOKEN123"])
def test_a_secret_never_shows_in_the_redacted_url_whatever_its_characters(token: str) -> None:
    from urllib.parse import quote

    (ch,) = parse_channels(
        {"hook": {"url": "json://example.com/hooks/${HOOK_TOKEN}"}},
        "c.toml",
        env={"HOOK_TOKEN": token},
        credentials_dir=None,
    )
    for piece in (token, quote(token, safe=""), quote(token.split(";", maxsplit=1)[0], safe="")):
        assert piece not in ch.redacted
    assert ch.redacted.startswith("json://example.com/hooks/")


def test_a_url_apprise_cannot_use_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_channels(
            {"tg": {"url": "telegramm://123456789:AAHsuperSECRETtoken/-1001234"}},
            "c.toml",
            env={},
            credentials_dir=None,
        )
    assert "AAHsuperSECRETtoken" not in str(exc.value)
    assert "telegramm" in str(exc.value)
