"""Data-quality checks on typed frames, shared by the Dagster asset checks and the tests."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import Reject


def contract_problems(frame: pl.DataFrame | pl.LazyFrame, schema: dict[str, pl.DataType],
                      required: tuple[str, ...], key: tuple[str, ...]) -> list[str]:
    """What is wrong with rows that should satisfy the contract: columns, dtypes, null keys, duplicates.

    Works on a lazy frame without loading it whole (one streaming pass for nulls and keys).
    """
    lazy = frame.lazy()
    actual = lazy.collect_schema()
    problems = []
    missing = [c for c in schema if c not in actual]
    if missing:
        problems.append(f"missing columns {missing}")
    wrong = [f"{c}: {actual[c]} != {d}" for c, d in schema.items() if c in actual and actual[c] != d]
    if wrong:
        problems.append(f"wrong dtypes ({', '.join(wrong)})")
    if missing:
        return problems
    stats = lazy.select(
        *[pl.col(c).null_count().alias(c) for c in required],
        pl.len().alias("__rows"),
        pl.struct(list(key)).n_unique().alias("__keys"),
    ).collect(engine="streaming").row(0, named=True)
    nulls = {c: stats[c] for c in required if stats[c]}
    if nulls:
        problems.append(f"null values in required columns {nulls}")
    duplicates = stats["__rows"] - stats["__keys"]
    if duplicates:
        problems.append(f"{duplicates} duplicate keys {list(key)}")
    return problems


def count_rejected_rows(rejects: pl.DataFrame | pl.LazyFrame) -> int:
    """Input rows behind the rejects (a row with several bad fields has several rejects)."""
    return rejects.lazy().select(pl.struct(Reject.SOURCE, Reject.LINE).n_unique()).collect().item()


def rejected_share(accepted_rows: int, rejects: pl.DataFrame | pl.LazyFrame) -> tuple[float, int]:
    """Share of rejected rows among all rows read, and the number of rejected rows."""
    rejected = count_rejected_rows(rejects)
    total = accepted_rows + rejected
    return (rejected / total if total else 0.0), rejected
