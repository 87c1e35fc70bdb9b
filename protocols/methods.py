"""Tensile test methods (ISO 527-1/-2, ASTM D638): speeds, preload, sampling, end-of-test criteria.

A method is data: the rig driver and firmware execute it, the analysis reads its modulus window and
strain basis. Speeds and criteria follow /work/shared/reference/tensile-testing.md:
  ISO 527: modulus at 1 mm/min, then strength at 5 mm/min (brittle) or 50 mm/min (ductile);
           record at >= 22 Hz in the modulus window; modulus between 0.05 % and 0.25 % strain.
  ASTM D638: 5 mm/min for types I-IV, 1 mm/min for type V (rupture in 0.5-5 min).
  End of test as on commercial stands: force falls by a set percentage of its peak (80 % here),
  armed only once the force has passed an activation threshold; plus maximum extension and a
  software force limit.

Public API: TestMethod, EndCriteria, METHODS, get_method(name), MethodError.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .specimens import SPECIMENS, SpecimenType, effective_length_mm, get_specimen


class MethodError(ValueError):
    """An unknown method, or a method that does not apply to a specimen."""


class EndCriteria(BaseModel):
    """When a test ends (whichever comes first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    break_drop_percent: float = Field(
        80.0, gt=0, lt=100,
        description="Break when the force has fallen by this percentage of its peak (80 -> to 20 % of the peak).")
    activation_force_n: float = Field(
        20.0, ge=0, description="Break detection is armed only after the force has exceeded this.")
    max_extension_mm: float = Field(100.0, gt=0, description="Stop when the crosshead has travelled this far.")
    force_limit_n: float = Field(5000.0, gt=0, description="Software force limit (specimen and load-cell protect).")

    @property
    def break_force_fraction(self) -> float:
        """Fraction of the peak force at or below which the specimen counts as broken."""
        return 1.0 - self.break_drop_percent / 100.0

    def is_break(self, force_n: float, peak_force_n: float) -> bool:
        """True once the peak passed the activation force and the force fell to the break fraction."""
        return peak_force_n >= self.activation_force_n and force_n <= self.break_force_fraction * peak_force_n


class TestMethod(BaseModel):
    """One test method. Speeds are crosshead speeds in mm/min."""

    __test__ = False  # not a pytest test class despite its name
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    standard: Literal["ISO 527", "ASTM D638"]
    description: str = ""
    specimen_types: tuple[str, ...] = Field(description="Keys of protocols.specimens.SPECIMENS this method applies to.")
    preload_force_n: float = Field(ge=0, description="Force that takes up slack; strain is counted from here.")
    preload_speed_mm_min: float = Field(gt=0)
    modulus_speed_mm_min: float = Field(gt=0, description="Speed up to the end of the modulus window.")
    test_speed_mm_min: float = Field(gt=0, description="Speed after the modulus window, to the end of the test.")
    sample_rate_hz: float = Field(gt=0, description="Data rate the method asks of the rig.")
    modulus_strain_start_pct: float = Field(0.05, ge=0)
    modulus_strain_end_pct: float = Field(0.25, gt=0)
    min_modulus_points: int = Field(20, ge=3, description="Fewest samples accepted in the modulus window.")
    strain_basis: Literal["effective_length", "gauge_length", "grip_separation"] = Field(
        "effective_length",
        description="Length that turns crosshead travel into strain when there is no extensometer; "
                    "see protocols.specimens.effective_length_mm.")
    end: EndCriteria = Field(default_factory=EndCriteria)

    @model_validator(mode="after")
    def _consistent(self) -> TestMethod:
        if self.modulus_strain_end_pct <= self.modulus_strain_start_pct:
            raise ValueError(f"{self.name}: modulus_strain_end_pct must exceed modulus_strain_start_pct")
        unknown = [s for s in self.specimen_types if s not in SPECIMENS]
        if unknown:
            raise ValueError(f"{self.name}: unknown specimen types {unknown}; valid: {', '.join(SPECIMENS)}")
        return self

    @property
    def speed_change_strain_pct(self) -> float:
        """Strain at which the crosshead switches from the modulus speed to the test speed."""
        return self.modulus_strain_end_pct

    def strain_length_mm(self, spec: SpecimenType | str) -> float:
        """The length (mm) that crosshead travel is divided by to give strain, for this specimen."""
        spec = get_specimen(spec)
        if self.strain_basis == "gauge_length":
            return spec.gauge_length_mm
        if self.strain_basis == "grip_separation":
            return spec.grip_separation_mm
        return effective_length_mm(spec)

    def speed_at(self, strain_pct: float) -> float:
        """Crosshead speed (mm/min) the method prescribes at a given strain."""
        return self.modulus_speed_mm_min if strain_pct < self.speed_change_strain_pct else self.test_speed_mm_min

    def check_specimen(self, spec: SpecimenType | str) -> SpecimenType:
        """The specimen, or MethodError if this method is not written for it."""
        spec = get_specimen(spec)
        if spec.name not in self.specimen_types:
            raise MethodError(f"method {self.name!r} does not apply to specimen {spec.name!r}; "
                              f"it applies to {', '.join(self.specimen_types)}")
        return spec

    def max_preload_n(self, spec: SpecimenType | str, modulus_mpa: float, strength_mpa: float) -> float:
        """Largest preload ISO 527-1 allows: below 0.05 % strain and below 1 % of the tensile strength."""
        spec = get_specimen(spec)
        stress = min(modulus_mpa * self.modulus_strain_start_pct / 100.0, 0.01 * strength_mpa)
        return stress * spec.narrow_area_mm2


_ISO = ("iso527-1a", "iso527-1ba", "iso527-5a")
_ASTM_I_IV = ("astm-d638-i", "astm-d638-iv")

METHODS: dict[str, TestMethod] = {m.name: m for m in (
    TestMethod(name="iso527-5", standard="ISO 527",
               description="ISO 527: modulus at 1 mm/min, then 5 mm/min to break (brittle, e.g. printed PLA).",
               specimen_types=_ISO, preload_force_n=2.0, preload_speed_mm_min=1.0, modulus_speed_mm_min=1.0,
               test_speed_mm_min=5.0, sample_rate_hz=100.0),
    TestMethod(name="iso527-50", standard="ISO 527",
               description="ISO 527: modulus at 1 mm/min, then 50 mm/min to break (ductile, e.g. PETG).",
               specimen_types=_ISO, preload_force_n=2.0, preload_speed_mm_min=1.0, modulus_speed_mm_min=1.0,
               test_speed_mm_min=50.0, sample_rate_hz=200.0, end=EndCriteria(max_extension_mm=150.0)),
    TestMethod(name="astm-d638", standard="ASTM D638",
               description="ASTM D638 types I-IV: 5 mm/min throughout.",
               specimen_types=_ASTM_I_IV, preload_force_n=5.0, preload_speed_mm_min=5.0, modulus_speed_mm_min=5.0,
               test_speed_mm_min=5.0, sample_rate_hz=100.0),
    TestMethod(name="astm-d638-v", standard="ASTM D638",
               description="ASTM D638 type V: 1 mm/min throughout.",
               specimen_types=("astm-d638-v",), preload_force_n=1.0, preload_speed_mm_min=1.0,
               modulus_speed_mm_min=1.0, test_speed_mm_min=1.0, sample_rate_hz=100.0,
               end=EndCriteria(activation_force_n=10.0, max_extension_mm=50.0)),
)}


def get_method(name: str | TestMethod) -> TestMethod:
    """The method called ``name`` (case-insensitive); a TestMethod is returned unchanged."""
    if isinstance(name, TestMethod):
        return name
    key = str(name).strip().lower()
    try:
        return METHODS[key]
    except KeyError:
        raise MethodError(f"unknown test method {name!r}; valid names: {', '.join(METHODS)}") from None
