"""An asyncio byte link over a serial port (or pseudo-terminal), without threads.

pyserial opens and configures the port (it knows the Linux ioctl for non-standard rates such as
250000 baud, which termios' B-constants lack); the event loop then watches its file descriptor
with add_reader, so reading costs no thread and no polling. pyserial-asyncio would add a
dependency for the same two calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import serial


class LinkClosed(ConnectionError):
    pass


class SerialLink:
    def __init__(self, port: str, baud: int, on_line: Callable[[str], None],
                 on_lost: Callable[[Exception | None], None]) -> None:
        self.port = port
        self.baud = baud
        self._on_line = on_line
        self._on_lost = on_lost
        self._serial: serial.Serial | None = None
        self._fd: int | None = None
        self._rx = bytearray()
        self._tx = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"cannot open {self.port}: {exc}") from exc
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        with contextlib.suppress(OSError, serial.SerialException):
            self._serial.reset_input_buffer()
        self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            if self._tx:
                self._loop.remove_writer(self._fd)
        self._fd = None
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
        self._serial = None
        self._tx.clear()
        self._rx.clear()

    def write(self, data: bytes) -> None:
        """Queue bytes for the wire, writing at once what the OS takes."""
        if self._fd is None:
            raise LinkClosed(f"{self.port} is not open")
        if self._tx:
            self._tx += data
            return
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._lost(exc)
            raise LinkClosed(f"{self.port}: {exc}") from exc
        self.bytes_sent += written
        if written < len(data):
            self._tx += data[written:]
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._writable)

    def write_now(self, data: bytes) -> None:
        """Write ahead of anything buffered (emergency stop). A partial line already on the wire is
        ended first so the firmware sees `data` as a line of its own."""
        if self._fd is None:
            raise LinkClosed(f"{self.port} is not open")
        if self._tx:
            self._tx.clear()
            data = b"\n" + data
        try:
            self.bytes_sent += os.write(self._fd, data)
        except OSError as exc:
            raise LinkClosed(f"{self.port}: {exc}") from exc

    def _writable(self) -> None:
        assert self._fd is not None and self._loop is not None
        try:
            written = os.write(self._fd, self._tx)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        self.bytes_sent += written
        del self._tx[:written]
        if not self._tx:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)  # type: ignore[arg-type]
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        self.bytes_received += len(data)
        self._rx += data
        while True:
            nl = self._rx.find(b"\n")
            if nl < 0:
                if len(self._rx) > 4096:
                    self._rx.clear()
                return
            line = self._rx[:nl].decode("latin-1").strip("\r\x00 ")
            del self._rx[:nl + 1]
            if self._fd is None:
                return
            self._on_line(line)

    def _lost(self, exc: Exception | None) -> None:
        self.close()
        self._on_lost(exc)
