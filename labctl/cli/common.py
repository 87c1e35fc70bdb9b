"""Options and helpers shared by every command that talks to a running lab."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..bus.url import ENV_VAR

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

BrokerOption = typer.Option(
    None, "--broker", envvar=ENV_VAR,
    help="Broker URL, mqtt://[user:pass@]host:port (default: the embedded broker, mqtt://127.0.0.1:1883).",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")

# Exit codes that mean something to scripts.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def run_on_lab(coro: Coroutine[Any, Any, T], *, what: str = "") -> T:
    """Run a coroutine that talks to the lab; bad input exits 2, an unreachable broker exits 3."""
    from ..bus import BusError

    prefix = f"{what}: " if what else ""
    try:
        return run(coro)
    except ValueError as exc:
        raise fail(f"{prefix}{exc}", EXIT_BAD_INPUT) from None
    except BusError as exc:
        raise fail(f"{prefix}{exc}", EXIT_UNREACHABLE) from None


async def fetch_device_states(broker: str | None) -> list[Any]:
    """Every announced device's newest state, from a short-lived bus client."""
    from ..bus import connect
    from ..registry import list_devices

    async with connect(broker, connect_timeout=5.0) as bus:
        return await list_devices(bus)
