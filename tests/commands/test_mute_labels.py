"""Labels as mute targets: accepted where unambiguous (mute and unmute), offered as the
nearest match on a typo, shown beside the ids the refusal suggests."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from tests.commands.test_mute import _targets, make_store

ADDR = "0x1111111111111111111111111111111111111111"
OTHER = "0x2222222222222222222222222222222222222222"


def _config(tmp_path: Path, second_label: str = "eth hedge") -> Path:
    db = make_store(tmp_path / "m.db", ())
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        "[venues.hyperliquid]\n\n"
        f'[[accounts]]\nid = "hyperliquid:{ADDR}"\nlabel = "main desk"\n\n'
        f'[[accounts]]\nid = "hyperliquid:{OTHER}"\nlabel = "{second_label}"\n\n'
        f'[store]\npath = "{db}"\n'
    )
    return cfg


def _mute(target: str, cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["mute", target, "--for", "1h", "--config", str(cfg)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_mistyped_label_is_refused_with_the_label_it_probably_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    code, out, err = _mute("main dsk", cfg, capsys)
    assert (code, out) == (2, "")
    assert err == (
        "monitor mute: TARGET: not a target: 'main dsk': no venue; write "
        "VENUE:ACCOUNT[/SCOPE[#SYMBOL]], feed:VENUE[/CHANNEL] or monitor; did you mean the "
        f"label 'main desk' (hyperliquid:{ADDR})?\n"
    )
    assert _targets(str(tmp_path / "m.db")) == []


def test_a_label_written_after_the_venue_or_an_impossible_address_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    code, _, err = _mute("hyperliquid:main desk", cfg, capsys)
    assert code == 2
    assert err.strip() == (
        "monitor mute: TARGET: 'main desk' is not a Hyperliquid address (0x followed by 40 hex "
        f"digits); did you mean the label 'main desk' (hyperliquid:{ADDR})?"
    )
    # an account of an impossible shape: refused even with --force (nothing could match it)
    capsys.readouterr()
    assert main(["mute", "hyperliquid:0xabc", "--for", "1h", "--force", "-c", str(cfg)]) == 2
    assert capsys.readouterr().err == (
        "monitor mute: TARGET: '0xabc' is not a Hyperliquid address (0x followed by 40 hex "
        "digits); no mute could ever match it\n"
    )
    assert main(["mute", "dydx:dydx1abc/0", "--for", "1h", "--force", "-c", str(cfg)]) == 2
    assert "'dydx1abc/0' is not a dYdX subaccount" in capsys.readouterr().err
    assert _targets(str(tmp_path / "m.db")) == []
    # unmute takes it, to remove a mute stored before this check
    assert main(["unmute", "hyperliquid:0xabc", "-c", str(cfg)]) == 0
    assert capsys.readouterr().out == "removed 0 mutes of hyperliquid:0xabc\n"


def test_errors_name_the_command_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    capsys.readouterr()
    assert main(["mute", f"hyperliquid:{ADDR}", "--for", "2x", "-c", str(cfg)]) == 2
    assert capsys.readouterr().err.startswith("monitor mute: --for: expected a duration")
    assert main(["unmute", f"hyperliquid:{ADDR}", "--rule", "shok", "-c", str(cfg)]) == 2
    assert capsys.readouterr().err.startswith("monitor unmute: --rule: unknown rule 'shok'")
    assert main(["history", "foo", "-c", str(cfg)]) == 2
    assert capsys.readouterr().err.startswith("monitor history: SCOPE: not a scope: 'foo'")


def test_an_address_typo_is_answered_with_the_id_and_its_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    typo = ADDR[:-1] + "3"
    code, _, err = _mute(f"hyperliquid:{typo}", cfg, capsys)
    assert code == 2
    assert err.strip() == (
        f"monitor mute: unknown account 'hyperliquid:{typo}'; did you mean "
        f"'hyperliquid:{ADDR}' (main desk)? (--force to mute it anyway)"
    )


def test_a_label_mutes_and_unmutes_its_account_in_any_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    code, out, err = _mute("Main Desk", cfg, capsys)
    assert code == 0, err
    assert out.startswith(f"muted hyperliquid:{ADDR} (main desk) until ")
    assert err == f"monitor mute: note: 'Main Desk' is the label of hyperliquid:{ADDR}\n"
    assert _targets(str(tmp_path / "m.db")) == [f"hyperliquid:{ADDR}"]
    assert main(["unmute", "main desk", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out == f"removed 1 mute of hyperliquid:{ADDR} (main desk)\n"
    assert _targets(str(tmp_path / "m.db")) == []


def test_a_label_two_accounts_share_is_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, second_label="Main Desk")
    code, _, err = _mute("main desk", cfg, capsys)
    assert code == 2
    assert err.strip() == (
        "monitor mute: TARGET: label 'main desk' names several accounts: "
        f"hyperliquid:{ADDR}, hyperliquid:{OTHER}"
    )
    assert _targets(str(tmp_path / "m.db")) == []
