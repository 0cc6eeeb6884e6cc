"""CoinEx envelopes -> typed polars frames. `{code, message, data}` with numbers as strings; code != 0 (or an
MCP tool error) is an ExchangeToolError naming the tool."""
from __future__ import annotations

import json
from typing import Any

import polars as pl

UTC_MS = pl.Datetime("ms", "UTC")


class ExchangeToolError(RuntimeError):
    """An exchange tool answered with an error: `tool`, `code`, `message`."""

    def __init__(self, tool: str, code: int | None, message: str) -> None:
        super().__init__(f"{tool}: code {code}: {message}")
        self.tool, self.code, self.message = tool, code, message


class Unavailable(ExchangeToolError):
    """The source does not provide this data (e.g. CoinEx's get_liquidation_history always answers -1):
    recorded as unavailable, never invented."""


def envelope_of(tool: str, result) -> dict[str, Any]:
    """The envelope of an MCP CallToolResult (structured content, else the JSON text)."""
    if getattr(result, "is_error", False):
        text = " ".join(getattr(c, "text", "") for c in result.content or [])
        raise ExchangeToolError(tool, None, text.strip() or "tool error")
    payload = getattr(result, "structured_content", None)
    if payload is None:
        text = "".join(getattr(c, "text", "") for c in result.content or [])
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise ExchangeToolError(tool, None, f"not a JSON envelope: {text[:200]!r}") from error
    if isinstance(payload, dict) and "result" in payload and "code" not in payload:
        payload = payload["result"]  # tools whose output schema wraps the value
    if not isinstance(payload, dict) or "code" not in payload:
        raise ExchangeToolError(tool, None, f"not a CoinEx envelope: {str(payload)[:200]}")
    return payload


def data_of(tool: str, envelope: dict[str, Any]) -> Any:
    code = envelope.get("code")
    if code != 0:
        message = str(envelope.get("message", ""))
        if code == -1 and "not available" in message.lower():  # CoinEx's stub answer, not a transient error
            raise Unavailable(tool, code, message)
        raise ExchangeToolError(tool, code, message)
    return envelope.get("data")


def _rows(data: Any) -> list[dict]:
    if data is None:
        return []
    if isinstance(data, dict):
        return [data]
    return list(data)


def _frame(rows: list[dict], numbers: tuple[str, ...], times_ms: tuple[str, ...] = (),
           strings: tuple[str, ...] = ()) -> pl.DataFrame:
    """Numbers-as-strings to Float64, epoch-ms fields to UTC datetimes; absent fields become nulls."""
    columns = {**{c: pl.String for c in strings}, **{c: pl.String for c in numbers},
               **{c: pl.Int64 for c in times_ms}}
    cleaned = [{c: (None if r.get(c) in ("", None) else (int(r[c]) if c in times_ms else str(r[c])))
                for c in columns} for r in rows]
    frame = pl.DataFrame(cleaned, schema=columns, orient="row")
    return frame.with_columns(*[pl.col(c).cast(pl.Float64) for c in numbers],
                              *[pl.col(c).cast(UTC_MS) for c in times_ms])


def tickers(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("last", "open", "close", "high", "low", "volume", "value", "volume_buy",
                                "volume_sell", "mark_price", "index_price", "open_interest_volume"),
                  strings=("market",))


def klines(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("open", "close", "high", "low", "volume", "value"), ("created_at",), ("market",))


def deals(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("price", "amount"), ("created_at",), ("market", "deal_id", "side"))


def orderbook(data: Any) -> pl.DataFrame:
    """One row per level: market, side (ask|bid), level (0 = best), price, amount, updated_at."""
    rows = []
    for book in _rows(data):
        depth = book.get("depth", book)
        for side, key in (("ask", "asks"), ("bid", "bids")):
            for level, (price, amount) in enumerate(depth.get(key) or []):
                rows.append({"market": book.get("market"), "side": side, "level": level, "price": price,
                             "amount": amount, "updated_at": depth.get("updated_at")})
    frame = _frame(rows, ("price", "amount"), ("updated_at",), ("market", "side"))
    return frame.with_columns(pl.Series("level", [r["level"] for r in rows], pl.Int32))


def funding_rates(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("mark_price", "latest_funding_rate", "next_funding_rate", "max_funding_rate",
                                "min_funding_rate"), ("latest_funding_time", "next_funding_time"), ("market",))


def funding_history(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("theoretical_funding_rate", "actual_funding_rate"), ("funding_time",), ("market",))


def premium_history(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("premium_index",), ("created_at",), ("market",))


def basis_history(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("basis_rate",), ("created_at",), ("market",))


def index_prices(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("price",), ("created_at",), ("market",))


def markets(data: Any) -> pl.DataFrame:
    return _frame(_rows(data), ("maker_fee_rate", "taker_fee_rate", "min_amount"), (),
                  ("market", "base_ccy", "quote_ccy", "status"))


def margin_tiers(data: Any) -> pl.DataFrame:
    """One row per tier: market, tier (1 = smallest positions), amount (position ceiling), leverage, margin rates."""
    rows = []
    for entry in _rows(data):
        for tier, level in enumerate(entry.get("level") or [], start=1):
            rows.append({"market": entry.get("market"), "tier": tier, **level})
    frame = _frame(rows, ("amount", "leverage", "maintenance_margin_rate", "min_initial_margin_rate"),
                   strings=("market",))
    return frame.with_columns(pl.Series("tier", [r["tier"] for r in rows], pl.Int32))
