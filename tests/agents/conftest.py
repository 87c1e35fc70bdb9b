"""Fixtures for the agent protocol layer's tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agent_examples import BASE


@pytest.fixture
def hypothesis_data() -> dict[str, Any]:
    return copy.deepcopy(BASE)
