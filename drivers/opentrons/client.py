"""Async driver for the Opentrons robot HTTP API (port 31950): upload, run, pause, stop, poll.

    async with OpentronsClient("http://ot2.lab:31950") as robot:
        protocol = await robot.upload_protocol("protocols/opentrons/ot2_formulation.py")
        analysis = await robot.wait_for_analysis(protocol.id)
        run = await robot.create_run(protocol.id)
        await robot.play(run.id)
        run = await robot.wait_for_run(run.id)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PORT = 31950
API_VERSION = "*"  # the newest version the robot speaks
TERMINAL_STATUSES = frozenset({"stopped", "failed", "succeeded"})


class OpentronsError(RuntimeError):
    """The robot refused a request or a run failed; the message carries the robot's own error."""

    def __init__(self, message: str, *, status_code: int | None = None, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.errors = errors or []


class OpentronsUnreachable(OpentronsError):
    pass


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProtocolResource(_Loose):
    id: str
    createdAt: str
    files: list[dict[str, Any]] = Field(default_factory=list)
    robotType: str | None = None
    analysisSummaries: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def analysis_id(self) -> str:
        return self.analysisSummaries[-1]["id"]


class ErrorOccurrence(_Loose):
    id: str = ""
    errorType: str = ""
    errorCode: str = ""
    detail: str = ""
    wrappedErrors: list["ErrorOccurrence"] = Field(default_factory=list)

    def innermost(self) -> "ErrorOccurrence":
        return self.wrappedErrors[-1].innermost() if self.wrappedErrors else self


class RunCommand(_Loose):
    id: str
    commandType: str
    status: str
    params: dict[str, Any] = Field(default_factory=dict)
    error: ErrorOccurrence | None = None
    startedAt: str | None = None
    completedAt: str | None = None


class RunResource(_Loose):
    id: str
    status: str
    current: bool = True
    protocolId: str | None = None
    actions: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[ErrorOccurrence] = Field(default_factory=list)
    startedAt: str | None = None
    completedAt: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def error_summary(self) -> str | None:
        if not self.errors:
            return None
        outer, inner = self.errors[0], self.errors[0].innermost()
        return outer.detail if inner is outer else f"{inner.errorType} ({inner.errorCode}): {inner.detail}"


class OpentronsClient:
    """One robot, one httpx connection pool; every request carries the Opentrons-Version header."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, api_version: str = API_VERSION,
                 poll_interval: float = 0.2) -> None:
        self.base_url = base_url.rstrip("/")
        self.poll_interval = poll_interval
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       headers={"Opentrons-Version": api_version})

    async def __aenter__(self) -> "OpentronsClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise OpentronsUnreachable(f"robot at {self.base_url} unreachable ({method} {path}): "
                                       f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error:
            errors = body.get("errors", []) if isinstance(body, dict) else []
            detail = "; ".join(f"{e.get('id', '')}: {e.get('detail') or e.get('title', '')}" for e in errors) \
                or response.text[:300]
            raise OpentronsError(f"{method} {path} -> HTTP {response.status_code}: {detail}",
                                 status_code=response.status_code, errors=errors)
        return body

    # -- robot ----------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/health")

    # -- protocols ------------------------------------------------------------------------------
    async def upload_protocol(self, path: str | Path) -> ProtocolResource:
        path = Path(path)
        files = {"files": (path.name, path.read_bytes(), "text/x-python")}
        body = await self._request("POST", "/protocols", files=files)
        return ProtocolResource.model_validate(body["data"])

    async def get_analysis(self, protocol_id: str, analysis_id: str) -> dict[str, Any]:
        body = await self._request("GET", f"/protocols/{protocol_id}/analyses/{analysis_id}")
        return body["data"]

    async def wait_for_analysis(self, protocol: ProtocolResource, timeout: float = 120.0) -> dict[str, Any]:
        """The completed analysis (`result` ok / not-ok, `errors`, `commands`)."""
        async with asyncio.timeout(timeout):
            while True:
                analysis = await self.get_analysis(protocol.id, protocol.analysis_id)
                if analysis.get("status") == "completed":
                    return analysis
                await asyncio.sleep(self.poll_interval)

    # -- runs -----------------------------------------------------------------------------------
    async def create_run(self, protocol_id: str) -> RunResource:
        body = await self._request("POST", "/runs", json={"data": {"protocolId": protocol_id}})
        return RunResource.model_validate(body["data"])

    async def get_run(self, run_id: str) -> RunResource:
        return RunResource.model_validate((await self._request("GET", f"/runs/{run_id}"))["data"])

    async def action(self, run_id: str, action_type: str) -> dict[str, Any]:
        body = await self._request("POST", f"/runs/{run_id}/actions", json={"data": {"actionType": action_type}})
        return body["data"]

    async def play(self, run_id: str) -> dict[str, Any]:
        return await self.action(run_id, "play")

    async def pause(self, run_id: str) -> dict[str, Any]:
        return await self.action(run_id, "pause")

    async def stop(self, run_id: str) -> dict[str, Any]:
        return await self.action(run_id, "stop")

    async def commands(self, run_id: str, page_length: int = 100) -> list[RunCommand]:
        """Every command of the run so far, oldest first (pages through the cursor)."""
        out: list[RunCommand] = []
        cursor = 0
        while True:
            body = await self._request("GET", f"/runs/{run_id}/commands",
                                       params={"cursor": cursor, "pageLength": page_length})
            page = body.get("data", [])
            out.extend(RunCommand.model_validate(c) for c in page)
            cursor += len(page)
            if not page or cursor >= body.get("meta", {}).get("totalLength", 0):
                return out

    async def wait_for_run(self, run_id: str, statuses: frozenset[str] | set[str] = TERMINAL_STATUSES,
                           timeout: float = 600.0) -> RunResource:
        """Poll until the run's status is one of `statuses` (default: finished)."""
        async with asyncio.timeout(timeout):
            while True:
                run = await self.get_run(run_id)
                if run.status in statuses:
                    return run
                await asyncio.sleep(self.poll_interval)

    async def wait_for_command_count(self, run_id: str, count: int, timeout: float = 60.0) -> list[RunCommand]:
        async with asyncio.timeout(timeout):
            while True:
                commands = await self.commands(run_id)
                if len(commands) >= count:
                    return commands
                await asyncio.sleep(self.poll_interval)
