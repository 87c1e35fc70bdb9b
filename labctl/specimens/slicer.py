"""PrusaSlicer's command line for arbitrary meshes (headless: ``prusa-slicer --export-gcode``).

The mesh is checked (watertight, inside the build volume) before slicing. Print settings are passed
as PrusaSlicer option names (``layer_height=0.2`` -> ``--layer-height 0.2``); options that would carry
G-code or run programs (``*_gcode``, ``gcode_substitutions``, ``post_process``, ``load``, ``datadir``)
are refused, so whoever
asks for a slice cannot smuggle raw G-code or commands to the printer. The start and end G-code are
ours: plain Marlin, heaters set and awaited after homing, heaters and fan off at the end.

PrusaSlicer stamps the date into its first comment line; it is cut to the version, and PrusaSlicer
runs on one CPU (its parallel slicing differs in the last digits from run to run), so the same mesh
and settings always give the same SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocols.specimens import SpecimenError, check_fits

from .artefact import GcodeArtefact

if TYPE_CHECKING:
    import trimesh

GENERATOR = "prusa-slicer"
EXECUTABLE = "prusa-slicer"

START_GCODE = "\n".join([
    "G21 ; millimetres", "G90 ; absolute coordinates", "M82 ; absolute extrusion", "M107 ; fan off",
    "M140 S[first_layer_bed_temperature] ; bed heating", "M104 S[first_layer_temperature] ; nozzle heating",
    "G28 ; home", "M190 S[first_layer_bed_temperature] ; wait for bed", "M109 S[first_layer_temperature] ; wait for nozzle",
    "G92 E0",
])
END_GCODE = "\n".join([
    "M104 S0 ; nozzle off", "M140 S0 ; bed off", "M107 ; fan off",
    "{if max_layer_z < max_print_height}G1 Z{min(max_layer_z + 10, max_print_height)} F600 ; lift{endif}",
    "M84 ; motors off",
])

_FORBIDDEN = re.compile(r"(_gcode$|^gcode_substitutions$|^post_process$|^load$|^datadir$|^output|^export|^config"
                        r"|^single_instance$)")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class SlicerError(RuntimeError):
    """PrusaSlicer missing, refused input, or a failed slice (with PrusaSlicer's own message)."""


def _executable(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SlicerError(f"{name!r} not found on PATH; install it (Debian/Ubuntu: apt-get install prusa-slicer)")
    return found


def _option_args(config: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in sorted(config.items()):
        if not _KEY.match(key):
            raise SlicerError(f"slicer option {key!r}: use PrusaSlicer's option name in snake_case, e.g. layer_height")
        if _FORBIDDEN.search(key):
            raise SlicerError(f"slicer option {key!r} is not allowed: it could carry G-code or run a program")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in text or "\r" in text:
            raise SlicerError(f"slicer option {key!r}: value must be a single line")
        args += [f"--{key.replace('_', '-')}", text]
    return args


def _one_cpu() -> None:
    """Pin PrusaSlicer to one CPU: its parallel (TBB) slicing is not deterministic, which would give one
    mesh and one set of settings different G-code (different last digits) and so different hashes."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _message(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip() and "[trace]" not in ln and "[debug]" not in ln]
    return "\n".join(lines[-8:]) or "(no output)"


def slice_mesh(mesh: trimesh.Trimesh | str | Path, *, build_volume_mm: tuple[float, float, float] = (220, 220, 250),
               layer_height_mm: float = 0.2, nozzle_temp_c: float = 210, bed_temp_c: float = 60,
               infill_density: float = 1.0, perimeters: int = 2, fill_angle_deg: float = 45,
               config: dict[str, Any] | None = None, timeout_s: float = 300,
               executable: str = EXECUTABLE) -> GcodeArtefact:
    """Slice a mesh (a trimesh, or an STL/OBJ/3MF file) into Marlin G-code with PrusaSlicer.

    ``config`` adds PrusaSlicer options by name (snake_case). The part is centred on the bed.
    Raises SlicerError naming the problem; nothing is written outside a private temporary directory.
    """
    import trimesh

    binary = _executable(executable)
    if isinstance(mesh, (str, Path)):
        try:
            loaded = trimesh.load_mesh(str(mesh))
        except Exception as exc:  # trimesh raises many types for unreadable files
            raise SlicerError(f"{mesh}: cannot read mesh: {exc}") from None
        name = Path(mesh).name
    else:
        loaded, name = mesh, "mesh.stl"
    if not 0 < infill_density <= 1:
        raise SlicerError(f"infill_density must be in (0, 1], got {infill_density}")
    try:
        check_fits(loaded, build_volume_mm)
    except SpecimenError as exc:
        raise SlicerError(f"{name}: {exc}") from None
    stl = loaded.export(file_type="stl")
    bx, by, bz = build_volume_mm
    settings: dict[str, Any] = {
        "layer_height": layer_height_mm, "first_layer_height": layer_height_mm,
        "temperature": nozzle_temp_c, "first_layer_temperature": nozzle_temp_c,
        "bed_temperature": bed_temp_c, "first_layer_bed_temperature": bed_temp_c,
        "fill_density": f"{infill_density * 100:g}%", "fill_pattern": "rectilinear", "perimeters": perimeters,
        "fill_angle": fill_angle_deg,
        "bed_shape": f"0x0,{bx:g}x0,{bx:g}x{by:g},0x{by:g}", "max_print_height": bz,
        "gcode_flavor": "marlin2", **(config or {}),
    }
    args = _option_args(settings)
    with tempfile.TemporaryDirectory(prefix="labctl-slice-") as tmp:
        work = Path(tmp)
        (work / "in.stl").write_bytes(stl)
        command = [binary, "--datadir", str(work / "datadir"), "--loglevel", "1", "--export-gcode",
                   "--center", f"{bx / 2:g},{by / 2:g}", *args,
                   "--start-gcode", START_GCODE, "--end-gcode", END_GCODE,
                   "-o", str(work / "out.gcode"), str(work / "in.stl")]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=work,
                                  preexec_fn=_one_cpu)
        except subprocess.TimeoutExpired:
            raise SlicerError(f"{name}: PrusaSlicer did not finish within {timeout_s} s") from None
        out = work / "out.gcode"
        if done.returncode != 0 or not out.exists():
            raise SlicerError(f"{name}: PrusaSlicer failed (exit {done.returncode}): "
                              f"{_message(done.stderr + chr(10) + done.stdout)}")
        text = out.read_text(encoding="utf-8")
    version_match = re.match(r"; generated by PrusaSlicer (\S+)", text)
    version = version_match.group(1) if version_match else "unknown"
    text = re.sub(r"\A; generated by PrusaSlicer \S+ on [^\n]*", f"; generated by PrusaSlicer {version}", text)
    parameters = {"kind": "mesh", "mesh_name": name, "mesh_sha256": hashlib.sha256(stl).hexdigest(),
                  "config": {k: (v if isinstance(v, (int, float, bool)) else str(v)) for k, v in settings.items()}}
    return GcodeArtefact.build(text, GENERATOR, version, parameters)


def prusa_slicer_version(executable: str = EXECUTABLE) -> str:
    """The installed PrusaSlicer's version, from its --help banner."""
    done = subprocess.run([_executable(executable), "--help"], capture_output=True, text=True, timeout=60)
    match = re.search(r"PrusaSlicer-(\S+)", done.stdout + done.stderr)
    if not match:
        raise SlicerError("cannot tell PrusaSlicer's version from its --help output")
    return match.group(1).split("+")[0]
