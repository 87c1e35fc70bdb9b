"""Commands of this group register themselves on labctl.cli.app's `app` / `sim_app`."""

from __future__ import annotations

from .app import app, sim_app  # noqa: F401
