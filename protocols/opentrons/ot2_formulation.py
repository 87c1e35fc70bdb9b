"""OT-2: blend components A and B at 10 / 20 / 30 % B into a 96-well plate (two replicates each).

Component A goes into every well with one tip (the wells are empty, so it stays clean); component
B follows with a new tip per well and mixes the blend.
"""

from opentrons import protocol_api

metadata = {
    "protocolName": "labctl two-component formulation (OT-2)",
    "author": "labctl",
    "description": "Blends of component A and B in set ratios for syringe-extrusion printing.",
}
requirements = {"robotType": "OT-2", "apiLevel": "2.16"}

PERCENT_B = [10, 20, 30]
REPLICATES = 2
TOTAL_UL = 200


def run(protocol: protocol_api.ProtocolContext) -> None:
    tips = protocol.load_labware("opentrons_96_tiprack_300ul", 1)
    reservoir = protocol.load_labware("nest_12_reservoir_15ml", 2)
    plate = protocol.load_labware("corning_96_wellplate_360ul_flat", 3)
    pipette = protocol.load_instrument("p300_single_gen2", "right", tip_racks=[tips])

    component_a = protocol.define_liquid("component_A", "base resin", "#1f77b4")
    component_b = protocol.define_liquid("component_B", "stiffening additive", "#ff7f0e")
    reservoir["A1"].load_liquid(component_a, 12000)
    reservoir["A2"].load_liquid(component_b, 12000)

    blends = [(share, plate.wells()[i * REPLICATES + r]) for i, share in enumerate(PERCENT_B) for r in range(REPLICATES)]
    pipette.pick_up_tip()
    for share, well in blends:
        pipette.transfer(TOTAL_UL * (100 - share) / 100, reservoir["A1"], well, new_tip="never")
    pipette.drop_tip()
    for share, well in blends:
        pipette.transfer(TOTAL_UL * share / 100, reservoir["A2"], well, new_tip="always", mix_after=(3, 50))
    protocol.comment(f"{len(blends)} blends ready")
