"""Marlin 2.1's host-facing behaviour, driven by a simulated clock (no I/O here).

Three queues in a row, as in Marlin: RX bytes -> BUFSIZE command slots -> planner blocks. The
serial reader only takes bytes from the RX ring while a command slot is free; bytes that arrive
while the ring is full are dropped. `ok` is sent when a command leaves its slot (a move leaves
once it is in the planner). The emergency parser sees every byte as it arrives, ahead of all that.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from .config import SimulatorConfig
from .heaters import Heater, ThermalError, format_temperatures, make_bed, make_hotend

VERSION = "2.1.2.1"
INF = math.inf

STR_ERR_LINE_NO = "Line Number is not Last Line Number+1, Last Line: "
STR_ERR_CHECKSUM_MISMATCH = "checksum mismatch, Last Line: "
STR_ERR_NO_CHECKSUM = "No Checksum with line number, Last Line: "
STR_ERR_NO_LINENUMBER = "No Line Number with checksum, Last Line: "
STR_ERR_KILLED = "Printer halted. kill() called!"

_EPARSER = re.compile(rb"^\s*(?:N-?\d+\s*)?M(108|112|410|876)\b")
_WORD = re.compile(r"([A-Z])\s*(-?\d*\.?\d*)")

CAPABILITIES = [
    ("SERIAL_XON_XOFF", False), ("BINARY_FILE_TRANSFER", False), ("EEPROM", True), ("VOLUMETRIC", True),
    ("AUTOREPORT_POS", False), ("AUTOREPORT_TEMP", None), ("PROGRESS", False), ("PRINT_JOB", True),
    ("AUTOLEVEL", False), ("RUNOUT", False), ("Z_PROBE", False), ("LEVELING_DATA", False),
    ("BUILD_PERCENT", False), ("SOFTWARE_POWER", False), ("TOGGLE_LIGHTS", False),
    ("CASE_LIGHT_BRIGHTNESS", False), ("EMERGENCY_PARSER", None), ("HOST_ACTION_COMMANDS", None),
    ("PROMPT_SUPPORT", None), ("SDCARD", False), ("REPEAT", False), ("SD_WRITE", False),
    ("AUTOREPORT_SD_STATUS", False), ("LONG_FILENAME", False), ("THERMAL_PROTECTION", None),
    ("MOTION_MODES", False), ("ARCS", True), ("BABYSTEPPING", False), ("CHAMBER_TEMPERATURE", False),
    ("COOLER_TEMPERATURE", False), ("MEATPACK", False), ("CONFIG_EXPORT", False), ("ADVANCED_OK", None),
]


@dataclass
class QueuedCommand:
    text: str
    line_number: int | None


def parse_words(text: str) -> dict[str, float]:
    words: dict[str, float] = {}
    for letter, value in _WORD.findall(text[1:] if text else ""):
        try:
            words[letter] = float(value) if value not in ("", "-", ".") else math.nan
        except ValueError:
            words[letter] = math.nan
    return words


class MarlinFirmware:
    """One printer's firmware state. `send(text)` is how it writes a line to the host."""

    def __init__(self, config: SimulatorConfig, send: Callable[[str], None]) -> None:
        self.cfg = config
        self._send = send
        self.rng = random.Random(config.faults.seed)
        self.now = 0.0
        self.hotend = make_hotend(config.max_temp_hotend, config.thermal_protection)
        self.bed = make_bed(config.max_temp_bed, config.thermal_protection)
        self._heater_time = 0.0
        # Records that survive resets.
        self.executed: list[tuple[int | None, str]] = []
        self.executed_at: list[float] = []      # simulated time each command finished
        self._hash = hashlib.sha256()
        self.underruns = 0
        self.moves = 0
        self.rx_dropped_bytes = 0
        self.line_errors = 0
        self.oks_dropped = 0
        self.halts: list[dict[str, Any]] = []
        self.resets = 0
        self.pending_fault: str | None = None   # "reset" / "disconnect", set once its line's ok is sent
        self.stuck_busy_armed = False
        self.boot(first=True)

    # ---- lifecycle -------------------------------------------------------------------------
    def boot(self, first: bool = False) -> None:
        if not first:
            self.resets += 1
        self.killed = False
        self.frozen = False
        self.pending_fault = None
        self.last_n = 0
        self.rx = bytearray()
        self.line_buf = bytearray()
        self.discarding = False   # after an overlong line, until its newline
        self.ring: deque[QueuedCommand] = deque()
        self.current: Generator[tuple[str, float], None, None] | None = None
        self.current_started = 0.0
        self.busy_state: str | None = None
        self.next_keepalive = INF
        self.planner: deque[float] = deque()   # end time of each queued block
        self.last_block_end = self.now
        self.previous_was_move = False
        self.pos = {"X": 0.0, "Y": 0.0, "Z": 0.0, "E": 0.0}
        self.absolute = True
        self.absolute_e = True
        self.feedrate = 1500.0 / 60.0
        self.homed = False
        self.autoreport_s = 0.0
        self.next_autoreport = INF
        self.keepalive_s = self.cfg.keepalive_s
        self.wait_for_user = False
        self.wait_for_heatup = False
        self._ok_already_sent = False
        self._wait_until = INF
        self._waiting: tuple[str, float] | None = None
        self.ep_line = bytearray()
        self.hotend.off()
        self.bed.off()
        for line in ("start", f"echo:Marlin {VERSION}", "",
                     "echo: Last Updated: 2023-07-13 | Author: (labctl simulator)",
                     "echo:Compiled: Jul 13 2023",
                     "echo: Free Memory: 4086  PlannerBufferBytes: 1232",
                     "echo:Hardcoded Default Settings Loaded"):
            self._send(line)

    def kill(self, reason: str | None) -> None:
        if self.killed:
            return
        if reason:
            self._send("Error:" + reason)
        self.hotend.off()
        self.bed.off()
        self.planner.clear()
        self.ring.clear()
        self.current = None
        if self.cfg.host_action_commands:
            self._send("//action:kill")
        self._send("Error:" + STR_ERR_KILLED)
        self.killed = True
        self.halts.append({"t_sim": self.now, "reason": reason or "M112"})

    # ---- records -----------------------------------------------------------------------------
    def _record(self, line_number: int | None, text: str) -> None:
        if self.cfg.record_executed:
            self.executed.append((line_number, text))
            self.executed_at.append(self.now)
        self._hash.update(text.encode() + b"\n")

    @property
    def executed_hash(self) -> str:
        return self._hash.hexdigest()

    # ---- bytes in ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes that have just arrived on the wire (at self.now)."""
        if self.killed or self.frozen:
            return
        if self.cfg.emergency_parser:
            self._emergency_parse(data)
            if self.killed:
                return
        room = self.cfg.rx_buffer - 1 - len(self.rx)   # a ring buffer of N holds N-1 bytes
        if len(data) > room:
            self.rx_dropped_bytes += len(data) - max(room, 0)
            data = data[:max(room, 0)]
        self.rx += data

    def _emergency_parse(self, data: bytes) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self.ep_line += data[start:]
                if len(self.ep_line) > 128:
                    del self.ep_line[:-128]
                return
            self.ep_line += data[start:nl]
            match = _EPARSER.match(bytes(self.ep_line))
            self.ep_line.clear()
            start = nl + 1
            if match:
                code = match.group(1)
                if code == b"112":
                    self.kill(None)
                    return
                if code in (b"108", b"876"):
                    self.wait_for_user = self.wait_for_heatup = False
                elif code == b"410":
                    self._quickstop()

    def _quickstop(self) -> None:
        self.planner.clear()
        self.last_block_end = self.now

    # ---- the main loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Do everything that can be done at self.now."""
        if self.killed:
            return
        self._heaters_to_now()
        if self.killed:
            return
        planner = self.planner
        while planner and planner[0] <= self.now:
            planner.popleft()
        while not self.frozen:
            progressed = False
            if self.ring and self._advance_head():
                progressed = True
            if len(self.ring) < self.cfg.bufsize and self.rx and not self.frozen:
                if self._read_serial():
                    progressed = True
            if not progressed or self.killed:
                break
        self._periodic()

    def next_event(self) -> float:
        if self.killed or self.frozen:
            return INF
        t = min(self.next_autoreport, self.next_keepalive)
        if self.planner:
            t = min(t, self.planner[0])
        if self.current is not None and self._wait_until < t:
            t = self._wait_until
        if self.hotend.target_c > 0 or self.bed.target_c > 0 or self.hotend.temp_c > 30 or self.bed.temp_c > 30:
            t = min(t, self.now + 0.5)
        return t

    def _heaters_to_now(self) -> None:
        dt = self.now - self._heater_time
        if dt <= 0:
            return
        try:
            while dt > 0:
                step = min(dt, 0.5)
                self._heater_time += step
                dt -= step
                self.hotend.step(step, self._heater_time)
                self.bed.step(step, self._heater_time)
        except ThermalError as exc:
            self.kill(str(exc))
        self._heater_time = self.now

    def _periodic(self) -> None:
        if self.killed:
            return
        if self.now >= self.next_autoreport:
            self._send(format_temperatures(self.hotend, self.bed))
            self.next_autoreport = self.now + self.autoreport_s
        if self.now >= self.next_keepalive and self.busy_state:
            self._send("echo:busy: " + self.busy_state)
            self.next_keepalive = self.now + self.keepalive_s

    # ---- serial reader -------------------------------------------------------------------------
    def _read_serial(self) -> bool:
        progressed = False
        while self.rx and len(self.ring) < self.cfg.bufsize and not self.killed and not self.frozen:
            nl = self.rx.find(b"\n")
            cr = self.rx.find(b"\r")
            if cr >= 0 and (nl < 0 or cr < nl):
                nl = cr
            if nl < 0:
                self.line_buf += self.rx
                self.rx.clear()
                if len(self.line_buf) > self.cfg.max_cmd_size - 1:
                    # Marlin drops the characters past MAX_CMD_SIZE; the checksum then fails.
                    del self.line_buf[self.cfg.max_cmd_size - 1:]
                return progressed
            self.line_buf += self.rx[:nl]
            del self.rx[:nl + 1]
            raw = bytes(self.line_buf[:self.cfg.max_cmd_size - 1])
            self.line_buf.clear()
            self._process_line(raw)
            progressed = True
        return progressed

    def _process_line(self, raw: bytes) -> None:
        text = raw.decode("latin-1")
        semicolon = text.find(";")
        if semicolon >= 0:
            text = text[:semicolon]
        command = text.strip()
        if not command:
            return
        npos = command.find("N")
        line_number: int | None = None
        if npos >= 0:
            is_m110 = "M110" in command
            if is_m110:
                n2 = command.find("N", 4)
                if n2 >= 0:
                    npos = n2
            digits = re.match(r"-?\d+", command[npos + 1:])
            gcode_n = int(digits.group(0)) if digits else 0
            if gcode_n != self.last_n + 1 and not is_m110:
                return self._line_error(STR_ERR_LINE_NO)
            apos = command.rfind("*")
            if apos >= 0:
                checksum = 0
                for byte in command[:apos].encode("latin-1"):
                    checksum ^= byte
                given = re.match(r"-?\d+", command[apos + 1:])
                if not given or int(given.group(0)) != checksum:
                    return self._line_error(STR_ERR_CHECKSUM_MISMATCH)
            else:
                return self._line_error(STR_ERR_NO_CHECKSUM)
            self.last_n = gcode_n
            line_number = gcode_n
            command = command[:apos]
            if command.startswith("N"):
                command = command.split(None, 1)[1] if " " in command else ""
            command = command.strip()
        elif "*" in command:
            return self._line_error(STR_ERR_NO_LINENUMBER)
        if not command:
            return
        if self.cfg.emergency_parser and re.match(r"M(108|112|410|876)\b", command):
            # Already acted on by the emergency parser; Marlin still acknowledges it.
            self.ring.append(QueuedCommand("M_EP_DONE " + command, line_number))
            return
        self.ring.append(QueuedCommand(command, line_number))

    def _line_error(self, message: str) -> None:
        self.line_errors += 1
        self._send(f"Error:{message}{self.last_n}")
        self.rx.clear()          # Marlin empties the RX buffer after a line error
        self.line_buf.clear()
        self._send(f"Resend: {self.last_n + 1}")
        self._send("ok")

    # ---- execution ---------------------------------------------------------------------------
    def _advance_head(self) -> bool:
        """Try to finish the command at the head of the ring; True when it left the ring."""
        if self.current is None:
            cmd = self.ring[0]
            if self.stuck_busy_armed:
                self.stuck_busy_armed = False
                self.current = self._stuck()
            elif cmd.text[:3] in ("G1 ", "G0 ") or cmd.text in ("G1", "G0"):
                # Fast path for moves: no generator unless the planner is full.
                if len(self.planner) < self.cfg.block_buffer_size:
                    self._queue_move(parse_words(cmd.text))
                    self._finish(cmd)
                    return True
                self.current = self._wait_for_planner_then_move(cmd.text)
            else:
                self.current = self._execute(cmd.text)
            self.current_started = self.now
            self._wait_until = INF
            self._waiting = None
        return self._resume_current()

    def _resume_current(self) -> bool:
        assert self.current is not None
        while True:
            if self._waiting is not None and not self._condition_met(self._waiting):
                self._wait_until = self._waiting[1] if self._waiting[0] == "until" else INF
                self._set_busy_timer()
                return False
            try:
                self._waiting = next(self.current)
            except StopIteration:
                break
        self.current = None
        self.busy_state = None
        self.next_keepalive = INF
        if self.killed:
            return False
        self._finish(self.ring[0])
        return True

    def _set_busy_timer(self) -> None:
        kind = self._waiting[0] if self._waiting else ""
        state = "paused for user" if kind == "user" else (None if kind == "temp" else "processing")
        if state != self.busy_state:
            self.busy_state = state
            self.next_keepalive = self.current_started + self.keepalive_s if state else INF
            if state == "paused for user":
                self.next_keepalive = self.now

    def _condition_met(self, waiting: tuple[str, float]) -> bool:
        kind, value = waiting
        if kind == "until":
            return self.now >= value
        if kind == "planner_space":
            return len(self.planner) < self.cfg.block_buffer_size
        if kind == "planner_empty":
            return not self.planner
        if kind == "temp":
            return not self.wait_for_heatup
        if kind == "user":
            return not self.wait_for_user
        return False   # "forever"

    def _finish(self, cmd: QueuedCommand) -> None:
        self.ring.popleft()
        self._record(cmd.line_number, cmd.text.removeprefix("M_EP_DONE "))
        faults = self.cfg.faults
        n = cmd.line_number
        drop = (n is not None and n in faults.drop_ok_after_lines) or (
            faults.drop_ok_rate and self.rng.random() < faults.drop_ok_rate)
        if drop:
            self.oks_dropped += 1
        elif not self._ok_already_sent:
            if self.cfg.advanced_ok:
                head = f"ok N{n}" if n is not None else "ok"
                self._send(f"{head} P{self.cfg.block_buffer_size - len(self.planner)}"
                           f" B{self.cfg.bufsize - len(self.ring)}")
            else:
                self._send("ok")
        self._ok_already_sent = False
        if n is None:
            return
        if n == faults.heater_fail_after_line:
            (self.hotend if faults.heater_fail_id == "E0" else self.bed).failed = True
        if n == faults.stuck_busy_after_line:
            self.stuck_busy_armed = True
        if n == faults.reset_after_line and self.resets == 0:
            self.pending_fault, self.frozen = "reset", True
        if n == faults.disconnect_after_line and self.resets == 0:
            self.pending_fault, self.frozen = "disconnect", True

    def _queue_move(self, words: dict[str, float]) -> None:
        if "F" in words and words["F"] > 0:
            self.feedrate = words["F"] / 60.0
        distance_sq = 0.0
        for axis in "XYZ":
            if axis in words and not math.isnan(words[axis]):
                target = words[axis] if self.absolute else self.pos[axis] + words[axis]
                distance_sq += (target - self.pos[axis]) ** 2
                self.pos[axis] = target
        e_move = 0.0
        if "E" in words and not math.isnan(words["E"]):
            target = words["E"] if self.absolute_e else self.pos["E"] + words["E"]
            e_move = abs(target - self.pos["E"])
            self.pos["E"] = target
        length = math.sqrt(distance_sq) or e_move
        if length <= 0:
            self.previous_was_move = True
            return
        self._add_block(length / self.feedrate)

    def _add_block(self, duration: float) -> None:
        now = self.now
        while self.planner and self.planner[0] <= now:
            self.planner.popleft()
        if not self.planner:
            if self.previous_was_move and self.moves:
                self.underruns += 1   # the machine stopped between two consecutive moves
            start = now
        else:
            start = max(now, self.last_block_end)
        self.last_block_end = start + duration
        self.planner.append(self.last_block_end)
        self.moves += 1
        self.previous_was_move = True

    def _wait_for_planner_then_move(self, text: str) -> Generator[tuple[str, float], None, None]:
        yield ("planner_space", 0.0)
        self._queue_move(parse_words(text))

    def _stuck(self) -> Generator[tuple[str, float], None, None]:
        while True:
            yield ("forever", 0.0)

    def _execute(self, text: str) -> Generator[tuple[str, float], None, None]:
        """Run one non-trivial command; yields the conditions it waits for."""
        if text.startswith("M_EP_DONE "):
            return
        self.previous_was_move = False
        code = text.split(None, 1)[0].upper()
        words = parse_words(text)
        if code in ("G2", "G3"):
            self.previous_was_move = True
            yield from self._arc(code, words)
        elif code == "G28":
            yield ("planner_empty", 0.0)
            yield ("until", self.now + self.cfg.home_time_s)
            axes = [a for a in "XYZ" if a in words] or list("XYZ")
            for axis in axes:
                self.pos[axis] = 0.0
            self.homed = True
        elif code == "G29":
            yield ("planner_empty", 0.0)
            yield ("until", self.now + self.cfg.bed_level_time_s)
        elif code == "G4":
            yield ("planner_empty", 0.0)
            seconds = words.get("S", 0.0) if "S" in words else words.get("P", 0.0) / 1000.0
            yield ("until", self.now + max(0.0, seconds))
        elif code == "M400":
            yield ("planner_empty", 0.0)
        elif code in ("G90", "G91"):
            self.absolute = self.absolute_e = code == "G90"
        elif code in ("M82", "M83"):
            self.absolute_e = code == "M82"
        elif code == "G92":
            for axis in "XYZE":
                if axis in words and not math.isnan(words[axis]):
                    self.pos[axis] = words[axis]
        elif code in ("M104", "M140", "M109", "M190"):
            heater = self.hotend if code in ("M104", "M109") else self.bed
            target = words.get("S", words.get("R", heater.target_c))
            if code in ("M104", "M109") and target > self.cfg.max_temp_hotend - 15:
                self._send(f"echo: E0 Max temp is {self.cfg.max_temp_hotend - 15:.0f}")
                return
            heater.set_target(target if not math.isnan(target) else 0.0, self.now)
            if code in ("M109", "M190") and heater.target_c > 0:
                yield from self._wait_for_temperature(heater, cooling_ok="R" in words)
        elif code == "M105":
            self._send("ok" + format_temperatures(self.hotend, self.bed))
            self._ok_already_sent = True
        elif code == "M155":
            self.autoreport_s = max(0.0, words.get("S", 0.0))
            self.next_autoreport = self.now + self.autoreport_s if self.autoreport_s > 0 else INF
        elif code == "M113":
            self.keepalive_s = max(1.0, words.get("S", self.keepalive_s))
        elif code == "M115":
            self._m115()
        elif code == "M114":
            p = self.pos
            self._send(f"X:{p['X']:.2f} Y:{p['Y']:.2f} Z:{p['Z']:.2f} E:{p['E']:.2f} Count X:0 Y:0 Z:0")
        elif code == "M110":
            if "N" in words and not math.isnan(words["N"]):
                self.last_n = int(words["N"])
        elif code == "M112":
            self.kill(None)
        elif code == "M410":
            self._quickstop()
        elif code in ("M0", "M1", "M600"):
            yield ("planner_empty", 0.0)
            self.wait_for_user = True
            if self.cfg.host_action_commands:
                self._send("//action:paused" if code != "M600" else "//action:prompt_begin Filament change")
                if code == "M600":
                    self._send("//action:prompt_button Continue")
                    self._send("//action:prompt_show")
            yield ("user", 0.0)
            if self.cfg.host_action_commands:
                self._send("//action:resumed")
        elif code in ("M108", "M876"):
            self.wait_for_user = self.wait_for_heatup = False
        elif code in ("M84", "M18"):
            yield ("planner_empty", 0.0)
        elif code == "M118":
            message = text[4:].strip()
            if message.startswith("A1 "):
                message = "//" + message[3:]
            elif message.startswith("E1 "):
                message = "echo:" + message[3:]
            self._send(message)
        elif code == "M303":
            yield ("until", self.now + 60.0)
        elif code in _KNOWN_SILENT or code.startswith("T"):
            pass
        else:
            self._send(f'echo:Unknown command: "{text}"')

    def _wait_for_temperature(self, heater: Heater, cooling_ok: bool) -> Generator[tuple[str, float], None, None]:
        """M109/M190: Marlin prints temperatures (with W: residency) once a second until settled."""
        self.wait_for_heatup = True
        residency_start: float | None = None
        next_report = self.now
        while self.wait_for_heatup and not self.killed:
            close = abs(heater.temp_c - heater.target_c) <= 1.0 or (cooling_ok is False and heater.temp_c >= heater.target_c)
            if close and residency_start is None:
                residency_start = self.now
            if residency_start is not None and self.now - residency_start >= 3.0:
                break
            if self.now >= next_report:
                remaining = "?" if residency_start is None else str(int(3.0 - (self.now - residency_start)))
                self._send(format_temperatures(self.hotend, self.bed) + f" W:{remaining}")
                next_report = self.now + 1.0
            yield ("until", min(next_report, self.now + 0.25))
        self.wait_for_heatup = False

    def _arc(self, code: str, words: dict[str, float]) -> Generator[tuple[str, float], None, None]:
        if "F" in words and words["F"] > 0:
            self.feedrate = words["F"] / 60.0
        start_x, start_y = self.pos["X"], self.pos["Y"]
        end_x = words.get("X", start_x) if self.absolute else start_x + words.get("X", 0.0)
        end_y = words.get("Y", start_y) if self.absolute else start_y + words.get("Y", 0.0)
        cx, cy = start_x + words.get("I", 0.0), start_y + words.get("J", 0.0)
        radius = math.hypot(start_x - cx, start_y - cy)
        a0 = math.atan2(start_y - cy, start_x - cx)
        a1 = math.atan2(end_y - cy, end_x - cx)
        sweep = (a1 - a0) % (2 * math.pi) if code == "G3" else (a0 - a1) % (2 * math.pi)
        if sweep == 0:
            sweep = 2 * math.pi
        length = radius * sweep
        segments = max(1, int(length / 1.0))   # MM_PER_ARC_SEGMENT 1 mm
        for _ in range(segments):
            yield ("planner_space", 0.0)
            self._add_block(length / segments / self.feedrate)
        self.pos["X"], self.pos["Y"] = end_x, end_y
        if "E" in words:
            self.pos["E"] = words["E"] if self.absolute_e else self.pos["E"] + words["E"]

    def _m115(self) -> None:
        self._send(f"FIRMWARE_NAME:Marlin {VERSION} (Jul 13 2023 00:00:00) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin"
                   " PROTOCOL_VERSION:1.0 MACHINE_TYPE:labctl simulated printer EXTRUDER_COUNT:1"
                   " UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff")
        dynamic = {"AUTOREPORT_TEMP": self.cfg.autoreport_temp, "EMERGENCY_PARSER": self.cfg.emergency_parser,
                   "HOST_ACTION_COMMANDS": self.cfg.host_action_commands,
                   "PROMPT_SUPPORT": self.cfg.host_action_commands,
                   "THERMAL_PROTECTION": self.cfg.thermal_protection, "ADVANCED_OK": self.cfg.advanced_ok}
        for name, fixed in CAPABILITIES:
            value = dynamic[name] if fixed is None else fixed
            self._send(f"Cap:{name}:{int(bool(value))}")

    # ---- reporting -----------------------------------------------------------------------------
    def temperatures(self) -> dict[str, float]:
        return {"hotend": round(self.hotend.temp_c, 2), "hotend_target": self.hotend.target_c,
                "bed": round(self.bed.temp_c, 2), "bed_target": self.bed.target_c}


_KNOWN_SILENT = {
    "G20", "G21", "G53", "G54", "G80", "M17", "M73", "M75", "M76", "M77", "M106", "M107", "M117", "M140",
    "M201", "M203", "M204", "M205", "M206", "M220", "M221", "M500", "M501", "M502", "M503", "M900", "M997",
    "M862.3", "M862.1", "M907", "M211", "M420", "M851", "M31", "M92", "M486",
}
