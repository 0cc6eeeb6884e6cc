"""The CoinEx MCP server's public tools, their arguments and defaults: one place for the client and the
replay server (coinexcom/coinex_mcp_server; answers are `{code, message, data}` with numbers as strings)."""
from __future__ import annotations

MARKET_TYPES = ("spot", "futures")
KLINE_PERIODS = ("1min", "5min", "15min", "30min", "1hour", "4hour", "1day", "1week")
PERIOD_SECONDS = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "1hour": 3600, "4hour": 14_400,
                  "1day": 86_400, "1week": 604_800}
ORDERBOOK_LIMITS = (5, 10, 20, 50)
DEFAULT_QUOTE = "USDT"
TICKER_WITHOUT_BASE = 5  # the CoinEx server answers get_ticker without `base` with only this many markets

TOOLS = {
    "get_ticker": ("base", "quote", "market_type"),
    "get_orderbook": ("base", "quote", "limit", "market_type", "interval"),
    "get_kline": ("base", "quote", "period", "limit", "market_type"),
    "list_markets": ("market_type", "base", "quote"),
    "get_deals": ("base", "quote", "market_type", "limit"),
    "get_index_price": ("market_type", "base", "quote", "top_n"),
    "get_funding_rate": ("base", "quote"),
    "get_funding_rate_history": ("base", "quote", "start_time", "end_time", "page", "limit"),
    "get_premium_index_history": ("base", "quote", "start_time", "end_time", "page", "limit"),
    "get_basis_history": ("base", "quote", "start_time", "end_time", "page", "limit"),
    "get_margin_tiers": ("base", "quote"),
    "get_liquidation_history": ("base", "quote", "start_time", "end_time", "page", "limit"),
}


def market_name(base: str, quote: str = DEFAULT_QUOTE) -> str:
    return f"{base.upper()}{quote.upper()}"


def base_of(market: str, quote: str = DEFAULT_QUOTE) -> str:
    """The base currency of a market name (`BTCUSDT` -> `BTC`); a name without the quote is its own base."""
    return market[: -len(quote)] if market.endswith(quote) else market
