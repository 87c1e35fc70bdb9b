"""Every command documents itself with an example (`--help`), as the README promises."""

from __future__ import annotations

import typer.main

from labctl.cli.app import app


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a sub-group (typer ships its own click)
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_has_help_with_an_example():
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert len(commands) > 40
    missing = [" ".join(path) for path, command in commands if "Example:" not in (command.help or "")]
    assert not missing, f"commands without an Example: line in --help: {missing}"
