# Entry point on the board: run the rig's control loop forever.
# A hardware watchdog resets the board (and so de-energises the stepper driver, EN pulled high
# by its pull-up) if the loop ever hangs.

import machine

import hw_rp2040
import rigctl

hw = hw_rp2040.HW()
rig = rigctl.Rig(hw)
wdt = machine.WDT(timeout=2000)
while True:
    rig.poll()
    wdt.feed()
