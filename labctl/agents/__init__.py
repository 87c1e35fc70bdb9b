"""The agent-facing protocol layer: hypotheses -> plans -> campaigns, verdicts, reports, MCP server."""
