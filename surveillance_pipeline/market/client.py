"""MarketDataClient: an exchange's MCP server spoken to with the official SDK (mcp 2.x), over streamable HTTP
(a URL) or stdio (a command), with timeouts, retries with back-off and a circuit breaker; every tool of the
CoinEx server mapped to a method returning a typed polars frame."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from surveillance_pipeline.market import envelope as env
from surveillance_pipeline.market.tools import DEFAULT_QUOTE, KLINE_PERIODS, ORDERBOOK_LIMITS, TOOLS, base_of


class MarketDataError(RuntimeError):
    """The server could not be reached or did not answer in time, after the retries."""


class CircuitOpen(MarketDataError):
    """Too many consecutive failures: calls fail fast until the cool-down has passed."""


@dataclass
class CircuitBreaker:
    failures_to_open: int = 3
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None

    def check(self) -> None:
        if self.opened_at is None:
            return
        if self.clock() - self.opened_at < self.cooldown_seconds:
            raise CircuitOpen(f"circuit open after {self.failures} consecutive failures; retrying after "
                              f"{self.cooldown_seconds:.0f} s")
        self.opened_at = None  # half-open: one call may try

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.failures_to_open:
            self.opened_at = self.clock()


@dataclass
class MarketDataClient:
    """`url` (streamable HTTP, e.g. http://127.0.0.1:8765/mcp) or `command` + `args` + `env` (stdio)."""

    url: str | None = None
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    timeout_seconds: float = 10.0
    retries: int = 2
    backoff_seconds: float = 0.5
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    server: object | None = None  # an in-process MCPServer (tests, the replay demo)
    calls: int = 0
    failed_calls: int = 0
    seconds: float = 0.0

    def _target(self):
        if self.server is not None:
            return self.server
        if self.url:
            return self.url
        if self.command:
            from mcp import StdioServerParameters

            return StdioServerParameters(command=self.command, args=list(self.args), env=self.env)
        raise MarketDataError("no MCP server configured: give a url (streamable HTTP) or a command (stdio)")

    @property
    def source(self) -> str:
        return self.url or (" ".join([self.command, *self.args]) if self.command else "in-process server")

    async def acall(self, tool: str, **arguments) -> object:
        """The `data` of `tool`'s envelope; ExchangeToolError for an error answer (not retried: it is an answer),
        MarketDataError when the server cannot be reached after the retries."""
        from mcp import Client

        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; the CoinEx server's tools are {sorted(TOOLS)}")
        self.breaker.check()
        arguments = {k: v for k, v in arguments.items() if v is not None}
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            began = time.perf_counter()
            self.calls += 1
            try:
                async with Client(self._target(), read_timeout_seconds=self.timeout_seconds) as client:
                    result = await asyncio.wait_for(client.call_tool(tool, arguments), self.timeout_seconds)
                self.seconds += time.perf_counter() - began
                payload = env.envelope_of(tool, result)
                self.breaker.success()
                return env.data_of(tool, payload)
            except env.ExchangeToolError:
                self.breaker.success()  # the server answered
                raise
            except Exception as error:  # connection refused, timeout, protocol failure: retried
                self.seconds += time.perf_counter() - began
                self.failed_calls += 1
                last = error
                if attempt < self.retries:
                    await asyncio.sleep(self.backoff_seconds * 2 ** attempt)
        self.breaker.failure()
        raise MarketDataError(f"{tool} on {self.source}: {type(last).__name__}: {last}") from last

    def call(self, tool: str, **arguments) -> object:
        return asyncio.run(self.acall(tool, **arguments))

    # -- the tools, typed ------------------------------------------------------------------------------
    def get_ticker(self, base: str | None = None, quote: str = DEFAULT_QUOTE, market_type: str = "spot") -> pl.DataFrame:
        return env.tickers(self.call("get_ticker", base=base, quote=quote, market_type=market_type))

    def get_orderbook(self, base: str, quote: str = DEFAULT_QUOTE, limit: int = 20, market_type: str = "spot",
                      interval: str = "0") -> pl.DataFrame:
        if limit not in ORDERBOOK_LIMITS:
            raise ValueError(f"limit must be one of {ORDERBOOK_LIMITS}")
        return env.orderbook(self.call("get_orderbook", base=base, quote=quote, limit=limit,
                                       market_type=market_type, interval=interval))

    def get_kline(self, base: str, quote: str = DEFAULT_QUOTE, period: str = "1hour", limit: int = 100,
                  market_type: str = "spot") -> pl.DataFrame:
        if period not in KLINE_PERIODS:
            raise ValueError(f"period must be one of {KLINE_PERIODS}")
        return env.klines(self.call("get_kline", base=base, quote=quote, period=period, limit=limit,
                                    market_type=market_type))

    def list_markets(self, market_type: str = "spot", base: str | None = None, quote: str = DEFAULT_QUOTE) -> pl.DataFrame:
        return env.markets(self.call("list_markets", market_type=market_type, base=base, quote=quote))

    def get_deals(self, base: str, quote: str = DEFAULT_QUOTE, market_type: str = "spot", limit: int = 100) -> pl.DataFrame:
        return env.deals(self.call("get_deals", base=base, quote=quote, market_type=market_type, limit=limit))

    def get_index_price(self, market_type: str = "spot", base: str | None = None, quote: str = DEFAULT_QUOTE,
                        top_n: int = 5) -> pl.DataFrame:
        return env.index_prices(self.call("get_index_price", market_type=market_type, base=base, quote=quote,
                                          top_n=top_n))

    def get_funding_rate(self, base: str, quote: str = DEFAULT_QUOTE) -> pl.DataFrame:
        return env.funding_rates(self.call("get_funding_rate", base=base, quote=quote))

    def _history(self, tool: str, parse, base: str, quote: str, start_ms: int | None, end_ms: int | None,
                 limit: int, max_pages: int = 50) -> pl.DataFrame:
        """Every page of a history tool in the range (a full page means there may be another)."""
        rows: list = []
        for page in range(1, max_pages + 1):
            data = self.call(tool, base=base, quote=quote, start_time=start_ms, end_time=end_ms, page=page,
                             limit=limit) or []
            rows += list(data)
            if len(data) < limit:
                break
        return parse(rows)

    def get_funding_rate_history(self, base: str, quote: str = DEFAULT_QUOTE, start_ms: int | None = None,
                                 end_ms: int | None = None, limit: int = 100) -> pl.DataFrame:
        return self._history("get_funding_rate_history", env.funding_history, base, quote, start_ms, end_ms, limit)

    def get_premium_index_history(self, base: str, quote: str = DEFAULT_QUOTE, start_ms: int | None = None,
                                  end_ms: int | None = None, limit: int = 100) -> pl.DataFrame:
        return self._history("get_premium_index_history", env.premium_history, base, quote, start_ms, end_ms, limit)

    def get_basis_history(self, base: str, quote: str = DEFAULT_QUOTE, start_ms: int | None = None,
                          end_ms: int | None = None, limit: int = 100) -> pl.DataFrame:
        return self._history("get_basis_history", env.basis_history, base, quote, start_ms, end_ms, limit)

    def get_margin_tiers(self, base: str, quote: str = DEFAULT_QUOTE) -> pl.DataFrame:
        return env.margin_tiers(self.call("get_margin_tiers", base=base, quote=quote))

    def get_liquidation_history(self, base: str, quote: str = DEFAULT_QUOTE, start_ms: int | None = None,
                                end_ms: int | None = None, limit: int = 100) -> pl.DataFrame:
        """Liquidations; raises envelope.Unavailable when the source does not provide them (CoinEx's server)."""
        data = self.call("get_liquidation_history", base=base, quote=quote, start_time=start_ms, end_time=end_ms,
                         page=1, limit=limit)
        return env._frame(env._rows(data), ("price", "amount"), ("created_at",), ("market", "side"))

    # -- futures conveniences ------------------------------------------------------------------------
    def get_futures_ticker(self, base: str, quote: str = DEFAULT_QUOTE) -> pl.DataFrame:
        """Last price, mark / index price and open interest of a perpetual (open interest comes from here)."""
        return self.get_ticker(base, quote, "futures")

    def get_futures_kline(self, base: str, periods: tuple[str, ...] = ("1min", "1hour"), quote: str = DEFAULT_QUOTE,
                          limit: int = 100) -> dict[str, pl.DataFrame]:
        return {p: self.get_kline(base, quote, p, limit, "futures") for p in periods}

    def get_futures_orderbook(self, base: str, quote: str = DEFAULT_QUOTE, limit: int = 20) -> pl.DataFrame:
        return self.get_orderbook(base, quote, limit, "futures")

    def get_all_futures_tickers(self, quote: str = DEFAULT_QUOTE) -> pl.DataFrame:
        """Every futures market's ticker: get_ticker without `base` answers only 5 markets on CoinEx's server, so
        the markets come from list_markets and their tickers are asked one by one."""
        listed = self.list_markets("futures", quote=quote)
        frames = []
        for market in listed.get_column("market").to_list():
            base = base_of(market, quote)
            frames.append(self.get_futures_ticker(base, quote))
        return pl.concat(frames, how="diagonal_relaxed") if frames else env.tickers([])
