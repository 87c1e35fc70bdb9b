"""The lab as an MCP server (the `mcp` SDK's MCPServer): tools, report resources, per-agent tokens.

- `build_server(service, agent=...)`: the tools and resources, over any transport.
- `run_stdio(service, agent)`: `labctl mcp` (one local agent, the one who started the process).
- `build_http_app(service, tokens)`: a Starlette app serving streamable HTTP at /mcp, where each
  bearer token is an agent with scopes and a quota (`AgentTokens`). Mount it in `labctl serve`
  and run its lifespan (the SDK's session manager lives there).

Every tool answers JSON (structured content plus the same JSON as text). Problems come back as a
tool error whose JSON says what was refused: `{"error": "refused", "refusals": [{field, value,
limit, reason}]}`, `{"error": "not_found" | "forbidden", "message": ...}`. Tool annotations mark
what only reads (`readOnlyHint`) and what acts on hardware (`submit`, `cancel`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Awaitable, Callable

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from .envelope import AgentQuota
from .refusal import Refused
from .service import SCOPES, Agent, Forbidden, LabService, NotFoundError

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
labctl runs a fabrication lab: 3D printers, a liquid handler and a tensile-test rig.
State a hypothesis (see the capabilities tool for its JSON schema and the lab's limits), call plan
to see the experiment it implies (a dry run), then submit it. Poll campaign_status; when the state
is finished, results gives the verdict (supported / refuted / inconclusive) with its evidence and
report gives a Markdown report. Anything outside the lab's safety envelope is refused with the field,
the limit and the reason. Results from simulated devices are marked simulated: true."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ACTS_ON_HARDWARE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                   open_world_hint=True)
STOPS_HARDWARE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                 open_world_hint=True)

AgentResolver = Callable[[], Agent]


def _result(data: dict[str, Any], error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data, default=str))],
                          structured_content=data, is_error=error)


async def _answer(call: Callable[[], Awaitable[dict[str, Any]]]) -> CallToolResult:
    try:
        return _result(await call())
    except Refused as exc:
        return _result(exc.to_dict(), error=True)
    except NotFoundError as exc:
        return _result({"error": "not_found", "message": str(exc)}, error=True)
    except Forbidden as exc:
        return _result({"error": "forbidden", "message": str(exc)}, error=True)
    except TimeoutError as exc:
        return _result({"error": "timeout", "message": str(exc) or "timed out"}, error=True)
    except Exception as exc:  # never a crash: the agent learns it failed, the log has the traceback
        log.exception("tool failed")
        return _result({"error": "internal", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}, error=True)


HypothesisArg = Annotated[Any, Field(description="a hypothesis object (JSON); its schema is in capabilities."
                                                 "hypothesis_schema and the labctl://schema/hypothesis resource")]
CampaignArg = Annotated[Any, Field(description="a campaign id from submit, e.g. cmp-0123456789ab")]


def build_server(service: Any, agent: AgentResolver, *, auth: AuthSettings | None = None,
                 token_verifier: Any = None) -> MCPServer:
    """The MCP server over `service` (a LabService, or a RemoteService that forwards to one over HTTP);
    `agent()` names the caller of the current request."""
    server = MCPServer(name="labctl", title="labctl fabrication lab", instructions=INSTRUCTIONS,
                       version="0.1.0", auth=auth, token_verifier=token_verifier,
                       middleware=[AuditRejectedCalls(service, agent)])

    @server.tool(annotations=READ_ONLY)
    async def lab_status() -> CallToolResult:
        """The lab's devices (id, kind, status, simulated) and this agent's campaigns by state."""
        return await _answer(lambda: service.lab_status(agent()))

    @server.tool(annotations=READ_ONLY)
    async def capabilities() -> CallToolResult:
        """What the lab can do: printers and build volumes, materials and their temperature windows,
        parameter ranges, specimen types, this agent's quota and scopes, and the hypothesis JSON schema."""
        return await _answer(lambda: service.capabilities(agent()))

    @server.tool(annotations=READ_ONLY)
    async def plan(hypothesis: HypothesisArg) -> CallToolResult:
        """Dry run: validate a hypothesis against the safety envelope and design the experiment (cells,
        replicates from a power calculation, randomised run order, printer blocks, cost and duration).
        Touches no device."""
        return await _answer(lambda: service.plan(agent(), hypothesis))

    @server.tool(annotations=ACTS_ON_HARDWARE)
    async def submit(hypothesis: HypothesisArg,
                     idempotency_key: Annotated[Any, Field(description="retrying with the same key never starts a "
                                                                       "second campaign")] = None) -> CallToolResult:
        """Submit a hypothesis: validates, plans and starts a campaign that prints and tests specimens.
        On real hardware the campaign waits for a technician's approval."""
        return await _answer(lambda: service.submit(agent(), hypothesis, idempotency_key))

    @server.tool(annotations=READ_ONLY)
    async def campaign_status(campaign_id: CampaignArg) -> CallToolResult:
        """A campaign's state, specimens planned and measured, job states and (when done) the verdict."""
        return await _answer(lambda: service.campaign_status(agent(), _text(campaign_id)))

    @server.tool(annotations=READ_ONLY)
    async def results(campaign_id: CampaignArg) -> CallToolResult:
        """The analysis (groups, effect with its confidence interval, test, power, verdict) and every measurement."""
        return await _answer(lambda: service.results(agent(), _text(campaign_id)))

    @server.tool(annotations=READ_ONLY)
    async def report(campaign_id: CampaignArg) -> CallToolResult:
        """The campaign's Markdown report (also the resource labctl://campaigns/{id}/report)."""
        return await _answer(lambda: service.report(agent(), _text(campaign_id)))

    @server.tool(annotations=READ_ONLY)
    async def specimen_curve(campaign_id: CampaignArg,
                             run_id: Annotated[Any, Field(description="a run id from the plan")]) -> CallToolResult:
        """One specimen's stress-strain curve and its tensile results."""
        return await _answer(lambda: service.specimen_curve(agent(), _text(campaign_id), _text(run_id)))

    @server.tool(annotations=STOPS_HARDWARE)
    async def cancel(campaign_id: CampaignArg,
                     reason: Annotated[Any, Field(description="why, for the audit log")] = "cancelled by agent"
                     ) -> CallToolResult:
        """Cancel a campaign: its queued jobs are dropped and running steps stopped."""
        return await _answer(lambda: service.cancel(agent(), _text(campaign_id), _text(reason)))

    @server.resource("labctl://schema/hypothesis", mime_type="application/json",
                     description="JSON schema of a hypothesis")
    def hypothesis_schema() -> str:
        from .hypothesis import Hypothesis

        return json.dumps(Hypothesis.model_json_schema())

    @server.resource("labctl://campaigns/{campaign_id}/report", mime_type="text/markdown",
                     description="A finished campaign's Markdown report")
    async def report_resource(campaign_id: str) -> str:
        out = await service.report(agent(), campaign_id)
        return out["markdown"]

    @server.resource("labctl://campaigns/{campaign_id}/plots/{name}", mime_type="image/png",
                     description="A plot of a campaign's report: effect.png or curves.png")
    async def report_plot(campaign_id: str, name: str) -> bytes:
        return await service.plot(agent(), campaign_id, name)

    return server


