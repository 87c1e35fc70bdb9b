"""The firmware is MicroPython: every file compiles with mpy-cross and imports only board modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "rig"
FILES = sorted(FIRMWARE.glob("*.py"))
# Modules a MicroPython RP2040 build has, plus the firmware's own.
BOARD_MODULES = {"machine", "time", "sys", "select", "json", "math", "micropython", "binascii", "rigproto",
                 "rigctl", "hw_rp2040"}


def test_firmware_files_exist() -> None:
    assert {p.name for p in FILES} >= {"main.py", "rigctl.py", "rigproto.py", "hw_rp2040.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_compiles_with_mpy_cross(path: Path, tmp_path: Path) -> None:
    out = tmp_path / (path.stem + ".mpy")
    proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_imports_only_board_modules(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [] if node.level else [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in BOARD_MODULES, f"{path.name}:{node.lineno} imports {name}"


def test_mpy_cross_rejects_cpython_only_syntax(tmp_path: Path) -> None:
    # The compile check has teeth: a construct MicroPython lacks is refused.
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\nmatch x:\n    case 1:\n        pass\n")
    proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / "bad.mpy"), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
