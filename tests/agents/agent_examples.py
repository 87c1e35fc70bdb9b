"""Example inputs shared by the agent tests."""

from __future__ import annotations

from typing import Any

BASE: dict[str, Any] = {
    "statement": "Specimens printed at 80 % infill are at least 15 % stiffer than at 40 %",
    "response": "modulus",
    "factors": [{"name": "infill_density", "levels": [0.4, 0.8]}],
    "prediction": {"direction": "increase", "minimum_effect": 0.15},
    "budget": {"max_specimens": 40, "max_hours": 24},
}
