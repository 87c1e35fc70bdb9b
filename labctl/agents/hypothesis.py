"""The hypothesis an agent states: what to vary, what to measure, what it predicts, what it may spend.

Every model forbids unknown fields, so nothing an agent sends can smuggle in an instruction that
is not part of the schema (there is no field for G-code or robot commands). Parse untrusted input
with `parse_hypothesis`, which turns pydantic's errors into structured refusals.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocols.specimens import SPECIMENS

from .refusal import Refused, Refusal

Response = Literal["modulus", "strength", "strain_at_break", "toughness", "curve_distance"]
Direction = Literal["increase", "decrease", "differ"]
Material = Literal["PLA", "PETG"]
Orientation = Literal["flat", "on_edge", "upright"]
SpecimenType = Literal[tuple(SPECIMENS)]  # type: ignore[valid-type]  # protocols.specimens' table

NUMERIC_FACTORS = ("infill_density", "raster_angle", "layer_height", "nozzle_temp", "bed_temp", "print_speed")
CATEGORICAL_FACTORS: dict[str, tuple[str, ...]] = {
    "orientation": Orientation.__args__,  # type: ignore[attr-defined]
    "specimen_type": SpecimenType.__args__,  # type: ignore[attr-defined]
    "material": Material.__args__,  # type: ignore[attr-defined]
}
FORMULATION_PREFIX = "formulation."
_COMPONENT = r"[A-Za-z][A-Za-z0-9_]{0,31}"
_FACTOR_NAME = re.compile(rf"^({'|'.join(NUMERIC_FACTORS + tuple(CATEGORICAL_FACTORS))}|formulation\.{_COMPONENT})$")

Level = float | str
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrintParameters(_Strict):
    """Everything that defines how one specimen is made. Unset temperatures mean the material's default."""

    material: Material = "PLA"
    specimen_type: SpecimenType = "iso527-1ba"
    orientation: Orientation = "flat"
    infill_density: FiniteFloat = Field(1.0, description="fraction of the interior that is filled, 0-1")
    raster_angle: FiniteFloat = Field(45.0, description="raster angle in degrees from the specimen's long axis")
    layer_height: FiniteFloat = Field(0.2, description="mm")
    nozzle_temp: FiniteFloat | None = Field(None, description="degC; None = the material's default")
    bed_temp: FiniteFloat | None = Field(None, description="degC; None = the material's default")
    print_speed: FiniteFloat = Field(40.0, description="mm/s")
    formulation: dict[str, float] = Field(
        default_factory=dict,
        description="component -> mass fraction mixed on the liquid handler before printing; empty = none")

    @field_validator("formulation")
    @classmethod
    def _components(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) > 8:
            raise ValueError("at most 8 formulation components")
        for name, fraction in value.items():
            if not re.fullmatch(_COMPONENT, name):
                raise ValueError(f"component name {name!r} must match {_COMPONENT}")
            if not math.isfinite(fraction):
                raise ValueError(f"component {name}: fraction must be a finite number")
        return value

    def with_level(self, factor: str, level: Level) -> "PrintParameters":
        if factor.startswith(FORMULATION_PREFIX):
            return self.model_copy(update={"formulation": {**self.formulation, factor[len(FORMULATION_PREFIX):]: float(level)}})
        return self.model_copy(update={factor: level})


class Factor(_Strict):
    """One thing the experiment varies, with the levels to compare (the first level is the baseline)."""

    name: str = Field(description="a print parameter (" + ", ".join(NUMERIC_FACTORS + tuple(CATEGORICAL_FACTORS))
                      + ") or formulation.<component>")
    levels: list[Level] = Field(min_length=2, max_length=8)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if not _FACTOR_NAME.fullmatch(name):
            raise ValueError(f"unknown factor {name[:64]!r}; use one of {', '.join(NUMERIC_FACTORS + tuple(CATEGORICAL_FACTORS))} "
                             "or formulation.<component>")
        return name

    @field_validator("levels", mode="before")
    @classmethod
    def _no_booleans(cls, levels: Any) -> Any:
        if isinstance(levels, list):
            for i, level in enumerate(levels):
                if isinstance(level, bool):
                    raise ValueError(f"levels[{i}] = {level} is a boolean, not a level")
        return levels

    @model_validator(mode="after")
    def _typed_levels(self) -> "Factor":
        if self.name in CATEGORICAL_FACTORS:
            allowed = CATEGORICAL_FACTORS[self.name]
            for i, level in enumerate(self.levels):
                if level not in allowed:
                    raise ValueError(f"levels[{i}] = {str(level)[:64]!r} is not one of {', '.join(allowed)}")
        else:
            for i, level in enumerate(self.levels):
                if isinstance(level, str) or not math.isfinite(level):
                    raise ValueError(f"levels[{i}] = {str(level)[:64]!r} must be a finite number for {self.name}")
        if len({str(level) for level in self.levels}) != len(self.levels):
            raise ValueError("levels must be distinct")
        return self


class Prediction(_Strict):
    """What the agent expects: treatment vs baseline of the tested factor moves the response."""

    direction: Direction
    minimum_effect: FiniteFloat = Field(gt=0, description="smallest effect the hypothesis claims (relative: 0.2 = 20 %)")
    scale: Literal["relative", "absolute"] = "relative"
    factor: str | None = Field(None, description="the factor under test; default the first factor")
    baseline: Level | None = Field(None, description="default the factor's first level")
    treatment: Level | None = Field(None, description="default the factor's last level")


class Assumptions(_Strict):
    """Prior guesses used only for planning (replicates from power); the analysis never uses them."""

    cv: float | None = Field(None, gt=0, le=1, description="coefficient of variation of the response; default per response")
    baseline_mean: float | None = Field(None, gt=0, description="expected baseline mean, for absolute effects")