class AuditRejectedCalls:
    """Server middleware: a tool call the SDK rejects before it reaches a tool (unknown tool, missing or
    malformed arguments) is audited too; calls that reach a tool are audited by the service."""

    def __init__(self, service: Any, agent: AgentResolver) -> None:
        self.service = service
        self.agent = agent

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        try:
            result = await call_next(ctx)
        except Exception as exc:
            if ctx.method == "tools/call":
                self._write(ctx, "rejected", f"{type(exc).__name__}: {str(exc)[:300]}")
            raise
        # Here the result is already in its wire form (a dict with camelCase keys).
        if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
            text = " ".join(str(c.get("text", "")) for c in result.get("content", []) if isinstance(c, dict))
            if not text.startswith("{"):  # not one of our JSON answers: the SDK refused the call
                self._write(ctx, "rejected", text[:300])
        return result

    def _write(self, ctx: Any, outcome: str, detail: str) -> None:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        try:
            name = self.agent().name
        except Exception:
            name = "<unauthenticated>"
        self.service.audit.write(name, str(params.get("name", "?"))[:100], {"arguments": params.get("arguments")},
                                 outcome, detail)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)[:200]


async def run_stdio(service: LabService, agent: Agent) -> None:
    """Serve MCP on stdin/stdout for one local agent (`labctl mcp`)."""
    await build_server(service, lambda: agent).run_stdio_async()


# ---------------------------------------------------------------------------- HTTP: tokens
class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the bearer token (never the token)")
    agent: str
    scopes: list[str] = Field(default_factory=lambda: ["lab:read", "lab:plan", "lab:submit", "lab:cancel"])
    quota: AgentQuota = Field(default_factory=AgentQuota)


class AgentTokens:
    """Bearer tokens -> agents, checked in constant time; implements the SDK's TokenVerifier."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        for entry in entries:
            unknown = set(entry.scopes) - set(SCOPES)
            if unknown:
                raise ValueError(f"agent {entry.agent}: unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
        self.entries = entries

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path) -> "AgentTokens":
        """Read `{"tokens": [{"token_sha256", "agent", "scopes", "quota"}]}` (JSON)."""
        data = json.loads(Path(path).read_text())
        return cls([TokenEntry.model_validate(e) for e in data.get("tokens", [])])

    def lookup(self, token: str) -> TokenEntry | None:
        digest = self.hash(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.token_sha256, digest):
                found = entry
        return found

    async def verify_token(self, token: str) -> AccessToken | None:
        entry = self.lookup(token)
        if entry is None:
            return None
        return AccessToken(token=token, client_id=entry.agent, scopes=list(entry.scopes))

    def agent_for_request(self) -> Agent:
        access = get_access_token()
        entry = self.lookup(access.token) if access is not None else None
        if entry is None:  # the bearer middleware lets no such request through; refuse anyway
            raise Forbidden("no valid bearer token")
        return Agent(name=entry.agent, scopes=tuple(entry.scopes), quota=entry.quota)


def build_http_app(service: LabService, tokens: AgentTokens, *, public_url: str = "http://127.0.0.1:8765",
                   path: str = "/mcp") -> Any:
    """A Starlette app serving MCP over streamable HTTP at `path`, bearer tokens required."""
    auth = AuthSettings(issuer_url=public_url, resource_server_url=f"{public_url.rstrip('/')}{path}",
                        required_scopes=["lab:read"], validate_token_resource=False)
    server = build_server(service, tokens.agent_for_request, auth=auth, token_verifier=tokens)
    return server.streamable_http_app(streamable_http_path=path)
