"""The product of every G-code generator: the text, its hash, who made it and from what."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .gcode_summary import GcodeSummary, summarise_gcode


class GcodeArtefact(BaseModel):
    """G-code ready for the printer driver's envelope check, with its provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(repr=False)
    sha256: str = Field(description="SHA-256 of text encoded as UTF-8; the provenance key of a print.")
    generator: str = Field(description="'fullcontrol' or 'prusa-slicer'.")
    generator_version: str
    parameters: dict[str, Any] = Field(description="Everything that determined the text (print parameters, inputs).")
    summary: GcodeSummary

    @model_validator(mode="after")
    def _hash_matches(self) -> GcodeArtefact:
        if hashlib.sha256(self.text.encode()).hexdigest() != self.sha256:
            raise ValueError("sha256 does not match the G-code text")
        return self

    @classmethod
    def build(cls, text: str, generator: str, generator_version: str, parameters: dict[str, Any]) -> GcodeArtefact:
        return cls(text=text, sha256=hashlib.sha256(text.encode()).hexdigest(), generator=generator,
                   generator_version=generator_version, parameters=parameters, summary=summarise_gcode(text))

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.text, encoding="utf-8")
        return path
