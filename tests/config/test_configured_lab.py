"""A lab built from lab.toml, as for real hardware, here pointed at the simulators' serial ports."""

from __future__ import annotations

import pytest

from labctl.bus import Command, connect, topics
from labctl.config import ConfigError, LabConfig, load_config
from labctl.lab import Lab
from simulators.printer import MarlinSimulator, SimulatorConfig
from simulators.rig import RigSimConfig, RigSimulator


async def test_lab_toml_devices_come_online_and_take_commands(tmp_path):
    async with MarlinSimulator(SimulatorConfig(speed=50, advanced_ok=True), link=tmp_path / "printer.tty"), \
            RigSimulator(RigSimConfig(speed=50, link=tmp_path / "rig.tty")):
        toml = tmp_path / "lab.toml"
        toml.write_text(f"""
[storage]
dir = "{tmp_path / 'data'}"
[[devices]]
id = "printer-7"
kind = "printer"
driver = "marlin"
port = "{tmp_path / 'printer.tty'}"
baud = 12500000
[devices.limits]
max_hotend_c = 240
[[devices]]
id = "rig-7"
kind = "rig"
driver = "labctl-rig"
port = "{tmp_path / 'rig.tty'}"
[devices.options]
frame_stiffness_n_per_mm = 762
[[devices]]
id = "liquid-7"
kind = "liquid_handler"
driver = "pylabrobot"
[devices.options]
deck = "formulation_ot2"
backend = "simulated"
""")
        config = load_config(toml)
        async with Lab.from_config(config, bus_url="memory://configured") as lab, \
                connect("memory://configured") as bus:
            assert [d.info.id for d in lab.devices] == ["printer-7", "rig-7", "liquid-7"]
            hot = await bus.request(topics.device_commands("printer-7"),
                                    Command(action="set_temperature", params={"hotend": 250}))
            assert not hot.ok and "240" in hot.error  # the configured limit, checked before the wire
            ident = await bus.request(topics.device_commands("rig-7"), Command(action="identify"))
            assert ident.ok and ident.result
            assert (tmp_path / "data" / "labctl.db").exists()


async def test_a_device_without_its_port_is_refused_by_name(tmp_path):
    config = LabConfig.model_validate({"storage": {"dir": str(tmp_path)},
                                       "devices": [{"id": "printer-9", "kind": "printer", "driver": "marlin"}]})
    with pytest.raises(ConfigError, match=r"devices\[printer-9\]: driver 'marlin' needs `port`"):
        async with Lab.from_config(config, bus_url="memory://refused"):
            pass
