"""Structured refusals: which field broke which limit, with what value, and why."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Refusal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    value: Any = None
    limit: str
    reason: str


class Refused(Exception):
    """Raised when agent input is not accepted; carries every refusal found, never a partial action."""

    def __init__(self, refusals: list[Refusal], source: str | None = None) -> None:
        self.refusals = refusals
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(f"{r.field}: {r.reason}" for r in refusals))

    def to_dict(self) -> dict[str, Any]:
        return {"error": "refused", "source": self.source,
                "refusals": [r.model_dump(mode="json") for r in self.refusals]}
