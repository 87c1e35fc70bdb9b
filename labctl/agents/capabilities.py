"""What the lab can do, as the planner and the safety envelope see it: materials, devices, limits.

Built from the devices' own announcements (DeviceInfo.limits) so a plan never assumes a printer
hotter, or a build volume larger, than the one that is actually there.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field

from protocols.specimens import SPECIMENS

from ..bus import DeviceInfo


class MaterialLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nozzle_temp: tuple[float, float]
    bed_temp: tuple[float, float]
    default_nozzle_temp: float
    default_bed_temp: float
    density_g_cm3: float
    cost_per_kg: float
    # Typical FDM properties (tensile-testing reference), used only as planning guesses.
    modulus_mpa: float
    strength_mpa: float
    strain_at_break: float


MATERIALS: dict[str, MaterialLimits] = {
    "PLA": MaterialLimits(nozzle_temp=(190, 230), bed_temp=(0, 70), default_nozzle_temp=210, default_bed_temp=60,
                          density_g_cm3=1.24, cost_per_kg=25.0, modulus_mpa=2600, strength_mpa=45, strain_at_break=0.05),
    "PETG": MaterialLimits(nozzle_temp=(220, 260), bed_temp=(60, 90), default_nozzle_temp=240, default_bed_temp=80,
                           density_g_cm3=1.27, cost_per_kg=28.0, modulus_mpa=1700, strength_mpa=35, strain_at_break=0.3),
}

# Print-parameter ranges that hold on any FDM printer with a 0.4 mm nozzle.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "infill_density": (0.1, 1.0),
    "raster_angle": (-90.0, 90.0),
    "layer_height": (0.05, 0.4),
    "print_speed": (5.0, 150.0),
}

# Specimen envelopes (overall length, width of the grip ends, thickness), mm, from protocols.specimens.
SPECIMEN_SIZE_MM: dict[str, tuple[float, float, float]] = {
    name: (spec.overall_length_mm, spec.end_width_mm, spec.thickness_mm) for name, spec in SPECIMENS.items()
}


class PrinterCapability(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    build_volume_mm: tuple[float, float, float] = (220, 220, 250)
    max_nozzle_temp: float = 260
    max_bed_temp: float = 100
    nozzle_diameter: float = 0.4
    materials: tuple[str, ...] = ("PLA", "PETG")
    simulated: bool = False


class DeviceCapability(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: str
    simulated: bool = False
    limits: dict[str, Any] = Field(default_factory=dict)


class LabCapabilities(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    printers: list[PrinterCapability] = Field(default_factory=list)
    rigs: list[DeviceCapability] = Field(default_factory=list)
    liquid_handlers: list[DeviceCapability] = Field(default_factory=list)
    # Planning times (minutes); the job engine's scheduler owns the real timeline.
    print_minutes_per_specimen: float = 25.0
    test_minutes_per_specimen: float = 4.0
    mix_minutes_per_formulation: float = 6.0
    printer_cost_per_hour: float = 1.5

    @property
    def simulated(self) -> bool:
        devices = [*self.printers, *self.rigs, *self.liquid_handlers]
        return bool(devices) and all(d.simulated for d in devices)

    @classmethod
    def from_devices(cls, devices: Iterable[DeviceInfo], **timing: float) -> "LabCapabilities":
        printers, rigs, handlers = [], [], []
        for info in devices:
            if info.kind == "printer":
                printers.append(_printer_from(info))
            elif info.kind == "rig":
                rigs.append(DeviceCapability(id=info.id, kind=info.kind, simulated=info.simulated, limits=info.limits))
            elif info.kind in ("liquid_handler", "opentrons"):
                handlers.append(DeviceCapability(id=info.id, kind=info.kind, simulated=info.simulated,
                                                 limits=info.limits))
        return cls(printers=printers, rigs=rigs, liquid_handlers=handlers, **timing)


def _number(limits: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = limits.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _printer_from(info: DeviceInfo) -> PrinterCapability:
    """Read a printer's announced limits (drivers/printer's PrinterLimits: max_hotend_c, max_bed_c,
    build_volume_mm; a few other spellings too); keep the defaults for what is not announced."""
    limits = info.limits
    fields: dict[str, Any] = {"id": info.id, "simulated": info.simulated}
    volume = limits.get("build_volume_mm") or limits.get("build_volume")
    if isinstance(volume, dict):
        volume = [volume.get(axis) for axis in ("x", "y", "z")]
    if isinstance(volume, (list, tuple)) and len(volume) == 3 and all(isinstance(v, (int, float)) for v in volume):
        fields["build_volume_mm"] = tuple(float(v) for v in volume)
    else:
        axes = [_number(limits, f"{axis}_max_mm", f"max_{axis}", f"{axis}_max") for axis in "xyz"]
        if all(a is not None for a in axes):
            fields["build_volume_mm"] = tuple(axes)
    nozzle = _number(limits, "max_hotend_c", "max_nozzle_temp", "nozzle_temp_max", "max_hotend_temp")
    if nozzle is not None:
        fields["max_nozzle_temp"] = nozzle
    bed = _number(limits, "max_bed_c", "max_bed_temp", "bed_temp_max")
    if bed is not None:
        fields["max_bed_temp"] = bed
    diameter = _number(limits, "nozzle_diameter", "nozzle_diameter_mm")
    if diameter is not None:
        fields["nozzle_diameter"] = diameter
    materials = limits.get("materials")
    if isinstance(materials, (list, tuple)) and all(isinstance(m, str) for m in materials):
        fields["materials"] = tuple(materials)
    return PrinterCapability(**fields)


def simulated_lab(printers: int = 3) -> LabCapabilities:
    """The capabilities of `labctl serve --sim`'s lab, for planning without a running lab."""
    return LabCapabilities(
        printers=[PrinterCapability(id=f"printer-{i + 1}", simulated=True) for i in range(printers)],
        rigs=[DeviceCapability(id="rig-1", kind="rig", simulated=True, limits={"max_force_n": 5000})],
        liquid_handlers=[DeviceCapability(id="liquid-1", kind="liquid_handler", simulated=True)],
    )
