"""Parsing of raw string values into the contract's types, as polars expressions."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import TIMESTAMP_DTYPE

# Epoch magnitudes: below 1e11 seconds (until year 5138), below 1e14 milliseconds (from 1973),
# below 1e17 microseconds, nanoseconds above.
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_MICROS_BELOW = 1e17

_ISO_FORMATS = (
    ("%Y-%m-%d %H:%M:%S%.f%z", True),
    ("%Y-%m-%d %H:%M:%S%.f", False),
    ("%Y-%m-%d %H:%M%z", True),
    ("%Y-%m-%d %H:%M", False),
    ("%Y-%m-%d", False),
)

NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INTEGER_PATTERN = r"^[+-]?\d+$"


def clean_strings(expr: pl.Expr) -> pl.Expr:
    """Strip whitespace; empty strings become null."""
    stripped = expr.str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


def parse_number(expr: pl.Expr) -> pl.Expr:
    """A finite float from a decimal or scientific string; null when it is not one (nan and inf included)."""
    value = clean_strings(expr).cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _epoch_to_micros(text: pl.Expr) -> pl.Expr:
    integer = text.cast(pl.Int64, strict=False)
    number = text.cast(pl.Float64, strict=False)
    magnitude = number.abs()
    exact = (
        pl.when(magnitude < _SECONDS_BELOW)
        .then(integer * 1_000_000)
        .when(magnitude < _MILLIS_BELOW)
        .then(integer * 1_000)
        .when(magnitude < _MICROS_BELOW)
        .then(integer)
        .otherwise(integer // 1_000)
    )
    fractional = (
        pl.when(magnitude < _SECONDS_BELOW)
        .then(number * 1e6)
        .when(magnitude < _MILLIS_BELOW)
        .then(number * 1e3)
        .when(magnitude < _MICROS_BELOW)
        .then(number)
        .otherwise(number / 1e3)
        .round(0)
        .cast(pl.Int64, strict=False)
    )
    return pl.when(text.str.contains(_INTEGER_PATTERN)).then(exact).otherwise(fractional)


def _iso_to_datetime(text: pl.Expr) -> pl.Expr:
    normalised = (
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt ]+", "$1 ")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"\s*(?i:UTC)$", "+00:00")
        .str.replace(r"\s+([+-]\d{2}:?\d{2})$", "$1")
    )
    attempts = [
        normalised.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False, exact=True)
        for fmt, _ in _ISO_FORMATS
    ]
    return pl.coalesce(attempts)


def parse_timestamp(expr: pl.Expr) -> pl.Expr:
    """UTC microsecond timestamps from ISO-8601 (offset or naive = UTC) or epoch s/ms/µs/ns by magnitude."""
    text = clean_strings(expr)
    epoch = _epoch_to_micros(text).cast(TIMESTAMP_DTYPE)
    return pl.when(text.str.contains(NUMBER_PATTERN)).then(epoch).otherwise(_iso_to_datetime(text))


# Formats tried on a sample of a column: when one reads the whole sample, the column is parsed with it in
# one pass and only the rows it misses go through the general parser above (several times slower).
_FAST_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%:z",
)


def parse_timestamp_column(values: pl.Series) -> pl.Series:
    """`parse_timestamp` for a whole column, with a fast path for the column's dominant format."""
    name = values.name
    text = values.str.strip_chars()
    sample = text.filter(text.str.len_chars() > 0).head(64)
    general = parse_timestamp(pl.col(name))
    fast: pl.Expr | None = None
    if sample.len() and sample.str.contains(_INTEGER_PATTERN).all():
        fast = _epoch_to_micros(clean_strings(pl.col(name))).cast(TIMESTAMP_DTYPE)
    elif sample.len():
        for fmt in _FAST_FORMATS:
            if sample.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False, exact=True).null_count() == 0:
                fast = pl.col(name).str.strip_chars().str.to_datetime(
                    fmt, time_unit="us", time_zone="UTC", strict=False, exact=True)
                break
    frame = values.to_frame()
    if fast is None:
        return frame.select(general).to_series()
    parsed = frame.select(fast.alias(name)).to_series()
    missed = parsed.is_null() & (text.str.len_chars() > 0).fill_null(False)
    if not missed.any():
        return parsed
    return frame.with_columns(parsed.alias("__fast")).select(
        pl.when(missed).then(general).otherwise(pl.col("__fast")).alias(name)).to_series()
