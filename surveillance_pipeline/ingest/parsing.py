"""Parsing of raw string values into the contract's types, as polars expressions."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import TIMESTAMP_DTYPE

# Epoch magnitudes: below 1e11 seconds (until year 5138), below 1e14 milliseconds (from 1973),
# below 1e17 microseconds, nanoseconds above.
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_MICROS_BELOW = 1e17
EPOCH_MICROS = (int(_MILLIS_BELOW), int(_MICROS_BELOW))  # integers in [from, until) read as microseconds

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
    return expr.str.strip_chars().replace("", None)  # half the cost of a when/then on the length


def parse_number(expr: pl.Expr) -> pl.Expr:
    """A finite float from a decimal or scientific string; null when it is not one (nan and inf included)."""
    value = clean_strings(expr).cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def parse_number_column(values: pl.Series) -> pl.Series:
    """`parse_number` for a whole column: the usual column, every value a number without blanks around
    it, is cast as it is (cleaning it first costs more than the cast)."""
    number = values.cast(pl.Float64, strict=False)
    if (number.is_null() & values.is_not_null()).any():
        return values.to_frame().select(parse_number(pl.col(values.name))).to_series()
    return number.to_frame().select(pl.when(number.is_finite()).then(number)).to_series()


def _by_magnitude(magnitude: pl.Expr, seconds: pl.Expr, millis: pl.Expr, micros: pl.Expr,
                  nanos: pl.Expr) -> pl.Expr:
    return (
        pl.when(magnitude < _SECONDS_BELOW)
        .then(seconds)
        .when(magnitude < _MILLIS_BELOW)
        .then(millis)
        .when(magnitude < _MICROS_BELOW)
        .then(micros)
        .otherwise(nanos)
    )


def _integer_to_micros(integer: pl.Expr) -> pl.Expr:
    """Epoch microseconds from an integer epoch in s/ms/µs/ns (told apart by magnitude), exactly."""
    magnitude = integer.cast(pl.Float64).abs()
    return _by_magnitude(magnitude, integer * 1_000_000, integer * 1_000, integer, integer // 1_000)


def _epoch_to_micros(text: pl.Expr) -> pl.Expr:
    number = text.cast(pl.Float64, strict=False)
    fractional = (
        _by_magnitude(number.abs(), number * 1e6, number * 1e3, number, number / 1e3)
        .round(0)
        .cast(pl.Int64, strict=False)
    )
    exact = _integer_to_micros(text.cast(pl.Int64, strict=False))
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


_SAMPLE_FROM = 1_000  # the sample: the first 64 values that are not blank among the column's first 1,000
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
    """`parse_timestamp` for a whole column, with a fast path for the column's dominant format.

    The format is told from a sample; every value it does not read (blanks and surrounding spaces
    included) goes through the general parser, so the result is the general parser's, row for row.
    """
    name = values.name
    head = values.head(_SAMPLE_FROM).str.strip_chars()
    if (head != values.head(_SAMPLE_FROM)).any():  # padded values: strip them all, not only the sample
        values = values.str.strip_chars()
    sample = head.filter(head.str.len_bytes() > 0).head(64)
    fast: pl.Expr | None = None
    if sample.len() and sample.str.contains(_INTEGER_PATTERN).all():
        # Only what casts to an integer is read here (the float and pattern tests of the general parser
        # cost several times more).
        fast = _integer_to_micros(pl.col(name).cast(pl.Int64, strict=False)).cast(TIMESTAMP_DTYPE)
    elif sample.len():
        for fmt in _FAST_FORMATS:
            if sample.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False, exact=True).null_count() == 0:
                fast = pl.col(name).str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False, exact=True)
                break
    if fast is None:
        return values.to_frame().select(parse_timestamp(pl.col(name))).to_series()
    parsed = values.to_frame().select(fast.alias(name)).to_series()
    missed = (parsed.is_null() & values.is_not_null()).arg_true()
    if missed.len():
        general = values.gather(missed).to_frame().select(parse_timestamp(pl.col(name))).to_series()
        parsed = parsed.scatter(missed, general)
    return parsed
