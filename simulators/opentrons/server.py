"""The Opentrons robot HTTP API (port 31950 on a robot), served by starlette over a SimulatedRobot.

Routes and JSON shapes follow the robot server: every request needs an `Opentrons-Version`
header; resources come wrapped in {"data": ...}; failures are {"errors": [{"id", "title",
"detail", "errorCode"}]}. The one addition is /labctl-sim/*, the simulator's control plane
(inject a fault), which a real robot does not have.

    async with OpentronsSimulator(speed=20) as sim:
        print(sim.url)            # http://127.0.0.1:PORT
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import hashlib
import socket
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .robot import ActionNotAllowed, Analyzer, Fault, SimulatedRobot

API_VERSION = "4"
DEFAULT_PORT = 31950
MAX_UPLOAD_BYTES = 5 * 1024 * 1024


def error_response(status: int, error_id: str, title: str, detail: str, code: str = "4000") -> JSONResponse:
    return JSONResponse({"errors": [{"id": error_id, "title": title, "detail": detail, "errorCode": code}]},
                        status_code=status)


class _VersionHeader(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Any:
        if "opentrons-version" not in request.headers:
            return error_response(400, "OpentronsVersionHeaderMissing", "Missing header",
                                  "Every request to the robot needs an 'Opentrons-Version' header, e.g. '*' or 4.")
        response = await call_next(request)
        response.headers["Opentrons-Version"] = API_VERSION
        return response


def create_app(robot: SimulatedRobot, upload_dir: Path) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"name": robot.name, "robot_model": robot.robot_model, "api_version": "9.0.0",
                             "fw_version": "labctl simulator", "board_revision": "sim", "logs": [],
                             "system_version": "labctl-sim", "robot_serial": f"SIM-{robot.name}",
                             "links": {"apiLog": "/logs/api.log", "serialLog": "/logs/serial.log"}})

    async def upload_protocol(request: Request) -> JSONResponse:
        form = await request.form(max_files=8)
        files = form.getlist("files")
        if not files:
            return error_response(422, "InvalidRequest", "No files", "Upload the protocol as multipart field 'files'.")
        upload = files[0]
        data = await upload.read()  # type: ignore[union-attr]
        name = Path(getattr(upload, "filename", "") or "protocol.py").name
        if len(data) > MAX_UPLOAD_BYTES:
            return error_response(413, "ProtocolFilesTooLarge", "Too large", f"{name} is {len(data)} bytes")
        if not name.endswith(".py"):
            return error_response(422, "ProtocolFilesInvalid", "Unsupported protocol",
                                  f"{name}: this simulator analyses Python protocols (.py) only")
        robot_type = declared_robot_type(data)
        if robot_type != robot.robot_model:
            return error_response(422, "ProtocolRobotTypeMismatch", "Protocol For Different Robot Type",
                                  f"{name} is for {robot_type}; this robot is {robot.robot_model}")
        folder = Path(tempfile.mkdtemp(prefix="proto-", dir=upload_dir))
        path = folder / name
        path.write_bytes(data)
        protocol = robot.add_protocol(name, path)
        return JSONResponse({"data": protocol.resource()}, status_code=201)

    def _protocol(request: Request):
        return robot.protocols.get(request.path_params["protocol_id"])

    async def get_protocols(request: Request) -> JSONResponse:
        return JSONResponse({"data": [p.resource() for p in robot.protocols.values()],
                             "meta": {"cursor": 0, "totalLength": len(robot.protocols)}})

    async def get_protocol(request: Request) -> JSONResponse:
        protocol = _protocol(request)
        if protocol is None:
            return error_response(404, "ProtocolNotFound", "Protocol Not Found",
                                  f"Protocol {request.path_params['protocol_id']} was not found.")
        return JSONResponse({"data": protocol.resource()})

    async def get_analyses(request: Request) -> JSONResponse:
        protocol = _protocol(request)
        if protocol is None:
            return error_response(404, "ProtocolNotFound", "Protocol Not Found", "no such protocol")
        return JSONResponse({"data": [protocol.analysis_resource()], "meta": {"cursor": 0, "totalLength": 1}})

    async def get_analysis(request: Request) -> JSONResponse:
        protocol = _protocol(request)
        if protocol is None or protocol.analysis_id != request.path_params["analysis_id"]:
            return error_response(404, "AnalysisNotFound", "Analysis Not Found", "no such protocol or analysis")
        return JSONResponse({"data": protocol.analysis_resource()})

    async def create_run(request: Request) -> JSONResponse:
        body = await _json(request)
        protocol_id = (body.get("data") or {}).get("protocolId") if isinstance(body, dict) else None
        if protocol_id not in robot.protocols:
            return error_response(404, "ProtocolNotFound", "Protocol Not Found", f"Protocol {protocol_id} was not found.")
        try:
            run = robot.create_run(protocol_id)
        except ActionNotAllowed as exc:
            return error_response(409, "RunAlreadyActive", "Run Already Active", str(exc))
        return JSONResponse({"data": run.resource()}, status_code=201)

    def _run(request: Request):
        return robot.runs.get(request.path_params["run_id"])

    def _run_missing(request: Request) -> JSONResponse:
        return error_response(404, "RunNotFound", "Run Not Found", f"Run {request.path_params['run_id']} was not found.")

    async def get_runs(request: Request) -> JSONResponse:
        return JSONResponse({"data": [r.resource() for r in robot.runs.values()],
                             "links": {"current": next(({"href": f"/runs/{r.id}"} for r in robot.runs.values()
                                                        if r.current), None)}})

    async def get_run(request: Request) -> JSONResponse:
        run = _run(request)
        return JSONResponse({"data": run.resource()}) if run else _run_missing(request)

    async def run_action(request: Request) -> JSONResponse:
        run = _run(request)
        if run is None:
            return _run_missing(request)
        body = await _json(request)
        action_type = (body.get("data") or {}).get("actionType") if isinstance(body, dict) else None
        try:
            action = robot.action(run, str(action_type))
        except ValueError as exc:
            return error_response(422, "InvalidRequest", "Invalid action", str(exc))
        except ActionNotAllowed as exc:
            return error_response(409, "RunActionNotAllowed", "Run Action Not Allowed", str(exc))
        return JSONResponse({"data": action}, status_code=201)

    async def get_commands(request: Request) -> JSONResponse:
        run = _run(request)
        if run is None:
            return _run_missing(request)
        total = len(run.commands)
        try:
            page_length = int(request.query_params.get("pageLength", 20))
            cursor = request.query_params.get("cursor")
            start = int(cursor) if cursor is not None else max(total - page_length, 0)
        except ValueError:
            return error_response(422, "InvalidRequest", "Invalid query", "cursor and pageLength must be integers")
        page = run.commands[start:start + page_length]
        current = run.commands[-1] if run.commands else None
        links = {"current": {"href": f"/runs/{run.id}/commands/{current['id']}",
                             "meta": {"runStatus": run.status, "commandId": current["id"],
                                      "index": total - 1, "key": current.get("key"),
                                      "createdAt": current["createdAt"]}} if current else None}
        return JSONResponse({"data": page, "meta": {"cursor": start, "totalLength": total}, "links": links})

    async def get_command(request: Request) -> JSONResponse:
        run = _run(request)
        if run is None:
            return _run_missing(request)
        for command in run.commands:
            if command["id"] == request.path_params["command_id"]:
                return JSONResponse({"data": command})
        return error_response(404, "CommandNotFound", "Command Not Found", "no such command in this run")

    async def inject_fault(request: Request) -> JSONResponse:
        body = await _json(request)
        if not isinstance(body, dict):
            return error_response(422, "InvalidRequest", "Invalid fault", "expected a JSON object")
        try:
            robot.next_fault = Fault(command_type=body.get("commandType"), occurrence=int(body.get("occurrence", 1)),
                                     **{k: str(body[j]) for k, j in (("error_type", "errorType"), ("detail", "detail"))
                                        if j in body})
        except (TypeError, ValueError) as exc:
            return error_response(422, "InvalidRequest", "Invalid fault", str(exc))
        return JSONResponse({"data": {"commandType": robot.next_fault.command_type,
                                      "occurrence": robot.next_fault.occurrence}}, status_code=201)

    return Starlette(routes=[
        Route("/health", health), Route("/protocols", upload_protocol, methods=["POST"]),
        Route("/protocols", get_protocols), Route("/protocols/{protocol_id}", get_protocol),
        Route("/protocols/{protocol_id}/analyses", get_analyses),
        Route("/protocols/{protocol_id}/analyses/{analysis_id}", get_analysis),
        Route("/runs", create_run, methods=["POST"]), Route("/runs", get_runs),
        Route("/runs/{run_id}", get_run), Route("/runs/{run_id}/actions", run_action, methods=["POST"]),
        Route("/runs/{run_id}/commands", get_commands), Route("/runs/{run_id}/commands/{command_id}", get_command),
        Route("/labctl-sim/faults", inject_fault, methods=["POST"]),
    ], middleware=[Middleware(_VersionHeader)])


ROBOT_TYPES = {"OT-2": "OT-2 Standard", "OT-2 Standard": "OT-2 Standard", "Flex": "OT-3 Standard",
               "OT-3 Standard": "OT-3 Standard"}


def declared_robot_type(source: bytes) -> str:
    """The robot a Python protocol declares in `requirements = {"robotType": ...}` (OT-2 if none),
    read without running it, as the robot reads it before analysis."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return "OT-2 Standard"  # the analysis will report the syntax error
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "requirements"
                                                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                break
            if isinstance(value, dict):
                return ROBOT_TYPES.get(str(value.get("robotType", "OT-2")), str(value.get("robotType")))
    return "OT-2 Standard"


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_ANALYSES: dict[str, dict[str, Any]] = {}


