"""One duration syntax everywhere: the command line's time limits take what the
configuration takes (``30``, ``"15s"``, ``"2m"``), and a bad one is refused in argparse's
one line naming the option."""

from __future__ import annotations

import pytest

from monitor.cli import build_parser


@pytest.mark.parametrize(
    ("argv", "attr", "seconds"),
    [
        (["test-notify", "--url", "monitorconsole://", "--timeout", "2s"], "timeout", 2.0),
        (["test-notify", "--url", "monitorconsole://", "--timeout", "2.5"], "timeout", 2.5),
        (["inspect", "x.json", "--timeout", "1m"], "timeout", 60.0),
        (["whatif", "x.json", "--timeout", "500ms"], "timeout", 0.5),
        (["check-keys", "--config", "m.toml", "--timeout", "45"], "timeout", 45.0),
        (["record", "out.jsonl", "--duration", "2h"], "duration", 7200.0),
    ],
)
def test_time_limits_take_the_configurations_duration_syntax(
    argv: list[str], attr: str, seconds: float
) -> None:
    assert getattr(build_parser().parse_args(argv), attr) == seconds


def test_a_bad_duration_is_refused_naming_the_option_and_the_syntax(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["test-notify", "--url", "x://", "--timeout", "5x"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "monitor test-notify: error: argument --timeout: expected a duration like 30 "
        "(seconds), '15s', '5m', '2h' or '1d', got the string '5x'"
    )
