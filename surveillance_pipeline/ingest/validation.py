"""Per-row validation of mapped raw frames: valid rows are typed to the contract, invalid rows are
kept as rejects naming their line, field and reason. Works chunk by chunk; a `KeyTracker` carries
what duplicate detection needs across chunks of one file (a whole day's duplicates are found in one
pass instead, see landing.validate_staged)."""
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
from surveillance_pipeline.ingest.parsing import (
    NUMBER_PATTERN,
    clean_strings,
    parse_number_column,
    parse_timestamp_column,
)
from surveillance_pipeline.ingest.readers import LINE, ROW_ERROR

ExistingKeys = Callable[[pl.DataFrame], pl.DataFrame]  # key columns in -> the keys already stored
FIRST_SEEN = "__first"  # the line where a row's key was first seen, on rows that repeat a key
_ERR = "__err__"
_PARSED = "__parsed__"
_CLEAN = "__clean__"
_FAILED = "__failed__"
_SIDES = [s.value for s in Side]
_MARKETS = [m.value for m in MarketType]
# Text compared case-insensitively is kept lower-case, symbols upper-case.
_LOWER_CASE = (Trade.SIDE, Trade.MARKET_TYPE, Order.SIDE, Order.EVENT, Order.ORDER_TYPE, Order.MARKET_TYPE)
_UPPER_CASE = (Trade.SYMBOL, Order.SYMBOL)
_VOCABULARIES = {Trade.SIDE: _SIDES, Order.SIDE: _SIDES, Order.EVENT: [e.value for e in OrderEvent],
                 Trade.MARKET_TYPE: _MARKETS, Order.MARKET_TYPE: _MARKETS}


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
    # None: duplicates and stored keys are left to the caller, who checks them over more than one file
    keys: KeyTracker | None = field(default_factory=KeyTracker)
    generated: KeyTracker = field(default_factory=KeyTracker)


def _text(name: str) -> pl.Expr:
    """The value stripped, empty as null, in the contract's case: cleaned once per chunk (see `_prepared`)."""
    return pl.col(_CLEAN + name)


def _parsed(name: str) -> pl.Expr:
    """The value parsed once per chunk (see `_prepared`)."""
    return pl.col(_PARSED + name)


def _cleaned(name: str) -> pl.Expr:
    """What `_text` reads: the column stripped, empty as null, in the contract's case."""
    value = clean_strings(pl.col(name))
    if name in _LOWER_CASE:
        value = value.str.to_lowercase()
    elif name in _UPPER_CASE:
        value = value.str.to_uppercase()
    if name in _VOCABULARIES:
        # Exact words of the vocabulary (the usual case) are kept as they are; when every value of the
        # chunk is one, polars skips the cleaning altogether.
        value = pl.when(pl.col(name).is_in(_VOCABULARIES[name])).then(pl.col(name)).otherwise(value)
    return value


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
    raw, parsed = clean_strings(pl.col(name)), _parsed(name)  # raw: for the reasons of failing rows only
    low = ctx.min_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    high = ctx.max_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    outside = (parsed < ctx.min_timestamp) | (parsed > ctx.max_timestamp)
    # an epoch number (typed Parquet timestamps are staged as epoch microseconds) is shown with its instant
    instant = pl.when(raw.str.contains(NUMBER_PATTERN)).then(
        pl.format(" ({})", parsed.dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))).otherwise(pl.lit(""))
    reason = (
        pl.when(raw.is_null()).then(pl.lit("required field is empty"))
        .when(parsed.is_null())
        .then(pl.format("not a timestamp: {} (expected ISO-8601 or epoch s/ms/µs/ns)", _quote(name)))
        .when(outside)
        .then(pl.format("outside the accepted range {} .. {}: {}{}", pl.lit(low), pl.lit(high), _quote(name),
                        instant))
    )
    return Check(name, parsed.is_null() | outside, reason)


def _vocabulary_check(name: str, required: bool) -> Check:
    value, allowed = _text(name), _VOCABULARIES[name]
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


