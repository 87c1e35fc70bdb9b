from __future__ import annotations

import pytest

from labctl.config import ConfigError, load_config

GOOD = """
name = "bench-lab"
[broker]
url = "mqtt://controller:pw@127.0.0.1:1883"
[[devices]]
id = "printer-1"
kind = "printer"
driver = "marlin"
port = "/dev/ttyACM0"
baud = 250000
[devices.limits]
nozzle_max_C = 280
[[devices]]
id = "rig-1"
kind = "rig"
driver = "labctl-rig"
port = "/dev/ttyACM1"
"""


def test_a_valid_configuration_loads(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert [d.id for d in config.devices] == ["printer-1", "rig-1"]
    assert config.devices[0].limits == {"nozzle_max_C": 280}


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("baud = 250000", 'baud = "fast"'), "devices[0].baud"),
    (GOOD.replace('kind = "rig"', 'kind = "laser"'), "devices[1].kind"),
    (GOOD.replace('id = "rig-1"', 'id = "printer-1"'), "is used by another device"),
    (GOOD + "\ncolour = 'blue'\n", "colour: Extra inputs are not permitted"),
    (GOOD.replace("[broker]", "[broker"), "not valid TOML"),
])
def test_errors_name_file_key_and_reason(tmp_path, text, expected):
    path = tmp_path / "lab.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such lab configuration file"):
        load_config(tmp_path / "nope.toml")
