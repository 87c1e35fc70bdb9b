"""Topic names under labctl/v1/ and MQTT topic-filter matching."""

from __future__ import annotations

ROOT = "labctl/v1"
ESTOP = f"{ROOT}/estop"


def device_state(device_id: str) -> str:
    return f"{ROOT}/devices/{device_id}/state"


def device_telemetry(device_id: str, stream: str) -> str:
    return f"{ROOT}/devices/{device_id}/telemetry/{stream}"


def device_commands(device_id: str) -> str:
    return f"{ROOT}/devices/{device_id}/commands"


def replies(client_id: str) -> str:
    return f"{ROOT}/replies/{client_id}"


def job_events(job_id: str) -> str:
    return f"{ROOT}/jobs/{job_id}/events"


ALL_DEVICE_STATES = f"{ROOT}/devices/+/state"


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 section 4.7 matching of `+` (one level) and `#` (this level and below)."""
    filter_parts = topic_filter.split("/")
    topic_parts = topic.split("/")
    for i, part in enumerate(filter_parts):
        if part == "#":
            return True
        if i >= len(topic_parts):
            return False
        if part != "+" and part != topic_parts[i]:
            return False
    return len(filter_parts) == len(topic_parts)


def validate_filter(topic_filter: str) -> None:
    parts = topic_filter.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            raise ValueError(f"topic filter {topic_filter!r}: '#' must be a whole last level")
        if "+" in part and part != "+":
            raise ValueError(f"topic filter {topic_filter!r}: '+' must be a whole level")