def cached_analyzer() -> Analyzer:
    """The robot's analysis (opentrons.cli analyze in the tool env), remembered by file content:
    the same file always analyses the same way, and an analysis costs ~2 s of CPU."""
    from drivers.opentrons.simulate import analyze_protocol

    async def analyze(path: Path) -> dict[str, Any]:
        key = hashlib.sha256(path.read_bytes()).hexdigest()
        if key not in _ANALYSES:
            _ANALYSES[key] = await analyze_protocol(path)
        return copy.deepcopy(_ANALYSES[key])

    return analyze


class OpentronsSimulator:
    """An HTTP server of the robot API on 127.0.0.1 (a free port unless given), as an async context manager."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, speed: float = 1.0,
                 robot_model: str = "OT-2 Standard", analyzer: Analyzer | None = None) -> None:
        if analyzer is None:
            analyzer = cached_analyzer()
        self.host = host
        self.port = port or free_port(host)
        self.robot = SimulatedRobot(analyzer, speed=speed, robot_model=robot_model)
        self._tmp = tempfile.TemporaryDirectory(prefix="labctl-ot-sim-")
        self.app = create_app(self.robot, Path(self._tmp.name))
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> "OpentronsSimulator":
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raises the bind error
                raise RuntimeError(f"Opentrons simulator failed to start on {self.url}")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.robot.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._tmp.cleanup()

    async def serve_forever(self) -> None:
        assert self._task is not None
        await self._task
