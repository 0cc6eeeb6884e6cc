"""Data-quality checks on typed frames, shared by the Dagster asset checks and the tests."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import Reject


def contract_problems(frame: pl.DataFrame, schema: dict[str, pl.DataType], required: tuple[str, ...],
                      key: tuple[str, ...]) -> list[str]:
    """What is wrong with a frame that should satisfy the contract: columns, dtypes, null keys, duplicates."""
    problems = []
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    wrong = [f"{c}: {frame.schema[c]} != {d}" for c, d in schema.items() if c in frame.columns and frame.schema[c] != d]
    if wrong:
        problems.append(f"wrong dtypes ({', '.join(wrong)})")
    if missing:
        return problems
    nulls = {c: frame.get_column(c).null_count() for c in required}
    nulls = {c: n for c, n in nulls.items() if n}
    if nulls:
        problems.append(f"null values in required columns {nulls}")
    duplicates = frame.height - frame.select(list(key)).unique().height
    if duplicates:
        problems.append(f"{duplicates} duplicate keys {list(key)}")
    return problems


def count_rejected_rows(rejects: pl.DataFrame) -> int:
    """Input rows behind the rejects (a row with several bad fields has several rejects)."""
    return rejects.select(pl.struct(Reject.SOURCE, Reject.LINE).n_unique()).item() if rejects.height else 0


def rejected_share(accepted_rows: int, rejects: pl.DataFrame) -> tuple[float, int]:
    """Share of rejected rows among all rows read, and the number of rejected rows."""
    rejected = count_rejected_rows(rejects)
    total = accepted_rows + rejected
    return (rejected / total if total else 0.0), rejected
