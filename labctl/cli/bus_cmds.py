"""Commands on the bus itself: serve, devices, estop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..bus import BusError, EStop, connect, parse_broker_url, topics
from .app import app
from .common import (
    EXIT_BAD_INPUT, EXIT_UNREACHABLE, BrokerOption, JsonOption, console, fail, fetch_device_states, print_json, run,
    run_on_lab,
)


@app.command()
def serve(
    config: Optional[Path] = typer.Option(None, "--config", help="Lab configuration (TOML): devices, broker, storage."),
    sim: bool = typer.Option(False, "--sim", help="Start a whole simulated lab: printers, a liquid handler, a rig."),
    printers: int = typer.Option(3, "--printers", min=1, max=20, help="Simulated printers (with --sim)."),
    broker: Optional[str] = typer.Option(
        None, "--broker", envvar="LABCTL_BROKER",
        help="Use this external broker (mqtt://[user:pass@]host:port) instead of starting the embedded one."),
    listen: str = typer.Option("127.0.0.1:1883", "--listen", help="host:port for the embedded broker."),
    workdir: Optional[Path] = typer.Option(None, "--workdir",
                                           help="Job store, results and exports (default: the config's storage.dir, "
                                                "else ./labctl-data)."),
    mcp_listen: str = typer.Option("127.0.0.1:8765", "--mcp-listen", help="host:port of the MCP HTTP endpoint."),
    tokens: Optional[Path] = typer.Option(None, "--tokens", envvar="LABCTL_MCP_TOKENS",
                                          help="Agent tokens (JSON) for the MCP HTTP endpoint; without it the "
                                               "endpoint is not started."),
) -> None:
    """Run the controller: broker, device hosts, job engine and the agents' MCP HTTP endpoint.

    Without --config or --sim it runs the broker only (device hosts then join from other machines).

    Example: labctl serve --sim --tokens agents.json
    """
    from ..bus.broker import EmbeddedBroker
    from ..config import ConfigError, LabConfig, load_config

    try:
        lab_config = load_config(config) if config else LabConfig()
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    broker = broker or lab_config.broker.url
    if listen == "127.0.0.1:1883":  # not given on the command line: the config's (same default)
        listen = lab_config.broker.listen
    data_dir = workdir or lab_config.storage.dir

    async def _serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            if broker:
                url = broker  # as given: str(BrokerURL) hides the password
                console.print(f"using the broker at {parse_broker_url(broker)}")
            else:
                host, _, port = listen.rpartition(":")
                embedded = await stack.enter_async_context(EmbeddedBroker(host or "127.0.0.1", int(port)))
                url = str(embedded.url)
                console.print(f"embedded MQTT broker listening on {embedded.url}")
            if sim or lab_config.devices:
                from ..lab import Lab

                lab = Lab.simulated(data_dir, printers=printers, bus_url=url) if sim else \
                    Lab.from_config(lab_config, bus_url=url)
                await stack.enter_async_context(lab)
                names = ", ".join(d.info.id for d in lab.devices)
                console.print(f"devices online: {names}; job store {data_dir / 'labctl.db'}")
                if tokens:
                    await stack.enter_async_context(_mcp_http(lab.service, tokens, mcp_listen))
                    console.print(f"MCP endpoint (streamable HTTP): http://{mcp_listen}/mcp")
            console.print("ready; Ctrl-C stops")
            sys.stdout.flush()  # supervisors and scripts wait for this line on a pipe
            await stop.wait()

    try:
        run(_serve())
    except (ValueError, ConfigError) as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    except (BusError, RuntimeError, OSError) as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None


@contextlib.asynccontextmanager
async def _mcp_http(service, tokens_file: Path, listen_at: str):
    """The MCP streamable-HTTP app on uvicorn, in this event loop (uvicorn runs the app's lifespan)."""
    import uvicorn

    from ..agents.mcp_server import AgentTokens, build_http_app

    host, _, port = listen_at.rpartition(":")
    app_ = build_http_app(service, AgentTokens.from_file(tokens_file), public_url=f"http://{listen_at}")
    server = uvicorn.Server(uvicorn.Config(app_, host=host or "127.0.0.1", port=int(port), log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"the MCP endpoint could not listen on {listen_at}")
        await asyncio.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


@app.command()
def devices(broker: Optional[str] = BrokerOption, json_out: bool = JsonOption,
            all_: bool = typer.Option(False, "--all", help="Also list devices that are offline.")) -> None:
    """List the devices whose hosts have announced themselves on the broker.

    Example: labctl devices --broker mqtt://lab-pi:1883 --json
    """

    states = run_on_lab(fetch_device_states(broker))
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

    run_on_lab(_estop(), what="emergency stop NOT sent")
    console.print("[bold red]emergency stop sent[/bold red]")
