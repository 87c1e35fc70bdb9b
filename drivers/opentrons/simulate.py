"""Check an Opentrons protocol with `opentrons_simulate` from the Opentrons tool environment.

Opentrons pins numpy < 2 and jsonschema < 4.18, so it lives in its own environment
(.venv-opentrons) and runs as a subprocess. It writes its config into OT_API_CONFIG_DIR (by
default ~/.opentrons), so each run gets a temporary one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

ENV_VAR = "LABCTL_OPENTRONS_SIMULATE"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOOL = REPO_ROOT / ".venv-opentrons" / "bin" / "opentrons_simulate"
DEFAULT_TIMEOUT = 120.0


class SimulationResult(BaseModel):
    """What opentrons_simulate said about one protocol file."""

    protocol: str
    sha256: str
    ok: bool
    returncode: int
    run_log: str = Field(description="opentrons_simulate's step-by-step run log (stdout).")
    stderr: str = ""
    error: str | None = Field(None, description="Opentrons' own error message when the protocol failed.")
    error_line: int | None = Field(None, description="Line of the protocol file the error points at, if any.")
    steps: int = Field(0, description="Top-level steps in the run log.")
    seconds: float = 0.0
    tool: str = ""


class ProtocolRefused(ValueError):
    """A protocol that fails simulation; the message is Opentrons' own."""

    def __init__(self, result: SimulationResult) -> None:
        self.result = result
        where = f"{result.protocol}:{result.error_line}" if result.error_line else result.protocol
        super().__init__(f"{where}: refused by opentrons_simulate: {result.error}")


def find_opentrons_simulate() -> Path:
    """The opentrons_simulate executable ($LABCTL_OPENTRONS_SIMULATE, else .venv-opentrons/bin)."""
    path = Path(os.environ.get(ENV_VAR) or DEFAULT_TOOL)
    if not path.exists():
        raise FileNotFoundError(f"opentrons_simulate not found at {path} (set {ENV_VAR} or build the Opentrons "
                                "tool environment: make .venv-opentrons/.installed)")
    return path


def tool_python(tool: Path | None = None) -> Path:
    """The Python interpreter of the Opentrons tool environment (next to opentrons_simulate)."""
    return (tool or find_opentrons_simulate()).parent / "python"


async def _run_tool(argv: list[str], timeout: float, **extra_env: str) -> tuple[int, str, str]:
    """Run a tool of the Opentrons environment in a fresh OT_API_CONFIG_DIR; (returncode, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="labctl-ot-") as config_dir:
        env = {**os.environ, "OT_API_CONFIG_DIR": config_dir, "PYTHONUNBUFFERED": "1", **extra_env}
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env, cwd=config_dir)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def _error_message(stderr: str) -> tuple[str | None, int | None]:
    """Opentrons' error: the last exception line of the traceback, and the protocol line it names."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    error = None
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:", ln) or re.match(r"^[\w.]+Error$", ln):
            error = ln.strip()
            break
    if error is None and lines:
        error = lines[-1].strip()
    line_numbers = re.findall(r'File "<?[^"]*>?", line (\d+)', stderr)
    protocol_lines = re.findall(r'line (\d+)\b', error or "")
    line = int(protocol_lines[-1]) if protocol_lines else (int(line_numbers[-1]) if line_numbers else None)
    return error, line


async def simulate_protocol(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT,
                            tool: Path | None = None) -> SimulationResult:
    """Run opentrons_simulate on `path`; returns the result (ok or not) with the run log."""
    protocol = Path(path)
    if not protocol.is_file():
        raise FileNotFoundError(f"no protocol file {protocol}")
    tool = tool or find_opentrons_simulate()
    data = protocol.read_bytes()
    started = time.monotonic()
    returncode, stdout, stderr = await _run_tool([str(tool), str(protocol.resolve())], timeout)
    ok = returncode == 0
    error, line = (None, None) if ok else _error_message(stderr)
    return SimulationResult(
        protocol=str(protocol), sha256=hashlib.sha256(data).hexdigest(), ok=ok, returncode=returncode,
        run_log=stdout, stderr=stderr, error=error, error_line=line,
        steps=sum(1 for ln in stdout.splitlines() if ln and not ln.startswith((" ", "\t"))),
        seconds=round(time.monotonic() - started, 3), tool=str(tool))


async def check_protocol(path: str | Path, **kwargs: object) -> SimulationResult:
    """simulate_protocol, raising ProtocolRefused (Opentrons' message) when the protocol fails."""
    result = await simulate_protocol(path, **kwargs)  # type: ignore[arg-type]
    if not result.ok:
        raise ProtocolRefused(result)
    return result


async def analyze_protocol(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT, tool: Path | None = None) -> dict:
    """The robot's own analysis of a protocol (`python -m opentrons.cli analyze`): commands with their
    params and results, labware, pipettes, and `result` ok / not-ok with Opentrons' error occurrences."""
    protocol = Path(path)
    if not protocol.is_file():
        raise FileNotFoundError(f"no protocol file {protocol}")
    python = tool_python(tool)
    with tempfile.TemporaryDirectory(prefix="labctl-ot-analysis-") as out_dir:
        out = Path(out_dir) / "analysis.json"
        returncode, _, stderr = await _run_tool(
            [str(python), "-m", "opentrons.cli", "analyze", "--json-output", str(out), str(protocol.resolve())],
            timeout)
        if not out.exists():
            raise RuntimeError(f"opentrons analyze produced no analysis for {protocol} (exit {returncode}): "
                               f"{stderr.strip()[-500:]}")
        return json.loads(out.read_text())
