"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os

import pytest

# Opentrons writes ~/.opentrons on import unless told otherwise; never touch the user's home.
os.environ.setdefault("OT_API_CONFIG_DIR", "/tmp/labctl-test-opentrons")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def free_port() -> int:
    from labctl.bus.broker import free_port as _free_port

    return _free_port()
