"""`labctl mcp --url`: the stdio MCP server an agent's desktop app starts, forwarding to the lab's HTTP endpoint.

`RemoteService` has the LabService call surface, so `build_server` serves it unchanged: each call
becomes a tool call on `labctl serve`'s streamable-HTTP endpoint with the agent's bearer token,
and the lab's structured refusals come back as the same exceptions. The lab audits the calls
under the token's agent; this side keeps its own audit log of what it forwarded.
"""

from __future__ import annotations

from typing import Any

from mcp import Client, MCPError

from .refusal import Refusal, Refused
from .service import Agent, AuditLog, Forbidden, NotFoundError


class RemoteError(RuntimeError):
    """The lab answered with an error that is not a refusal (internal, timeout)."""


class RemoteService:
    def __init__(self, client: Client, audit: AuditLog) -> None:
        self.client = client
        self.audit = audit

    async def _tool(self, agent: Agent, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(name, args)
        data = result.structured_content or {}
        if not result.is_error:
            self.audit.write(agent.name, name, args, "ok", {k: data.get(k) for k in ("campaign_id", "state") if k in data})
            return data
        kind = data.get("error")
        self.audit.write(agent.name, name, args, str(kind or "error"), data.get("message") or data.get("refusals"))
        if kind == "refused":
            raise Refused([Refusal.model_validate(r) for r in data.get("refusals", [])], source=data.get("source"))
        if kind == "not_found":
            raise NotFoundError(data.get("message", "not found"))
        if kind == "forbidden":
            raise Forbidden(data.get("message", "forbidden"))
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RemoteError(data.get("message") or text or f"{name} failed on the lab")

    async def lab_status(self, agent: Agent) -> dict[str, Any]:
        return await self._tool(agent, "lab_status", {})

    async def capabilities(self, agent: Agent) -> dict[str, Any]:
        return await self._tool(agent, "capabilities", {})

    async def plan(self, agent: Agent, hypothesis: Any) -> dict[str, Any]:
        return await self._tool(agent, "plan", {"hypothesis": hypothesis})

    async def submit(self, agent: Agent, hypothesis: Any, idempotency_key: Any = None) -> dict[str, Any]:
        return await self._tool(agent, "submit", {"hypothesis": hypothesis, "idempotency_key": idempotency_key})

    async def campaign_status(self, agent: Agent, campaign_id: str) -> dict[str, Any]:
        return await self._tool(agent, "campaign_status", {"campaign_id": campaign_id})

    async def results(self, agent: Agent, campaign_id: str) -> dict[str, Any]:
        return await self._tool(agent, "results", {"campaign_id": campaign_id})

    async def report(self, agent: Agent, campaign_id: str) -> dict[str, Any]:
        return await self._tool(agent, "report", {"campaign_id": campaign_id})

    async def specimen_curve(self, agent: Agent, campaign_id: str, run_id: str) -> dict[str, Any]:
        return await self._tool(agent, "specimen_curve", {"campaign_id": campaign_id, "run_id": run_id})

    async def cancel(self, agent: Agent, campaign_id: str, reason: str = "cancelled by agent") -> dict[str, Any]:
        return await self._tool(agent, "cancel", {"campaign_id": campaign_id, "reason": reason})

    async def plot(self, agent: Agent, campaign_id: str, name: str) -> bytes:
        import base64

        try:
            result = await self.client.read_resource(f"labctl://campaigns/{campaign_id}/plots/{name}")
        except MCPError as exc:
            raise NotFoundError(str(exc)) from None
        blob = getattr(result.contents[0], "blob", None)
        if blob is None:
            raise NotFoundError(f"{campaign_id}/{name} is not an image")
        return base64.b64decode(blob)
