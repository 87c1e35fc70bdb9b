"""Broker URLs: mqtt://[user:pass@]host[:port] for MQTT, memory://[name] for the in-process bus."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

ENV_VAR = "LABCTL_BROKER"
DEFAULT_PORT = 1883
DEFAULT_URL = f"mqtt://127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class BrokerURL:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def is_memory(self) -> bool:
        return self.scheme == "memory"

    def __str__(self) -> str:
        if self.is_memory:
            return f"memory://{self.host}"
        auth = f"{self.username}:***@" if self.username else ""
        return f"mqtt://{auth}{self.host}:{self.port}"


def parse_broker_url(url: str | None = None) -> BrokerURL:
    """Parse a broker URL; None means $LABCTL_BROKER or the embedded broker's local address."""
    text = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    parts = urlsplit(text)
    if parts.scheme == "memory":
        return BrokerURL("memory", parts.netloc or parts.path.strip("/") or "default", 0)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"broker URL {text!r}: scheme must be mqtt:// or memory://")
    if not parts.hostname:
        raise ValueError(f"broker URL {text!r}: no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"broker URL {text!r}: port is not a number in 1-65535") from None
    return BrokerURL(
        "mqtt",
        parts.hostname,
        port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )
