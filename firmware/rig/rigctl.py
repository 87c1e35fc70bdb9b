# Control logic of the labctl tensile rig: states, commands and safety.
#
# Hardware-independent: everything physical goes through `hw` (hw_rp2040.HW on the board, the
# simulator's hardware model on a PC). Must stay MicroPython-compatible: no dataclasses, no
# typing at run time, no f-strings; tests compile this file with mpy-cross.
#
# The hardware layer provides:
#   micros(), millis()                 monotonic clocks (never wrap)
#   host_millis()                      clock for the host watchdog (the host's time frame)
#   read_line() -> str or None         one complete command line from the host, if any
#   write(text)                        send text to the host
#   adc_read() -> int or None          the next load-cell ADC sample, if a new one is ready
#   adc_rate() -> samples per second
#   motor_run(rate, target)            step at `rate` steps/s (signed); stop exactly at `target` (or None)
#   motor_stop(), motor_position() -> steps, motor_rate() -> steps/s now (0 when stopped)
#   endstop_min(), endstop_max() -> bool
#   load_config() -> dict, save_config(dict)

try:
    from . import rigproto  # inside the simulator (a CPython package)
except ImportError:
    import rigproto  # on the board, files sit side by side

NAME = "labctl-rig"
VERSION = "1.0.0"
PROTO = 1

IDLE = "idle"
JOG = "jog"
PRELOAD = "preload"
TEST = "test"
HOLD = "hold"
FAULT = "fault"
MOVING = (JOG, PRELOAD, TEST)
STREAMING = (JOG, PRELOAD, TEST, HOLD)

GRAVITY = 9.80665

# Persistent settings (calibration and safety); the board keeps them in flash.
DEFAULTS = {
    "scale": 1000.0,     # ADC counts per newton (factory value of the load cell)
    "zero": 0,           # ADC counts at zero force (tare)
    "calmass": 0.0,      # grams used for the last calibration; 0 = factory scale
    "spm": 3200,         # steps per mm of crosshead travel
    "fmax": 2000.0,      # force limit, N (absolute)
    "nover": 3,          # consecutive over-limit samples that trip the force limit
    "tmin": -20.0,       # soft travel limits, mm from the power-on position
    "tmax": 150.0,
    "vmax": 200.0,       # fastest crosshead speed allowed, mm/min
    "wdt": 2000,         # host watchdog, ms of host silence while the crosshead moves
}

# Test parameters START accepts, their defaults and their lowest / highest allowed values.
TEST_PARAMS = {
    "speed": (5.0, 0.01, None),      # mm/min after preload
    "preload": (0.0, 0.0, None),     # N; 0 skips the preload phase
    "pspeed": (1.0, 0.01, None),     # mm/min while seeking the preload
    "pmax": (10.0, 0.0, None),       # mm of travel allowed to find the preload
    "speed2": (0.0, 0.0, None),      # mm/min after `switch` mm of extension; 0 = no change
    "switch": (0.0, 0.0, None),      # mm of extension (from preload) at which speed2 starts
    "arm": (10.0, 0.0, None),        # N of peak force that arms break detection
    "drop": (0.2, 0.0, 1.0),         # break when force <= drop * peak (0.2 = an 80 % drop)
    "maxext": (100.0, 0.0, None),    # mm of extension that ends the test
}

TEST_ORDER = ("speed", "preload", "pspeed", "pmax", "speed2", "switch", "arm", "drop", "maxext")


class CommandError(Exception):
    pass


def _number(opts, key, default, low, high):
    if key not in opts:
        return default
    try:
        value = float(opts[key])
    except ValueError:
        raise CommandError("%s=%s is not a number" % (key, opts[key]))
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        raise CommandError("%s=%s out of range [%s, %s]" % (key, opts[key], low, high))
    return value


