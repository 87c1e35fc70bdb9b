"""Commands on the bus itself: serve, devices, estop."""

from __future__ import annotations

import asyncio
import signal
from typing import Optional

import typer
from rich.table import Table

from ..bus import BusError, EStop, connect, parse_broker_url, topics
from ..registry import list_devices
from .app import app
from .common import EXIT_BAD_INPUT, EXIT_UNREACHABLE, BrokerOption, JsonOption, console, fail, print_json, run


@app.command()
def serve(
    broker: Optional[str] = typer.Option(
        None, "--broker", envvar="LABCTL_BROKER",
        help="Use this external broker (mqtt://[user:pass@]host:port) instead of starting the embedded one."),
    listen: str = typer.Option("127.0.0.1:1883", "--listen", help="host:port for the embedded broker."),
) -> None:
    """Run the controller: the embedded MQTT broker (amqtt) unless --broker names an external one.

    Example: labctl serve --listen 0.0.0.0:1883
    """
    from ..bus.broker import EmbeddedBroker

    async def _serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if broker:
            url = parse_broker_url(broker)
            async with connect(url, client_id="labctl-controller"):
                console.print(f"controller connected to {url}")
                await stop.wait()
            return
        host, _, port = listen.rpartition(":")
        async with EmbeddedBroker(host or "127.0.0.1", int(port)) as embedded:
            console.print(f"embedded MQTT broker listening on {embedded.url}; Ctrl-C stops it")
            await stop.wait()

    try:
        run(_serve())
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except (BusError, RuntimeError) as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None


@app.command()
def devices(broker: Optional[str] = BrokerOption, json_out: bool = JsonOption,
            all_: bool = typer.Option(False, "--all", help="Also list devices that are offline.")) -> None:
    """List the devices whose hosts have announced themselves on the broker.

    Example: labctl devices --broker mqtt://lab-pi:1883 --json
    """

    async def _list():
        async with connect(broker, client_id=None) as bus:
            return await list_devices(bus)

    try:
        states = run(_list())
    except ValueError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except BusError as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None
    if not all_:
        states = [s for s in states if s.status != "offline"]
    if json_out:
        print_json([{"id": s.device.id, "kind": s.device.kind, "driver": s.device.driver, "status": s.status,
                     "simulated": s.device.simulated, "capabilities": s.device.capabilities,
                     "limits": s.device.limits, "firmware": s.device.firmware, "detail": s.detail} for s in states])
        return
    table = Table("id", "kind", "driver", "status", "simulated", "firmware")
    for s in states:
        table.add_row(s.device.id, s.device.kind, s.device.driver, s.status, "yes" if s.device.simulated else "no",
                      s.device.firmware or "")
    console.print(table if states else "no devices online")


@app.command()
def estop(broker: Optional[str] = BrokerOption,
          reason: str = typer.Option("operator emergency stop", "--reason", help="Recorded with the stop.")) -> None:
    """Emergency stop: every device host stops its device at once. Works with the controller down.

    Example: labctl estop --reason "smoke from printer-2"
    """

    async def _estop() -> None:
        async with connect(broker, client_id=None, connect_timeout=3.0) as bus:
            await bus.publish(topics.ESTOP, EStop(reason=reason), qos=1)

    try:
        run(_estop())
    except ValueError as exc:
        raise fail(f"emergency stop NOT sent: {exc}", EXIT_BAD_INPUT) from None
    except BusError as exc:
        raise fail(f"emergency stop NOT sent: {exc}", EXIT_UNREACHABLE) from None
    console.print("[bold red]emergency stop sent[/bold red]")
