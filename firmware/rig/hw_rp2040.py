# Hardware layer of the labctl tensile rig on an RP2040 board (Raspberry Pi Pico class).
#
# Wiring (change PINS to match your board):
#   ADS1256 24-bit ADC on SPI0 (SCK 18, MOSI 19, MISO 16, CS 17, DRDY 20, RESET 21), load cell on
#   AIN0/AIN1, PGA 64, 1000 samples/s;  stepper driver STEP 2, DIR 3, EN 4 (active low);
#   endstops on 14 (lower) and 15 (upper), switches to ground (active low, internal pull-ups).
# The host link is the USB serial port (sys.stdin / sys.stdout), as mpremote uses it.

import json
import select
import sys
import time

import machine

PINS = {"sck": 18, "mosi": 19, "miso": 16, "cs": 17, "drdy": 20, "adc_reset": 21,
        "step": 2, "dir": 3, "en": 4, "endstop_min": 14, "endstop_max": 15}
CONFIG_FILE = "rig_config.json"

# ADS1256 register values: DRATE 0xA1 = 1000 SPS; ADCON 0x06 = PGA 64; MUX 0x01 = AIN0 - AIN1.
_ADS_DRATE = 0xA1
_ADS_RATE = 1000
_ADS_PGA = 0x06
_ADS_MUX = 0x01


class HW:
    def __init__(self):
        self._us = 0
        self._last_us = time.ticks_us()
        self._line = ""
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._setup_adc()
        self._step = machine.Pin(PINS["step"], machine.Pin.OUT, value=0)
        self._dir = machine.Pin(PINS["dir"], machine.Pin.OUT, value=0)
        self._en = machine.Pin(PINS["en"], machine.Pin.OUT, value=1)
        self._emin = machine.Pin(PINS["endstop_min"], machine.Pin.IN, machine.Pin.PULL_UP)
        self._emax = machine.Pin(PINS["endstop_max"], machine.Pin.IN, machine.Pin.PULL_UP)
        self._timer = machine.Timer()
        self._position = 0
        self._direction = 1
        self._target = None
        self._rate = 0.0

    # ----- clocks ------------------------------------------------------------------------------
    def micros(self):
        now = time.ticks_us()
        self._us += time.ticks_diff(now, self._last_us)
        self._last_us = now
        return self._us

    def millis(self):
        return self.micros() // 1000

    def host_millis(self):
        return self.millis()

    # ----- host link ---------------------------------------------------------------------------
    def read_line(self):
        while self._poll.poll(0):
            ch = sys.stdin.read(1)
            if ch == "\n" or ch == "\r":
                if self._line:
                    line = self._line
                    self._line = ""
                    return line
            elif len(self._line) < 200:
                self._line += ch
        return None

    def write(self, text):
        sys.stdout.write(text)

    # ----- load cell (ADS1256) -----------------------------------------------------------------
    def _setup_adc(self):
        self._cs = machine.Pin(PINS["cs"], machine.Pin.OUT, value=1)
        self._drdy = machine.Pin(PINS["drdy"], machine.Pin.IN)
        reset = machine.Pin(PINS["adc_reset"], machine.Pin.OUT, value=0)
        time.sleep_ms(1)
        reset.value(1)
        time.sleep_ms(50)
        self._spi = machine.SPI(0, baudrate=1_000_000, polarity=0, phase=1,
                                sck=machine.Pin(PINS["sck"]), mosi=machine.Pin(PINS["mosi"]),
                                miso=machine.Pin(PINS["miso"]))
        self._cs.value(0)
        self._spi.write(bytes((0x50 | 0x01, 0x00, _ADS_MUX)))       # WREG MUX
        self._spi.write(bytes((0x50 | 0x02, 0x00, _ADS_PGA)))       # WREG ADCON
        self._spi.write(bytes((0x50 | 0x03, 0x00, _ADS_DRATE)))     # WREG DRATE
        self._spi.write(b"\xf0")                                     # SELFCAL
        time.sleep_ms(400)
        self._spi.write(b"\x03")                                     # RDATAC: continuous read
        time.sleep_us(10)
        self._cs.value(1)
        self._buf = bytearray(3)

    def adc_read(self):
        if self._drdy.value():
            return None
        self._cs.value(0)
        self._spi.readinto(self._buf)
        self._cs.value(1)
        value = (self._buf[0] << 16) | (self._buf[1] << 8) | self._buf[2]
        if value & 0x800000:
            value -= 0x1000000
        return value

    def adc_rate(self):
        return _ADS_RATE

    # ----- stepper -----------------------------------------------------------------------------
    def _tick(self, timer):
        if self._target is not None and self._position == self._target:
            self.motor_stop()
            return
        self._step.value(1)
        self._position += self._direction
        self._step.value(0)

    def motor_run(self, rate, target):
        self._timer.deinit()
        if rate == 0:
            self._rate = 0.0
            return
        self._direction = 1 if rate > 0 else -1
        self._dir.value(1 if rate > 0 else 0)
        self._target = target
        self._rate = rate
        self._en.value(0)
        self._timer.init(freq=abs(rate), mode=machine.Timer.PERIODIC, callback=self._tick)

    def motor_stop(self):
        self._timer.deinit()
        self._rate = 0.0
        self._target = None

    def motor_position(self):
        return self._position

    def motor_rate(self):
        return self._rate

    def endstop_min(self):
        return self._emin.value() == 0

    def endstop_max(self):
        return self._emax.value() == 0

    # ----- settings in flash -------------------------------------------------------------------
    def load_config(self):
        try:
            with open(CONFIG_FILE) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save_config(self, cfg):
        with open(CONFIG_FILE, "w") as f:
            json.dump(cfg, f)
