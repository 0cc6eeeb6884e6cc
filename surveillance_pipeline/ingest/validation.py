"""Per-row validation of mapped raw frames: valid rows are typed to the contract, invalid rows are
kept as rejects naming their line, field and reason. Works chunk by chunk; a `KeyTracker` carries
what duplicate detection needs across chunks of one file."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from surveillance_pipeline.contract import (
    MARKET_ORDER_TYPE,
    ORDER_EVENTS_WITHOUT_PRICE,
    ORDER_KEY,
    ORDER_REQUIRED,
    ORDER_SCHEMA,
    REJECT_SCHEMA,
    TRADE_KEY,
    TRADE_REQUIRED,
    TRADE_SCHEMA,
    MarketType,
    Order,
    OrderEvent,
    Reject,
    Side,
    Trade,
)
from surveillance_pipeline.ingest.parsing import clean_strings, parse_number, parse_timestamp_column
from surveillance_pipeline.ingest.readers import LINE, ROW_ERROR

ExistingKeys = Callable[[pl.DataFrame], pl.DataFrame]  # key columns in -> the keys already stored
_ERR = "__err__"
_PARSED = "__parsed__"
_SIDES = [s.value for s in Side]
_EVENTS = [e.value for e in OrderEvent]
_MARKETS = [m.value for m in MarketType]


class _Run:
    """Sorted keys with their counts and first lines: one level of the tracker."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, first: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys, self.counts, self.first = keys[order], counts[order], first[order]

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each key, whether this run holds it and where."""
        at = np.searchsorted(self.keys, keys)
        inside = at < self.keys.size
        found = np.zeros(keys.size, dtype=bool)
        found[inside] = self.keys[at[inside]] == keys[inside]
        return found, at


class KeyTracker:
    """Keys seen earlier in one file: how often, and on which line first (64-bit hashes of the keys).

    Held as a few sorted runs (merged when two are of similar size, as in a log-structured merge), so a
    chunk is checked by binary search in O(chunk × log n) — not by a join against everything seen, which
    grows with the file. Memory is 20 bytes per distinct key.
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []

    def observe(self, keys: pl.Series, lines: pl.Series) -> pl.DataFrame:
        """For each key, how many times it occurred before (this chunk included) and its first line."""
        key_values = keys.to_numpy()
        line_values = lines.to_numpy()
        order = np.argsort(key_values, kind="stable")  # rows in file order within each key
        ordered = key_values[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if ordered.size else np.array([], int)
        group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1 if ordered.size else np.array([], int)
        unique = ordered[starts]
        added = np.diff(np.r_[starts, ordered.size]).astype(np.uint32)
        first = line_values[order][starts].astype(np.int64)
        prior = np.zeros(unique.size, dtype=np.uint32)
        known = np.zeros(unique.size, dtype=bool)
        for run in self._runs:  # `unique` is sorted: the binary searches walk each run in order
            found, at = run.find(unique)
            if found.any():
                where = at[found]
                prior[found] = run.counts[where]
                first[found] = run.first[where]
                run.counts[where] += added[found]  # rare: duplicates of earlier chunks
                known |= found
        if (~known).any():
            self._add(_Run(unique[~known], added[~known], first[~known]))
        occurrence = np.empty(ordered.size, dtype=np.uint32)
        first_line = np.empty(ordered.size, dtype=np.int64)
        occurrence[order] = (np.arange(ordered.size) - starts[group]) + prior[group]
        first_line[order] = first[group]
        return pl.DataFrame({"occurrence": occurrence, "first_line": first_line})

    def _add(self, run: _Run) -> None:
        self._runs.append(run)
        while len(self._runs) > 1 and self._runs[-2].keys.size <= 2 * self._runs[-1].keys.size:
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(_Run(np.concatenate([older.keys, newer.keys]),
                                   np.concatenate([older.counts, newer.counts]),
                                   np.concatenate([older.first, newer.first])))


@dataclass
class ValidationContext:
    """What validating one file needs beyond the rows: time bounds, the store, and cross-chunk state."""

    min_timestamp: datetime
    max_timestamp: datetime
    generate_trade_ids: bool = False
    existing_keys: ExistingKeys | None = None
    keys: KeyTracker = field(default_factory=KeyTracker)
    generated: KeyTracker = field(default_factory=KeyTracker)


def _text(name: str) -> pl.Expr:
    return clean_strings(pl.col(name))


def _parsed(name: str) -> pl.Expr:
    """The value parsed once per chunk (see `_with_parsed`)."""
    return pl.col(_PARSED + name)


def _quote(name: str) -> pl.Expr:
    return pl.format("'{}'", pl.col(name).fill_null(""))


@dataclass(frozen=True)
class Check:
    """One field's rule: a cheap test over every row, and the reason, formatted for failing rows only."""

    field: str
    failed: pl.Expr
    reason: pl.Expr


def _numeric_check(name: str, required: pl.Expr | bool, positive: bool) -> Check:
    raw, value = _text(name), _parsed(name)
    missing = raw.is_null() & (required if isinstance(required, pl.Expr) else pl.lit(required))
    bad = raw.is_not_null() & value.is_null()
    # parse_number already turns nan and inf into "not a number"; what is left to check is the sign
    rule = raw.is_not_null() & ((value <= 0) if positive else pl.lit(False))
    reason = (
        pl.when(missing).then(pl.lit("required field is empty"))
        .when(bad).then(pl.format("not a number: {}", _quote(name)))
        .when(rule).then(pl.format("must be a finite number > 0, got {}", pl.col(name)))
    )
    return Check(name, missing | bad | rule, reason)


def _timestamp_check(name: str, ctx: ValidationContext) -> Check:
    raw, parsed = _text(name), _parsed(name)
    low = ctx.min_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    high = ctx.max_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    outside = (parsed < ctx.min_timestamp) | (parsed > ctx.max_timestamp)
    reason = (
        pl.when(raw.is_null()).then(pl.lit("required field is empty"))
        .when(parsed.is_null())
        .then(pl.format("not a timestamp: {} (expected ISO-8601 or epoch s/ms/µs/ns)", _quote(name)))
        .when(outside)
        .then(pl.format("outside the accepted range {} .. {}: {}", pl.lit(low), pl.lit(high), _quote(name)))
    )
    return Check(name, parsed.is_null() | outside, reason)


def _vocabulary_check(name: str, allowed: list[str], required: bool) -> Check:
    value = _text(name).str.to_lowercase()
    expected = " or ".join(f"'{v}'" for v in allowed)
    missing = value.is_null() & pl.lit(required)
    unknown = value.is_not_null() & ~value.is_in(allowed)
    reason = (
        pl.when(missing).then(pl.lit("required field is empty"))
        .when(unknown).then(pl.format("must be {}, got {}", pl.lit(expected), _quote(name)))
    )
    return Check(name, missing | unknown, reason)


def _required_checks(names: tuple[str, ...], checked: set[str]) -> list[Check]:
    return [
        Check(name, _text(name).is_null(), pl.lit("required field is empty"))
        for name in names
        if name not in checked
    ]


def _with_missing_columns(raw: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in schema if c not in raw.columns]
    if ROW_ERROR not in raw.columns:
        missing.append(pl.lit(None, dtype=pl.String).alias(ROW_ERROR))
    return raw.with_columns(missing) if missing else raw


def _with_parsed(raw: pl.DataFrame, timestamps: tuple[str, ...], numbers: tuple[str, ...]) -> pl.DataFrame:
    return raw.with_columns(
        *[parse_timestamp_column(raw.get_column(c)).alias(_PARSED + c) for c in timestamps],
        *[parse_number(pl.col(c)).alias(_PARSED + c) for c in numbers],
    )


def _split(raw: pl.DataFrame, checks: list[Check], source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run the checks; return the passing rows and the rejects (one per failing field of a failing row)."""
    failed = pl.any_horizontal(*[c.failed.fill_null(True) for c in checks], pl.col(ROW_ERROR).is_not_null())
    flagged = raw.with_columns(failed.alias("__failed"))
    good = flagged.filter(~pl.col("__failed")).drop("__failed")
    rejected = flagged.filter(pl.col("__failed"))
    # Reasons are formatted for the failing rows only; a structurally broken row (e.g. too many fields)
    # is reported once, not once per empty field.
    unbroken = pl.col(ROW_ERROR).is_null()
    rejected = rejected.with_columns(
        *[pl.when(unbroken & c.failed.fill_null(True)).then(c.reason).alias(_ERR + c.field) for c in checks],
        pl.col(ROW_ERROR).alias(_ERR + "row"),
    )
    error_columns = [_ERR + c.field for c in checks] + [_ERR + "row"]
    rejects = rejected.unpivot(index=[LINE], on=error_columns, variable_name="field", value_name=Reject.REASON)
    rejects = rejects.filter(pl.col(Reject.REASON).is_not_null()).with_columns(
        pl.col("field").str.strip_prefix(_ERR)
    )
    originals = [c for c in raw.columns if c not in (LINE, ROW_ERROR) and not c.startswith(_PARSED)]
    values = rejected.select(LINE, *originals).unpivot(index=[LINE], variable_name="field", value_name=Reject.VALUE)
    rejects = rejects.join(values, on=[LINE, "field"], how="left").sort(LINE, maintain_order=True)
    return good, _as_rejects(rejects, source)


def _as_rejects(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    return frame.select(
        pl.lit(source).alias(Reject.SOURCE),
        pl.col(LINE).alias(Reject.LINE),
        pl.col("field").alias(Reject.FIELD),
        pl.col(Reject.VALUE).cast(pl.String) if Reject.VALUE in frame.columns else pl.lit(None, pl.String).alias(Reject.VALUE),
        pl.col(Reject.REASON),
    ).cast(REJECT_SCHEMA)


def _drop_keys(frame: pl.DataFrame, mask: pl.Series, field_name: str, value: pl.Expr, reason: pl.Expr,
               source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    rejected = frame.filter(mask).select(
        pl.col(LINE), pl.lit(field_name).alias("field"), value.alias(Reject.VALUE), reason.alias(Reject.REASON)
    )
    return frame.filter(~mask), _as_rejects(rejected, source)


def _deduplicate(typed: pl.DataFrame, key: tuple[str, ...], id_column: str, ctx: ValidationContext,
                 describe: pl.Expr, source: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    rejects = []
    seen = ctx.keys.observe(typed.select(pl.struct(list(key)).hash(seed=0)).to_series(), typed[LINE])
    typed = typed.with_columns(seen["first_line"].alias("__first"))
    typed, rejected = _drop_keys(
        typed, seen["occurrence"] > 0, id_column, pl.col(id_column),
        pl.format("duplicate {}: first seen at line {}", describe, pl.col("__first")), source,
    )
    rejects.append(rejected)
    if ctx.existing_keys is not None and typed.height:
        stored = ctx.existing_keys(typed.select(list(key)))
        if stored.height:
            marked = stored.select(list(key)).unique().with_columns(pl.lit(True).alias("__stored"))
            typed = typed.join(marked, on=list(key), how="left", maintain_order="left")
            mask = typed.get_column("__stored").fill_null(False)
            typed = typed.drop("__stored")
            typed, rejected = _drop_keys(
                typed, mask, id_column, pl.col(id_column), pl.format("{} is already stored", describe), source
            )
            rejects.append(rejected)
    return typed.drop("__first"), rejects


def _assign_generated_trade_ids(typed: pl.DataFrame, ctx: ValidationContext) -> pl.DataFrame:
    # Tapes without trade ids: "<epoch µs>-<n>", n counting identical timestamps of a symbol in file
    # order, so that the same file always yields the same ids and overlapping files collide.
    micros = pl.col(Trade.TIMESTAMP).dt.epoch("us")
    keys = typed.select(pl.struct(Trade.SYMBOL, micros).hash(seed=1)).to_series()
    occurrence = ctx.generated.observe(keys, typed[LINE])["occurrence"]
    return typed.with_columns(pl.format("{}-{}", micros, occurrence).alias(Trade.TRADE_ID))


def _contract_columns(symbol: str, timestamp: str, market_type: str) -> list[pl.Expr]:
    """The typed columns trades and order events share: line, upper-case symbol, UTC time, market type."""
    return [
        pl.col(LINE),
        _text(symbol).str.to_uppercase().alias(symbol),
        _parsed(timestamp).alias(timestamp),
        _text(market_type).str.to_lowercase().fill_null(MarketType.SPOT.value).alias(market_type),
    ]


def validate_trades(raw: pl.DataFrame, ctx: ValidationContext, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed trades (TRADE_SCHEMA plus ``__line``) and rejects (REJECT_SCHEMA) for one chunk."""
    numbers = (Trade.PRICE, Trade.QUANTITY, Trade.QUOTE_QUANTITY, Trade.FEE)
    raw = _with_parsed(_with_missing_columns(raw, TRADE_SCHEMA), (Trade.TIMESTAMP,), numbers)
    required = tuple(c for c in TRADE_REQUIRED if not (c == Trade.TRADE_ID and ctx.generate_trade_ids))
    checks = [
        _timestamp_check(Trade.TIMESTAMP, ctx),
        _vocabulary_check(Trade.SIDE, _SIDES, required=True),
        _vocabulary_check(Trade.MARKET_TYPE, _MARKETS, required=False),
        _numeric_check(Trade.PRICE, True, positive=True),
        _numeric_check(Trade.QUANTITY, True, positive=True),
        _numeric_check(Trade.QUOTE_QUANTITY, False, positive=True),
        _numeric_check(Trade.FEE, False, positive=False),
        *_required_checks(required, {Trade.TIMESTAMP, Trade.SIDE, Trade.PRICE, Trade.QUANTITY}),
    ]
    good, rejects = _split(raw, checks, source)
    typed = good.select(
        *_contract_columns(Trade.SYMBOL, Trade.TIMESTAMP, Trade.MARKET_TYPE),
        *[_text(c).alias(c) for c in (Trade.TRADE_ID, Trade.BUYER_ID, Trade.SELLER_ID,
                                      Trade.BUYER_ORDER_ID, Trade.SELLER_ORDER_ID)],
        _text(Trade.SIDE).str.to_lowercase().alias(Trade.SIDE),
        *[_parsed(c).alias(c) for c in numbers],
    )
    if ctx.generate_trade_ids:
        typed = _assign_generated_trade_ids(typed, ctx)
    describe = pl.format("trade_id '{}' for symbol {}", pl.col(Trade.TRADE_ID), pl.col(Trade.SYMBOL))
    typed, more = _deduplicate(typed, TRADE_KEY, Trade.TRADE_ID, ctx, describe, source)
    return typed.select(LINE, *TRADE_SCHEMA).cast(TRADE_SCHEMA), pl.concat([rejects, *more]).sort(Reject.LINE)


def validate_orders(raw: pl.DataFrame, ctx: ValidationContext, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed order events (ORDER_SCHEMA plus ``__line``) and rejects (REJECT_SCHEMA) for one chunk."""
    numbers = (Order.PRICE, Order.QUANTITY)
    raw = _with_parsed(_with_missing_columns(raw, ORDER_SCHEMA), (Order.TIMESTAMP,), numbers)
    event = _text(Order.EVENT).str.to_lowercase()
    order_type = _text(Order.ORDER_TYPE).str.to_lowercase()
    needs_quantity = ~event.is_in([e.value for e in ORDER_EVENTS_WITHOUT_PRICE]).fill_null(False)
    needs_price = needs_quantity & (order_type != MARKET_ORDER_TYPE).fill_null(True)
    checks = [
        _timestamp_check(Order.TIMESTAMP, ctx),
        _vocabulary_check(Order.SIDE, _SIDES, required=True),
        _vocabulary_check(Order.EVENT, _EVENTS, required=True),
        _vocabulary_check(Order.MARKET_TYPE, _MARKETS, required=False),
        _numeric_check(Order.PRICE, needs_price, positive=True),
        _numeric_check(Order.QUANTITY, needs_quantity, positive=True),
        *_required_checks(ORDER_REQUIRED, {Order.TIMESTAMP, Order.SIDE, Order.EVENT}),
    ]
    good, rejects = _split(raw, checks, source)
    typed = good.select(
        *_contract_columns(Order.SYMBOL, Order.TIMESTAMP, Order.MARKET_TYPE),
        *[_text(c).alias(c) for c in (Order.ORDER_ID, Order.USER_ID)],
        *[_text(c).str.to_lowercase().alias(c) for c in (Order.SIDE, Order.EVENT, Order.ORDER_TYPE)],
        *[_parsed(c).alias(c) for c in numbers],
    )
    describe = pl.format(
        "event '{}' of order '{}' at {}", pl.col(Order.EVENT), pl.col(Order.ORDER_ID),
        pl.col(Order.TIMESTAMP).dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
    )
    typed, more = _deduplicate(typed, ORDER_KEY, Order.ORDER_ID, ctx, describe, source)
    return typed.select(LINE, *ORDER_SCHEMA).cast(ORDER_SCHEMA), pl.concat([rejects, *more]).sort(Reject.LINE)
