"""``monitor mute`` / ``monitor unmute``: persisted in the store, even while a daemon holds it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.clock import SystemClock
from monitor.logs import reset_logging
from monitor.store.db import open_store
from monitor.store.mutes import active_mutes

ADDR = "0x1111111111111111111111111111111111111111"


def make_store(path: Path, scopes: tuple[str, ...] = (f"hyperliquid:{ADDR}/cross",)) -> str:
    """A store as a daemon leaves it: the scopes it has seen and a feed's status."""

    async def go() -> None:
        store = await open_store(path)
        try:
            async with store.transaction() as conn:
                for scope in scopes:
                    venue, _, rest = scope.partition(":")
                    await conn.execute(
                        "INSERT INTO scope_status (scope, venue, account, ts, doc)"
                        " VALUES (?, ?, ?, 1.0, '{}')",
                        (scope, venue, rest.rpartition("/")[0]),
                    )
                await conn.execute(
                    "INSERT INTO feed_status VALUES ('okx', '*', 'live', '', 1.0, NULL)"
                )
        finally:
            await store.close()

    asyncio.run(go())
    return str(path)


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> Iterator[None]:
    """The commands configure logging for the process; undo it for the next tests."""
    yield
    reset_logging()


def test_mute_list_unmute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = make_store(tmp_path / "m.db")
    capsys.readouterr()  # the store creation\'s log lines
    before = SystemClock().now()
    assert (
        main(
            [
                "mute",
                f"hyperliquid:{ADDR}",
                "--for",
                "2h",
                "--rule",
                "shock",
                "--store",
                db,
                "--reason",
                "rebalancing",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"muted hyperliquid:{ADDR} (rule shock) until ")
    assert out.rstrip().endswith("critical still sent")

    async def read() -> list[object]:
        store = await open_store(Path(db))
        try:
            return list(await active_mutes(store, SystemClock().now()))
        finally:
            await store.close()

    (m,) = asyncio.run(read())
    assert m.target == f"hyperliquid:{ADDR}" and m.rule == "shock"  # type: ignore[attr-defined]
    assert m.reason == "rebalancing" and not m.critical  # type: ignore[attr-defined]
    # until = now + 2 h
    assert before + 7200 <= m.until <= SystemClock().now() + 7200  # type: ignore[attr-defined]

    assert main(["mute", "--list", "--store", db]) == 0
    assert capsys.readouterr().out.startswith(f"hyperliquid:{ADDR}  shock  until ")
    assert main(["unmute", f"hyperliquid:{ADDR}", "--store", db]) == 0
    assert capsys.readouterr().out.strip() == f"removed 1 mute of hyperliquid:{ADDR}"
    assert asyncio.run(read()) == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["mute", "not a target", "--for", "1h"], "not a target"),
        (["mute", "hl:0x1", "--for", "soon"], "duration"),
        (["mute", "hl:0x1"], "--for"),
        (["mute", "hl:0x1", "--for", "1h", "--rule", "margin"], "unknown rule 'margin'"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main([*argv, "--store", make_store(tmp_path / "m.db")]) == 2
    assert words in capsys.readouterr().err


async def test_mute_while_the_daemon_holds_the_store(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    await asyncio.to_thread(make_store, db)
    daemon = await open_store(db)  # holds the instance lock
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "mute",
            "feed:okx",
            "--for",
            "30m",
            "--critical",
            "--store",
            str(db),
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out
        (m,) = await active_mutes(daemon, SystemClock().now())
        assert (m.target, m.critical) == ("feed:okx", True)
    finally:
        await daemon.close()


def test_an_absurd_duration_is_refused_before_anything_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_store(tmp_path / "s.sqlite3")
    assert (
        main(["mute", f"hyperliquid:{ADDR}", "--for", "99999999999d", "--store", str(store)]) == 2
    )
    assert "at most 366 days" in capsys.readouterr().err
    assert main(["mute", "--list", "--store", str(store)]) == 0


def _targets(db: str) -> list[str]:
    async def read() -> list[str]:
        store = await open_store(Path(db), lock=False)
        try:
            return [m.target for m in await active_mutes(store, SystemClock().now())]
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_mistyped_target_is_refused_with_the_nearest_known_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db")
    capsys.readouterr()  # the store creation\'s log lines
    typo = f"hyperliquid:{ADDR[:-1]}2"
    assert main(["mute", typo, "--for", "1h", "--store", db]) == 2
    err = capsys.readouterr().err
    assert f"unknown account '{typo}'; did you mean 'hyperliquid:{ADDR}'?" in err
    assert "--force" in err
    assert _targets(db) == []
    # a scope the store has not seen, of a known account
    assert main(["mute", f"hyperliquid:{ADDR}/isolated:BTC", "--for", "1h", "--store", db]) == 2
    assert "unknown scope" in capsys.readouterr().err
    assert main(["mute", "feed:okz", "--for", "1h", "--store", db]) == 2
    assert "unknown feed venue 'okz'; did you mean 'okx'?" in capsys.readouterr().err
    # --force mutes it anyway
    assert main(["mute", typo, "--for", "1h", "--force", "--store", db]) == 0
    assert _targets(db) == [typo]


def test_an_account_sharing_a_prefix_is_not_a_known_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db", ("okx:desk/hedge/cross",))
    capsys.readouterr()  # the store creation\'s log lines
    assert main(["mute", "okx:desk", "--for", "1h", "--store", db]) == 2
    assert "unknown account 'okx:desk'" in capsys.readouterr().err
    assert main(["mute", "okx:desk/hedge", "--for", "1h", "--store", db]) == 0
    assert _targets(db) == ["okx:desk/hedge"]


def test_the_venue_as_written_in_venues_or_an_alias_and_a_checksummed_address_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checksummed = "0xAbCdEf0123456789abcdef0123456789ABCDEF01"
    db = make_store(
        tmp_path / "m.db",
        ("binanceusdm:main/cross", f"hyperliquid:{checksummed.lower()}/cross"),
    )
    capsys.readouterr()  # the store creation's log lines
    assert main(["mute", "binanceusdm:main", "--for", "1h", "--store", db]) == 0
    capsys.readouterr()
    assert main(["mute", "binance_usdm:main/cross", "--for", "1h", "--store", db]) == 0
    assert "note: venue 'binance_usdm' is an old spelling of 'binanceusdm'" in (
        capsys.readouterr().err
    )
    assert main(["mute", f"hyperliquid:{checksummed}", "--for", "1h", "--store", db]) == 0
    assert f"is '{checksummed.lower()}' at the venue" in capsys.readouterr().err
    assert _targets(db) == [
        "binanceusdm:main",
        "binanceusdm:main/cross",
        f"hyperliquid:{checksummed.lower()}",
    ]
    # unmute with the alias removes the canonical rows
    assert main(["unmute", "binance_usdm:main", "--store", db]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 mute of binanceusdm:main"


def test_a_store_path_that_does_not_exist_is_an_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "monitor.db"
    for argv in (
        ["mute", f"hyperliquid:{ADDR}", "--for", "1h", "--force"],
        ["mute", "--list"],
        ["unmute", f"hyperliquid:{ADDR}"],
    ):
        assert main([*argv, "--store", str(missing)]) == 1
        assert f"no store at {missing}: it does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_config_accounts_and_labels_are_known_and_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db", ())
    capsys.readouterr()  # the store creation\'s log lines
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'[venues.hyperliquid]\n\n[[accounts]]\nid = "hyperliquid:{ADDR}"\nlabel = "BTC desk"\n'
        f'\n[store]\npath = "{db}"\n'
    )
    # the account of --config is known although the store has not seen it yet
    assert main(["mute", f"hyperliquid:{ADDR}", "--for", "1h", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.startswith(f"muted hyperliquid:{ADDR} (BTC desk) until ")
    # its label names it
    assert main(["mute", "btc desk", "--for", "1h", "--rule", "shock", "-c", str(cfg)]) == 0
    assert "is the label of" in capsys.readouterr().err
    assert _targets(db) == [f"hyperliquid:{ADDR}"] * 2
    assert main(["mute", "--list", "--config", str(cfg)]) == 0
    assert f"hyperliquid:{ADDR} (BTC desk)  all rules" in capsys.readouterr().out


def test_the_help_examples_are_valid_targets(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.commands.mute import MUTE_EPILOG, UNMUTE_EPILOG
    from monitor.model.ids import parse_subject

    lines = [ln.split() for ln in (MUTE_EPILOG + UNMUTE_EPILOG).splitlines()]
    targets = [ws[2] for ws in lines if ws[:1] == ["monitor"] and not ws[2].startswith("-")]
    assert len(targets) == 5
    for t in targets:
        parse_subject(t)  # raises IdError when not an identity
    assert f"hyperliquid:{ADDR}" in targets  # an address of 40 hex digits, not 0xabc


def test_a_hostile_mute_target_never_reaches_the_terminal_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db")
    capsys.readouterr()  # the store creation\'s log lines
    evil = "okx:a\x1b[2Jb"
    assert main(["mute", evil, "--for", "1h", "--force", "--store", db]) == 0
    assert main(["mute", "--list", "--store", db]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "a%1B[2Jb" in out