class Budget(_Strict):
    max_specimens: int = Field(ge=2, le=1000)
    max_hours: FiniteFloat = Field(gt=0, le=24 * 60)


class Sequential(_Strict):
    """Run replicates in batches and stop as soon as the e-value is decisive (see labctl.agents.stats)."""

    enabled: bool = True
    batch_size: int = Field(2, ge=1, le=20, description="replicates per group per batch")
    min_batches: int = Field(1, ge=1, le=50)


class TargetCurve(_Strict):
    """A force-extension (or stress-strain) curve the measured ones are compared against."""

    x: list[float] = Field(min_length=2, max_length=10_000)
    y: list[float] = Field(min_length=2, max_length=10_000)

    @model_validator(mode="after")
    def _shape(self) -> "TargetCurve":
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} points but y has {len(self.y)}")
        if not all(math.isfinite(v) for v in self.x + self.y):
            raise ValueError("points must be finite numbers")
        if any(b <= a for a, b in zip(self.x, self.x[1:])):
            raise ValueError("x must be strictly increasing")
        return self


class Hypothesis(_Strict):
    statement: str = Field(min_length=3, max_length=2000)
    response: Response
    target_curve: TargetCurve | None = None
    factors: list[Factor] = Field(min_length=1, max_length=4)
    fixed: PrintParameters = Field(default_factory=PrintParameters)
    prediction: Prediction
    alpha: float = Field(0.05, gt=0, le=0.2)
    power: float = Field(0.8, ge=0.5, le=0.99)
    assumptions: Assumptions = Field(default_factory=Assumptions)
    budget: Budget
    sequential: Sequential | None = None
    seed: int = Field(0, ge=0, lt=2**32, description="seeds the randomised run order")

    @model_validator(mode="after")
    def _consistent(self) -> "Hypothesis":
        names = [f.name for f in self.factors]
        if len(set(names)) != len(names):
            raise ValueError("each factor may appear once")
        if (self.response == "curve_distance") != (self.target_curve is not None):
            raise ValueError("target_curve is required for response curve_distance, and only for it")
        if self.prediction.factor is not None and self.prediction.factor not in names:
            raise ValueError(f"prediction.factor {self.prediction.factor[:64]!r} is not one of the factors")
        tested = self.tested_factor()
        for which in ("baseline", "treatment"):
            level = getattr(self.prediction, which)
            if level is not None and str(level) not in {str(v) for v in tested.levels}:
                raise ValueError(f"prediction.{which} {str(level)[:64]!r} is not a level of {tested.name}")
        if str(self.baseline_level()) == str(self.treatment_level()):
            raise ValueError("prediction.baseline and prediction.treatment must differ")
        if (self.prediction.direction == "decrease" and self.prediction.scale == "relative"
                and self.prediction.minimum_effect >= 1):
            raise ValueError("a relative decrease must be below 1 (100 %)")
        cells = math.prod(len(f.levels) for f in self.factors)
        if cells * 2 > self.budget.max_specimens:
            raise ValueError(f"the design has {cells} cells; budget.max_specimens must allow 2 replicates each "
                             f"(>= {cells * 2})")
        return self

    def cells(self) -> list[dict[str, Level]]:
        """Every combination of factor levels (the full factorial), in a stable order."""
        names = [f.name for f in self.factors]
        return [dict(zip(names, combo)) for combo in itertools.product(*(f.levels for f in self.factors))]

    def parameters_for(self, cell: dict[str, Level]) -> PrintParameters:
        params = self.fixed
        for name, level in cell.items():
            params = params.with_level(name, level)
        return params

    def tested_factor(self) -> Factor:
        name = self.prediction.factor or self.factors[0].name
        return next(f for f in self.factors if f.name == name)

    def baseline_level(self) -> Level:
        tested = self.tested_factor()
        return _match(tested, self.prediction.baseline) if self.prediction.baseline is not None else tested.levels[0]

    def treatment_level(self) -> Level:
        tested = self.tested_factor()
        return _match(tested, self.prediction.treatment) if self.prediction.treatment is not None else tested.levels[-1]


def _match(factor: Factor, level: Level) -> Level:
    return next(v for v in factor.levels if str(v) == str(level))


def parse_hypothesis(data: Any) -> Hypothesis:
    """Validate untrusted input (a dict, JSON text or a Hypothesis); raise Refused with one Refusal per error."""
    if isinstance(data, Hypothesis):
        return data
    try:
        if isinstance(data, (str, bytes)):
            return Hypothesis.model_validate_json(data)
        return Hypothesis.model_validate(data)
    except ValidationError as exc:
        raise Refused(refusals_from_validation(exc)) from None


def refusals_from_validation(exc: ValidationError, prefix: str = "") -> list[Refusal]:
    out = []
    for err in exc.errors(include_url=False)[:20]:
        path = ".".join(str(p) for p in err.get("loc", ()))
        path = f"{prefix}.{path}".strip(".") if prefix else path
        value = err.get("input")
        out.append(Refusal(field=path or "<root>", value=_short(value), limit=err.get("type", "invalid"),
                           reason=str(err.get("msg", "invalid"))[:300]))
    return out


def _short(value: Any) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def load_hypothesis(path: str | Path) -> Hypothesis:
    """Read a hypothesis from a .json or .toml file; refusals name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise Refused([Refusal(field="<file>", value=str(path), limit="readable", reason=str(exc))]) from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise Refused([Refusal(field="<file>", value=str(path), limit="syntax", reason=f"{path}: {exc}")]) from None
    try:
        return parse_hypothesis(data)
    except Refused as exc:
        raise Refused(exc.refusals, source=str(path)) from None
