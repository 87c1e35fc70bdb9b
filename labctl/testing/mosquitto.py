"""Run a real Mosquitto broker as a child process on a free loopback port (tests, HIL rigs)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..bus.broker import free_port
from ..bus.url import BrokerURL

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next((p for p in MOSQUITTO_PATHS if os.path.exists(p)), None)
    if not found:
        raise RuntimeError("mosquitto is not installed: `sudo apt-get install -y mosquitto` (.ci/run does this)")
    return found


class Mosquitto:
    """A mosquitto process; `users` maps user -> password, `acl` is an ACL file's text."""

    def __init__(self, workdir: Path, port: int | None = None, *, users: dict[str, str] | None = None,
                 acl: str | None = None, allow_anonymous: bool = True, persistence: bool = False) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.users = users or {}
        self.acl = acl
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> BrokerURL:
        return BrokerURL("mqtt", "127.0.0.1", self.port)

    def url_for(self, user: str) -> BrokerURL:
        return BrokerURL("mqtt", "127.0.0.1", self.port, user, self.users[user])

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
                 "log_type error", "log_type warning", "max_queued_messages 100000",
                 "max_inflight_messages 0", "set_tcp_nodelay true"]
        if os.geteuid() == 0:
            # As root, mosquitto drops to the `mosquitto` user, which cannot read a private tmp dir.
            lines.append("user root")
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if self.users:
            password_file = self.workdir / "passwd"
            password_file.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), user, password], check=True,
                               capture_output=True)
            lines.append(f"password_file {password_file}")
        if self.acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(self.acl)
            lines.append(f"acl_file {acl_file}")
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        config = self._write_config()
        log = open(self.workdir / "mosquitto.log", "ab")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: "
                                   f"{(self.workdir / 'mosquitto.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop (SIGTERM: a persistent broker saves its sessions) and start again on the same port."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
