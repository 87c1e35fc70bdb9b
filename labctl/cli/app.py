"""labctl: the technician's command line. Each command group lives in its own module."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="labctl",
    help="Run an AI-native fabrication lab: printers, liquid handlers and a tensile rig, real or simulated.\n\n"
    "Example: labctl demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
sim_app = typer.Typer(help="Wire-level device simulators (a driver cannot tell them from hardware).",
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register() -> None:
    # Importing a module registers its commands on `app` / `sim_app`.
    from . import (  # noqa: F401
        agent_cmds, analysis_cmds, bus_cmds, demo_cmds, lab_cmds, jobs_cmds, liquid_cmds, printer_cmds, rig_cmds,
    )


_register()


def main() -> None:
    app()