class Rig:
    def __init__(self, hw):
        self.hw = hw
        self.cfg = dict(DEFAULTS)
        stored = hw.load_config() or {}
        for key in DEFAULTS:
            if key in stored:
                self.cfg[key] = type(DEFAULTS[key])(stored[key])
        self.state = IDLE
        self.fault = ""
        self.seq = 0
        self.t0 = hw.micros()
        self.host_seen = hw.host_millis()
        self.raw = 0
        self.force = 0.0
        self.over = 0
        self.speed = 5.0
        self.job = None          # pending TARE / CAL: [verb, samples wanted, sum, count, grams]
        self.test = None         # parameters of the running test
        self.origin = 0          # steps at the start of the test (after preload)
        self.peak = 0.0
        self.armed = False
        self.hold_rate = 0.0
        self.hold_from = IDLE
        self.hw.write(rigproto.seal("E BOOT " + rigproto.fields(
            (("name", NAME), ("version", VERSION), ("proto", PROTO)))))

    # ----- main loop -------------------------------------------------------------------------
    def poll(self):
        """One pass of the main loop: commands, one ADC sample, motion and safety checks."""
        line = self.hw.read_line()
        while line is not None:
            self.host_seen = self.hw.host_millis()
            self.handle(line)
            line = self.hw.read_line()
        raw = self.hw.adc_read()
        if raw is not None:
            self.sample(raw)
        self.check_motion()

    def handle(self, line):
        verb, args, opts = rigproto.parse_command(line)
        if not verb:
            return
        handler = getattr(self, "cmd_" + verb.lower(), None)
        if handler is None:
            self.err(verb, "unknown command")
            return
        if self.job is not None and verb not in ("STOP", "ESTOP", "STATUS", "PING", "ID", "NOTE"):
            self.err(verb, "busy with " + self.job[0])
            return
        try:
            handler(args, opts)
        except CommandError as exc:
            self.err(verb, str(exc.args[0]))

    # ----- output ------------------------------------------------------------------------------
    def ok(self, verb, pairs=()):
        self.hw.write(rigproto.seal(("OK %s %s" % (verb, rigproto.fields(pairs))).strip()))

    def err(self, verb, message):
        self.hw.write(rigproto.seal("ERR %s msg=%s" % (verb, message.replace(" ", "_"))))

    def event(self, name, pairs=()):
        self.hw.write(rigproto.seal(("E %s %s" % (name, rigproto.fields(pairs))).strip()))

    def mm(self, steps):
        return steps / self.cfg["spm"]

    def rate(self, mm_per_min):
        return mm_per_min * self.cfg["spm"] / 60.0

    # ----- samples -----------------------------------------------------------------------------
    def sample(self, raw):
        self.raw = raw
        force = (raw - self.cfg["zero"]) / self.cfg["scale"]
        self.force = force
        if self.job is not None:
            self.accumulate(raw)
        position = self.hw.motor_position()
        if self.state in STREAMING:
            # The sample goes out first, so the host sees the very samples a safety stop acted on.
            self.hw.write(rigproto.frame(self.seq, self.hw.micros() - self.t0, position, raw, force))
            self.seq += 1
        # Over the limit counts while a test runs or the crosshead moves so as to load the cell further;
        # after a RESET the operator may still jog the other way to unload it.
        loading = self.state in (PRELOAD, TEST, HOLD) or self.hw.motor_rate() * force > 0
        if abs(force) > self.cfg["fmax"] and loading:
            self.over += 1
            if self.over >= self.cfg["nover"] and self.state != FAULT:
                self.trip("overforce", force)
                return
        else:
            self.over = 0
        if self.state in STREAMING:
            if self.state == PRELOAD:
                self.preload_step(position, force)
            elif self.state == TEST:
                self.test_step(position, force)

    def preload_step(self, position, force):
        test = self.test
        if force >= test["preload"]:
            self.origin = position
            self.event("PRELOADED", (("steps", position), ("force", force)))
            self.begin_test()
        elif abs(self.mm(position - test["start"])) > test["pmax"]:
            self.end("preload_not_reached")

    def begin_test(self):
        test = self.test
        self.state = TEST
        self.peak = 0.0
        self.armed = False
        target = self.origin + int(test["maxext"] * self.cfg["spm"])
        self.hw.motor_run(self.rate(test["speed"]), target)

    def test_step(self, position, force):
        test = self.test
        if force > self.peak:
            self.peak = force
        if not self.armed and self.peak >= test["arm"] and test["arm"] > 0:
            self.armed = True
        if self.armed and force <= test["drop"] * self.peak:
            self.end("break")
            return
        extension = self.mm(position - self.origin)
        if extension >= test["maxext"]:
            self.end("max_extension")
            return
        if test["speed2"] > 0 and not test.get("switched") and extension >= test["switch"]:
            test["switched"] = True
            target = self.origin + int(test["maxext"] * self.cfg["spm"])
            self.hw.motor_run(self.rate(test["speed2"]), target)
            self.event("SPEED", (("speed", test["speed2"]), ("steps", position)))

    def end(self, reason):
        self.hw.motor_stop()
        self.state = IDLE
        self.event("END", (("reason", reason), ("peak", self.peak), ("steps", self.hw.motor_position()),
                           ("seq", self.seq)))
        self.test = None

    def trip(self, reason, value=0.0):
        """Stop the crosshead and latch a fault until RESET."""
        self.hw.motor_stop()
        was = self.state
        self.state = FAULT
        self.fault = reason
        self.test = None
        self.job = None
        self.event("FAULT", (("reason", reason), ("value", value), ("state", was),
                             ("steps", self.hw.motor_position()), ("seq", self.seq)))

    def accumulate(self, raw):
        job = self.job
        job[2] += raw
        job[3] += 1
        if job[3] < job[1]:
            return
        mean = job[2] / job[3]
        self.job = None
        if job[0] == "TARE":
            self.cfg["zero"] = int(round(mean))
            self.hw.save_config(self.cfg)
            self.ok("TARE", (("zero", self.cfg["zero"]), ("samples", job[3])))
            return
        counts = mean - self.cfg["zero"]
        newtons = job[4] / 1000.0 * GRAVITY
        if abs(counts) < 100:
            self.err("CAL", "no_load_seen:_%d_counts_over_zero" % int(counts))
            return
        self.cfg["scale"] = counts / newtons
        self.cfg["calmass"] = job[4]
        self.hw.save_config(self.cfg)
        self.ok("CAL", (("scale", self.cfg["scale"]), ("mass", job[4]), ("samples", job[3])))

    # ----- motion and safety -------------------------------------------------------------------
    def check_motion(self):
        if self.state not in MOVING:
            return
        rate = self.hw.motor_rate()
        if self.hw.host_millis() - self.host_seen > self.cfg["wdt"]:
            self.trip("watchdog", float(self.hw.host_millis() - self.host_seen))
            return
        if rate > 0 and self.hw.endstop_max():
            self.trip("endstop_max")
            return
        if rate < 0 and self.hw.endstop_min():
            self.trip("endstop_min")
            return
        position_mm = self.mm(self.hw.motor_position())
        if (rate > 0 and position_mm >= self.cfg["tmax"]) or (rate < 0 and position_mm <= self.cfg["tmin"]):
            self.trip("travel_limit", position_mm)
            return
        if self.state == JOG and rate == 0:
            self.state = IDLE
            self.event("JOGGED", (("steps", self.hw.motor_position()), ("seq", self.seq)))
        elif self.state == TEST and rate == 0 and self.test is not None:
            self.end("max_extension")

    def check_speed(self, mm_per_min):
        if abs(mm_per_min) > self.cfg["vmax"]:
            raise CommandError("speed %g mm/min over the limit of %g" % (mm_per_min, self.cfg["vmax"]))

    def require(self, *states):
        if self.state not in states:
            if self.state == FAULT:
                raise CommandError("fault " + self.fault + "; send RESET")
            raise CommandError("not allowed in state " + self.state)

    # ----- commands ----------------------------------------------------------------------------
    def cmd_id(self, args, opts):
        cfg = self.cfg
        self.ok("ID", (("name", NAME), ("version", VERSION), ("proto", PROTO), ("scale", cfg["scale"]),
                       ("zero", cfg["zero"]), ("calmass", cfg["calmass"]), ("spm", cfg["spm"]),
                       ("adc_hz", self.hw.adc_rate())))

    def cmd_ping(self, args, opts):
        self.ok("PING")

    def cmd_note(self, args, opts):
        # Host annotations (e.g. which specimen is gripped) echoed into the rig's log; no effect on control.
        self.ok("NOTE", sorted(opts.items()))

    def cmd_status(self, args, opts):
        self.ok("STATUS", (("state", self.state), ("fault", self.fault or "none"),
                           ("steps", self.hw.motor_position()), ("force", self.force), ("raw", self.raw),
                           ("peak", self.peak), ("seq", self.seq), ("speed", self.speed),
                           ("emin", int(self.hw.endstop_min())), ("emax", int(self.hw.endstop_max()))))

    def cmd_limits(self, args, opts):
        cfg = self.cfg
        new = {}
        for key, low in (("fmax", 0.001), ("nover", 1), ("tmin", None), ("tmax", None), ("vmax", 0.01),
                         ("wdt", 50)):
            value = _number(opts, key, cfg[key], low, None)
            new[key] = type(DEFAULTS[key])(value)
        if new["tmin"] >= new["tmax"]:
            raise CommandError("tmin must be below tmax")
        for key in opts:
            if key not in new:
                raise CommandError("unknown limit " + key)
        cfg.update(new)
        self.hw.save_config(cfg)
        self.ok("LIMITS", [(key, cfg[key]) for key in ("fmax", "nover", "tmin", "tmax", "vmax", "wdt")])

    def cmd_tare(self, args, opts):
        self.require(IDLE, HOLD)
        samples = int(_number({"n": args[0]} if args else {}, "n", 32, 1, 100000))
        self.job = ["TARE", samples, 0, 0, 0.0]

    def cmd_cal(self, args, opts):
        self.require(IDLE, HOLD)
        if not args:
            raise CommandError("usage: CAL <grams> [samples]")
        grams = _number({"g": args[0]}, "g", 0.0, 0.001, None)
        samples = int(_number({"n": args[1]} if len(args) > 1 else {}, "n", 32, 1, 100000))
        self.job = ["CAL", samples, 0, 0, grams]

    def cmd_speed(self, args, opts):
        if not args:
            raise CommandError("usage: SPEED <mm/min>")
        speed = _number({"v": args[0]}, "v", 0.0, 0.01, None)
        self.check_speed(speed)
        self.speed = speed
        self.ok("SPEED", (("speed", speed),))

    def cmd_start(self, args, opts):
        self.require(IDLE)
        test = {}
        for key in opts:
            if key not in TEST_PARAMS:
                raise CommandError("unknown test parameter " + key)
        for key in TEST_ORDER:
            default, low, high = TEST_PARAMS[key]
            if key == "speed":
                default = self.speed
            test[key] = _number(opts, key, default, low, high)
        self.check_speed(test["speed"])
        self.check_speed(test["pspeed"])
        self.check_speed(test["speed2"])
        if self.hw.endstop_max():
            raise CommandError("upper endstop is pressed")
        position = self.hw.motor_position()
        test["start"] = position
        self.test = test
        self.over = 0
        self.peak = 0.0
        self.ok("START", [("seq", self.seq), ("steps", position)] + [(key, test[key]) for key in TEST_ORDER])
        if test["preload"] > 0:
            self.state = PRELOAD
            self.hw.motor_run(self.rate(test["pspeed"]), position + int(test["pmax"] * self.cfg["spm"]) + 1)
        else:
            self.origin = position
            self.begin_test()

    def cmd_stop(self, args, opts):
        self.job = None
        if self.state in (PRELOAD, TEST, HOLD):
            self.ok("STOP", (("steps", self.hw.motor_position()),))
            self.end("stop")
            return
        self.hw.motor_stop()
        if self.state == JOG:
            self.state = IDLE
        self.ok("STOP", (("steps", self.hw.motor_position()),))

    def cmd_hold(self, args, opts):
        self.require(TEST, PRELOAD)
        self.hold_rate = self.hw.motor_rate()
        self.hold_from = self.state
        self.hw.motor_stop()
        self.state = HOLD
        self.ok("HOLD", (("steps", self.hw.motor_position()),))

    def cmd_resume(self, args, opts):
        self.require(HOLD)
        self.state = self.hold_from
        target = self.origin + int(self.test["maxext"] * self.cfg["spm"])
        if self.state == PRELOAD:
            target = self.test["start"] + int(self.test["pmax"] * self.cfg["spm"]) + 1
        self.hw.motor_run(self.hold_rate, target)
        self.ok("RESUME", (("steps", self.hw.motor_position()),))

    def cmd_estop(self, args, opts):
        self.trip("estop")
        self.ok("ESTOP", (("steps", self.hw.motor_position()),))

    def cmd_reset(self, args, opts):
        self.hw.motor_stop()
        self.state = IDLE
        self.fault = ""
        self.over = 0
        self.ok("RESET")

    def cmd_jog(self, args, opts):
        self.require(IDLE)
        if not args:
            raise CommandError("usage: JOG <mm> [mm/min]")
        distance = _number({"d": args[0]}, "d", 0.0, None, None)
        speed = _number({"v": args[1]} if len(args) > 1 else {}, "v", self.speed, 0.01, None)
        self.check_speed(speed)
        position = self.hw.motor_position()
        target = position + int(round(distance * self.cfg["spm"]))
        if self.mm(target) > self.cfg["tmax"] or self.mm(target) < self.cfg["tmin"]:
            raise CommandError("target %.3f mm outside travel limits" % self.mm(target))
        if (distance > 0 and self.hw.endstop_max()) or (distance < 0 and self.hw.endstop_min()):
            raise CommandError("endstop pressed in that direction")
        if target == position:
            self.ok("JOG", (("steps", position),))
            self.event("JOGGED", (("steps", position), ("seq", self.seq)))
            return
        self.state = JOG
        rate = self.rate(speed)
        self.hw.motor_run(rate if distance > 0 else -rate, target)
        self.ok("JOG", (("steps", position), ("target", target), ("seq", self.seq)))