def _prepared(raw: pl.DataFrame, schema: dict[str, pl.DataType], timestamps: tuple[str, ...],
              numbers: tuple[str, ...]) -> pl.DataFrame:
    """The chunk with every value cleaned (`_text`) and parsed (`_parsed`) once, for the checks and for
    the typed rows alike."""
    raw = _with_missing_columns(raw, schema)
    return raw.with_columns(
        *[_cleaned(c).alias(_CLEAN + c) for c in schema if c not in timestamps],
        *[parse_timestamp_column(raw.get_column(c)).alias(_PARSED + c) for c in timestamps],
        *[parse_number_column(raw.get_column(c)).alias(_PARSED + c) for c in numbers],
    )


def _split(raw: pl.DataFrame, checks: list[Check], source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run the checks; return the passing rows and the rejects (one per failing field of a failing row)."""
    flags = [_FAILED + c.field for c in checks]
    flagged = raw.with_columns(c.failed.fill_null(True).alias(flag) for c, flag in zip(checks, flags))
    failed = pl.any_horizontal(*flags, pl.col(ROW_ERROR).is_not_null())
    good = flagged.filter(~failed).drop(flags)
    rejected = flagged.filter(failed)
    # Reasons are formatted for the failing rows only; a structurally broken row (e.g. too many fields)
    # is reported once, not once per empty field.
    unbroken = pl.col(ROW_ERROR).is_null()
    rejected = rejected.with_columns(
        *[pl.when(unbroken & pl.col(flag)).then(c.reason).alias(_ERR + c.field) for c, flag in zip(checks, flags)],
        pl.col(ROW_ERROR).alias(_ERR + "row"),
    )
    error_columns = [_ERR + c.field for c in checks] + [_ERR + "row"]
    rejects = rejected.unpivot(index=[LINE], on=error_columns, variable_name="field", value_name=Reject.REASON)
    rejects = rejects.filter(pl.col(Reject.REASON).is_not_null()).with_columns(
        pl.col("field").str.strip_prefix(_ERR)
    )
    originals = [c for c in raw.columns if c not in (LINE, ROW_ERROR) and not c.startswith((_PARSED, _CLEAN))]
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


@dataclass(frozen=True)
class RowKey:
    """What identifies a row, the field a repeated or stored key is reported on, and how a key reads."""

    columns: tuple[str, ...]
    field: str
    describe: pl.Expr

    def hashed(self) -> pl.Expr:
        """The key as a 64-bit hash: equal keys have equal hashes (distinct keys collide with odds ~n²/2⁶⁵)."""
        return pl.struct(list(self.columns)).hash(seed=0)

    def drop_repeated(self, typed: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Reject the rows whose `FIRST_SEEN` is set: a key seen on an earlier row."""
        typed, rejected = _drop_keys(
            typed, typed.get_column(FIRST_SEEN).is_not_null(), self.field, pl.col(self.field),
            pl.format("duplicate {}: first seen at line {}", self.describe, pl.col(FIRST_SEEN)), source,
        )
        return typed.drop(FIRST_SEEN), rejected

    def drop_stored(self, typed: pl.DataFrame, stored: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Reject the rows whose key is among `stored` (keys an `ExistingKeys` found)."""
        key = list(self.columns)
        if not stored.height:
            return typed, pl.DataFrame(schema=REJECT_SCHEMA)
        marked = stored.select(key).unique().with_columns(pl.lit(True).alias("__stored"))
        typed = typed.join(marked, on=key, how="left", maintain_order="left")
        mask = typed.get_column("__stored").fill_null(False)
        return _drop_keys(typed.drop("__stored"), mask, self.field, pl.col(self.field),
                          pl.format("{} is already stored", self.describe), source)


TRADE_ROW_KEY = RowKey(TRADE_KEY, Trade.TRADE_ID,
                       pl.format("trade_id '{}' for symbol {}", pl.col(Trade.TRADE_ID), pl.col(Trade.SYMBOL)))
ORDER_ROW_KEY = RowKey(ORDER_KEY, Order.ORDER_ID, pl.format(
    "event '{}' of order '{}' at {}", pl.col(Order.EVENT), pl.col(Order.ORDER_ID),
    pl.col(Order.TIMESTAMP).dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
))


def _deduplicate(typed: pl.DataFrame, row_key: RowKey, ctx: ValidationContext,
                 source: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Drop rows whose key was seen earlier in the file (``ctx.keys``) or is already stored."""
    seen = ctx.keys.observe(typed.select(row_key.hashed()).to_series(), typed[LINE])
    repeats = seen.select(pl.when(pl.col("occurrence") > 0).then(pl.col("first_line")).alias(FIRST_SEEN))
    typed, rejected = row_key.drop_repeated(typed.with_columns(repeats.to_series()), source)
    rejects = [rejected]
    if ctx.existing_keys is not None and typed.height:
        stored = ctx.existing_keys(typed.select(list(row_key.columns)))
        typed, rejected = row_key.drop_stored(typed, stored, source)
        rejects.append(rejected)
    return typed, rejects


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
        _text(symbol).alias(symbol),
        _parsed(timestamp).alias(timestamp),
        _text(market_type).fill_null(MarketType.SPOT.value).alias(market_type),
    ]


def validate_trades(raw: pl.DataFrame, ctx: ValidationContext, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed trades (TRADE_SCHEMA plus ``__line``) and rejects (REJECT_SCHEMA) for one chunk."""
    numbers = (Trade.PRICE, Trade.QUANTITY, Trade.QUOTE_QUANTITY, Trade.FEE)
    raw = _prepared(raw, TRADE_SCHEMA, (Trade.TIMESTAMP,), numbers)
    required = tuple(c for c in TRADE_REQUIRED if not (c == Trade.TRADE_ID and ctx.generate_trade_ids))
    checks = [
        _timestamp_check(Trade.TIMESTAMP, ctx),
        _vocabulary_check(Trade.SIDE, required=True),
        _vocabulary_check(Trade.MARKET_TYPE, required=False),
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
        _text(Trade.SIDE).alias(Trade.SIDE),
        *[_parsed(c).alias(c) for c in numbers],
    )
    if ctx.generate_trade_ids:
        typed = _assign_generated_trade_ids(typed, ctx)
    typed, more = _deduplicate(typed, TRADE_ROW_KEY, ctx, source) if ctx.keys is not None else (typed, [])
    return typed.select(LINE, *TRADE_SCHEMA).cast(TRADE_SCHEMA), pl.concat([rejects, *more]).sort(Reject.LINE)


def validate_orders(raw: pl.DataFrame, ctx: ValidationContext, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed order events (ORDER_SCHEMA plus ``__line``) and rejects (REJECT_SCHEMA) for one chunk."""
    numbers = (Order.PRICE, Order.QUANTITY)
    raw = _prepared(raw, ORDER_SCHEMA, (Order.TIMESTAMP,), numbers)
    event, order_type = _text(Order.EVENT), _text(Order.ORDER_TYPE)
    needs_quantity = ~event.is_in([e.value for e in ORDER_EVENTS_WITHOUT_PRICE]).fill_null(False)
    needs_price = needs_quantity & (order_type != MARKET_ORDER_TYPE).fill_null(True)
    checks = [
        _timestamp_check(Order.TIMESTAMP, ctx),
        _vocabulary_check(Order.SIDE, required=True),
        _vocabulary_check(Order.EVENT, required=True),
        _vocabulary_check(Order.MARKET_TYPE, required=False),
        _numeric_check(Order.PRICE, needs_price, positive=True),
        _numeric_check(Order.QUANTITY, needs_quantity, positive=True),
        *_required_checks(ORDER_REQUIRED, {Order.TIMESTAMP, Order.SIDE, Order.EVENT}),
    ]
    good, rejects = _split(raw, checks, source)
    typed = good.select(
        *_contract_columns(Order.SYMBOL, Order.TIMESTAMP, Order.MARKET_TYPE),
        *[_text(c).alias(c) for c in (Order.ORDER_ID, Order.USER_ID, Order.SIDE, Order.EVENT, Order.ORDER_TYPE)],
        *[_parsed(c).alias(c) for c in numbers],
    )
    typed, more = _deduplicate(typed, ORDER_ROW_KEY, ctx, source) if ctx.keys is not None else (typed, [])
    return typed.select(LINE, *ORDER_SCHEMA).cast(ORDER_SCHEMA), pl.concat([rejects, *more]).sort(Reject.LINE)
