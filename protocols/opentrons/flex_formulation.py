"""Flex: the same two-component blends as ot2_formulation.py, on a Flex with a 1-channel 1000 µL pipette."""

from opentrons import protocol_api

metadata = {
    "protocolName": "labctl two-component formulation (Flex)",
    "author": "labctl",
}
requirements = {"robotType": "Flex", "apiLevel": "2.16"}

PERCENT_B = [10, 20, 30]
TOTAL_UL = 200


def run(protocol: protocol_api.ProtocolContext) -> None:
    tips = protocol.load_labware("opentrons_flex_96_tiprack_200ul", "C1")
    reservoir = protocol.load_labware("nest_12_reservoir_15ml", "D1")
    plate = protocol.load_labware("corning_96_wellplate_360ul_flat", "D2")
    protocol.load_trash_bin("A3")
    pipette = protocol.load_instrument("flex_1channel_1000", "left", tip_racks=[tips])

    for share, well in zip(PERCENT_B, plate.wells()):
        pipette.transfer(TOTAL_UL * (100 - share) / 100, reservoir["A1"], well)
        pipette.transfer(TOTAL_UL * share / 100, reservoir["A2"], well, mix_after=(3, 50))
