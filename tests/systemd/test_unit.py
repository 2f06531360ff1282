"""The hardened unit file: systemd's own verifier and security scorer, plus the promises the
daemon's configuration depends on (drain deadline < stop timeout, AF_UNIX for sd_notify)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import DaemonConfig

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "monitor.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed (Debian: apt-get install -y systemd)",
)
MAX_EXPOSURE = 2.5


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → key → every value given (systemd keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
    for suffix, factor in units.items():
        if value.endswith(suffix) and value[: -len(suffix)].replace(".", "").isdigit():
            return float(value[: -len(suffix)]) * factor
    return float(value)


def runnable_copy(tmp_path: Path, *, extra: str = "") -> Path:
    """The unit with ExecStart pointed at an executable that exists here."""
    exe = Path(sys.executable).parent / "monitor"
    target = str(exe) if exe.exists() else sys.executable
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/monitor", f"ExecStart={target}")
    assert f"ExecStart={target}" in text
    if extra:
        text = text.replace("[Service]\n", f"[Service]\n{extra}\n", 1)
    path = tmp_path / "monitor.service"
    path.write_text(text)
    return path


def test_unit_declares_what_the_daemon_relies_on() -> None:
    unit = parse_unit(UNIT.read_text())
    svc = unit["Service"]
    assert svc["Type"] == ["notify"]
    assert svc["ExecStart"] == ["/usr/local/bin/monitor run --config /etc/monitor/monitor.toml"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["Restart"] == ["on-failure"]
    assert seconds(svc["WatchdogSec"][0]) > 0
    assert svc["DynamicUser"] == ["yes"]
    assert svc["StateDirectory"] == ["monitor"]
    assert svc["LoadCredential"]
    assert "AF_UNIX" in svc["RestrictAddressFamilies"][0].split()  # sd_notify needs it
    assert svc["CapabilityBoundingSet"] == [""]
    assert "@system-service" in svc["SystemCallFilter"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert svc[key] == ["yes"], key
    assert svc["ProtectSystem"] == ["strict"]
    # shutdown drains the outbox within the drain deadline: systemd must wait longer
    assert seconds(svc["TimeoutStopSec"][0]) > DaemonConfig().drain_deadline
    assert "StartLimitIntervalSec" in unit["Unit"]
    assert "StartLimitBurst" in unit["Unit"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_is_valid_ini_for_tools_that_read_it() -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(UNIT.read_text())
    assert cp.sections() == ["Unit", "Service", "Install"]


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = runnable_copy(tmp_path)
    proc = subprocess.run(
        [ANALYZE, "verify", "--recursive-errors=yes", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Unknown key" not in proc.stderr
    assert "ignoring" not in proc.stderr, proc.stderr


@needs_analyze
def test_systemd_analyze_verify_rejects_a_misspelt_key(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = runnable_copy(tmp_path, extra="NoNewPrivilege=yes")
    proc = subprocess.run(
        [ANALYZE, "verify", "--recursive-errors=yes", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "Unknown key" in proc.stderr


@needs_analyze
def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = runnable_copy(tmp_path)
    proc = subprocess.run(
        [ANALYZE, "security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "Overall exposure level" in ln)
    score = float(line.split(":")[1].split()[0])
    assert score <= MAX_EXPOSURE, line


MDWE_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    print("unsupported")
    sys.exit(0)
import asyncio, sqlite3
import aiohttp, aiosqlite, apprise, ccxt.pro, msgspec, orjson, structlog, websockets
ccxt.pro.binanceusdm()
async def main():
    async with aiosqlite.connect(":memory:") as db:
        await db.execute("create table t (x)")
asyncio.run(main())
from monitor.cli import main as cli
code = cli(["check-config", sys.argv[1]])
print("ok" if code == 0 else f"exit {code}")
"""


def test_memory_deny_write_execute_leaves_the_libraries_working() -> None:
    """MemoryDenyWriteExecute=yes (in the unit) trips libraries that write executable memory
    (libffi closures, JITs). The kernel's PR_SET_MDWE applies the same rule to one process: the
    daemon's libraries must import and work under it."""
    example = UNIT.parents[1] / "config" / "example.toml"
    proc = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    if last == "unsupported":
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert last == "ok", proc.stdout + proc.stderr
