"""The architecture, enforced: the pure core imports no I/O and reads no clock, and the model
and margin math depend on nothing above them (docs: README "Development")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parents[1] / "monitor"

PURE = sorted(
    [
        *(PKG / "model").glob("*.py"),
        *(PKG / "margin").glob("*.py"),
        *(PKG / "alerts").glob("*.py"),
        *(PKG / "engine").glob("*.py"),
        *(PKG / "venues").glob("*/parse.py"),
        *(PKG / "venues").glob("*/accounts.py"),
        *(PKG / "venues" / "ccxt_pro").glob("convert.py"),
        PKG / "venues" / "parsing.py",
        PKG / "venues" / "backoff.py",
        PKG / "venues" / "watchdog.py",
        PKG / "notify" / "render.py",
        PKG / "report.py",
        PKG / "whatif.py",
        PKG / "fmt.py",
        PKG / "thin.py",
        PKG / "jsonfields.py",
    ]
)
IO_MODULES = {
    "asyncio",
    "socket",
    "sqlite3",
    "aiosqlite",
    "apprise",
    "ccxt",
    "websockets",
    "aiohttp",
    "subprocess",
    "requests",
    "urllib.request",
}
CLOCK_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "sleep"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
}
LOWER = {"model", "margin"}
HIGHER = {"alerts", "notify", "store", "venues", "app", "config", "commands", "cli"}


def _imports(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PKG)))
def test_pure_modules_import_no_io_and_read_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = {m for m in _imports(tree) if m in IO_MODULES or m.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.name} imports I/O: {sorted(bad)}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            assert (node.func.value.id, node.func.attr) not in CLOCK_CALLS, (
                f"{path.name}:{node.lineno} reads the clock"
            )


@pytest.mark.parametrize(
    "path",
    sorted(p for layer in LOWER for p in (PKG / layer).glob("*.py")),
    ids=lambda p: str(p.relative_to(PKG)),
)
def test_model_and_margin_depend_on_nothing_above_them(path: Path) -> None:
    for module in _imports(ast.parse(path.read_text())):
        parts = module.split(".")
        if parts[0] == "monitor" and len(parts) > 1:
            assert parts[1] not in HIGHER, f"{path.name} imports {module}"


def test_the_pure_list_is_not_empty() -> None:
    assert len(PURE) > 20
