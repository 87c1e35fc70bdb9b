"""Liquid handling through PyLabRobot: transfer steps validated against a deck, run with provenance.

    from drivers.liquid_handler import LiquidHandlerDevice, LiquidHandlerConfig
    async with LiquidHandlerDevice(LiquidHandlerConfig(deck="formulation_ot2")) as lh:
        record = await lh.run_steps([{"source": {"labware": "components", "well": "A1"},
                                      "destination": {"labware": "blend_plate", "well": "A1"}, "volume": 100}])
"""

from .deck import DeckError, DeckLayout, build_deck
from .device import EmergencyStopped, LiquidHandlerConfig, LiquidHandlerDevice
from .runner import JobRecord, StepRecord
from .steps import Formulation, Mix, StepRefusal, StepsRefused, TransferStep, WellRef, formulation_plan

__all__ = [
    "DeckError", "DeckLayout", "EmergencyStopped", "Formulation", "JobRecord", "LiquidHandlerConfig",
    "LiquidHandlerDevice", "Mix", "StepRecord", "StepRefusal", "StepsRefused", "TransferStep", "WellRef",
    "build_deck", "formulation_plan",
]
