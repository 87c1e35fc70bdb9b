"""A protocol that must fail simulation: it aspirates before picking up a tip (a typical agent slip)."""

from opentrons import protocol_api

metadata = {"protocolName": "labctl example that fails simulation"}
requirements = {"robotType": "OT-2", "apiLevel": "2.16"}


def run(protocol: protocol_api.ProtocolContext) -> None:
    protocol.load_labware("opentrons_96_tiprack_300ul", 1)
    plate = protocol.load_labware("corning_96_wellplate_360ul_flat", 2)
    pipette = protocol.load_instrument("p300_single_gen2", "right")
    pipette.aspirate(100, plate["A1"])
    pipette.dispense(100, plate["B1"])
