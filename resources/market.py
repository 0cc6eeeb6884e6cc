"""The exchange's MCP server as a Dagster resource (issue 7: sensors and collection assets will use it)."""
from dagster import ConfigurableResource

from surveillance_pipeline.market.client import CircuitBreaker, MarketDataClient


class MarketDataResource(ConfigurableResource):
    """`url` for streamable HTTP (e.g. CoinEx's hosted server or `surveillance market serve --transport http`),
    or `command` + `args` (+ `env`) for a stdio server."""

    url: str | None = None
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] | None = None
    timeout_seconds: float = 10.0
    retries: int = 2
    backoff_seconds: float = 0.5
    failures_to_open: int = 3
    cooldown_seconds: float = 30.0

    def client(self) -> MarketDataClient:
        from surveillance_pipeline.config import load_settings

        url = self.url or (None if self.command else load_settings().market.mcp_url)
        return MarketDataClient(url=url, command=self.command, args=list(self.args), env=self.env,
                                timeout_seconds=self.timeout_seconds, retries=self.retries,
                                backoff_seconds=self.backoff_seconds,
                                breaker=CircuitBreaker(self.failures_to_open, self.cooldown_seconds))
