"""The training set: account-day feature rows labelled from episode labels, and its time-aware split."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from surveillance_pipeline.contract import LABEL_SCHEMA, USER_IDS_SEPARATOR, Label
from surveillance_pipeline.features.base import ACCOUNT, DATE

LABEL = "label"
PATTERNS = "patterns"
SPLIT = "split"
SPLITS = ("train", "validation", "test")


class TrainingDataError(ValueError):
    """Training data that cannot give a meaningful model: says what is missing."""


def account_day_labels(labels: pl.DataFrame) -> pl.DataFrame:
    """Episode labels -> one row per (account, day) the episode touches, with its patterns ';'-joined.

    An episode marks every listed account on every UTC day its window overlaps. Market-level episodes
    (no accounts) mark no account-day.
    """
    missing = [c for c in LABEL_SCHEMA if c not in labels.columns]
    if missing:
        raise TrainingDataError(f"labels lack columns {missing}; expected {list(LABEL_SCHEMA)}")
    if labels.is_empty():
        return pl.DataFrame(schema={ACCOUNT: pl.String, DATE: pl.Date, PATTERNS: pl.String})
    return (
        labels.with_columns(
            pl.col(Label.USER_IDS).cast(pl.String).fill_null("").str.split(USER_IDS_SEPARATOR).alias(ACCOUNT),
            pl.date_ranges(pl.col(Label.START).dt.date(), pl.col(Label.END).dt.date()).alias(DATE))
        .explode(ACCOUNT).explode(DATE)
        .with_columns(pl.col(ACCOUNT).str.strip_chars())
        .filter(pl.col(ACCOUNT) != "")
        .group_by(ACCOUNT, DATE)
        .agg(pl.col(Label.PATTERN).unique().sort().str.join(USER_IDS_SEPARATOR).alias(PATTERNS))
        .sort(DATE, ACCOUNT)
    )


def build_training_set(features: pl.DataFrame, labels: pl.DataFrame | None) -> pl.DataFrame:
    """Feature rows with `label` (1 abusive, 0 not; null when no labels cover the data) and `patterns`."""
    if features.is_empty():
        raise TrainingDataError("no account features to train on: materialise account_features first")
    for column in (ACCOUNT, DATE):
        if column not in features.columns:
            raise TrainingDataError(f"account features lack the key column {column!r}")
    if labels is None:
        return features.with_columns(pl.lit(None, pl.Int8).alias(LABEL), pl.lit(None, pl.String).alias(PATTERNS))
    marked = account_day_labels(labels)
    return (
        features.with_columns(pl.col(ACCOUNT).cast(pl.String))
        .join(marked, on=[ACCOUNT, DATE], how="left")
        .with_columns(pl.col(PATTERNS).is_not_null().cast(pl.Int8).alias(LABEL))
        .sort(DATE, ACCOUNT)
    )


@dataclass(frozen=True)
class SplitDays:
    train: tuple[date, ...]
    validation: tuple[date, ...]
    test: tuple[date, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {name: [d.isoformat() for d in getattr(self, name)] for name in SPLITS}


def split_by_time(table: pl.DataFrame, train_share: float = 0.70,
                  validation_share: float = 0.15) -> tuple[pl.DataFrame, SplitDays]:
    """70 / 15 / 15 by whole days in time order: training days come first, then validation, then test, so
    no account-day (nor any day) is in two splits and no model is judged on days before those it learned from.

    The cuts fall on the day boundaries nearest the requested shares of account-days, with at least one day
    per split; fewer than 3 days cannot be split.
    """
    if train_share + validation_share >= 1.0:
        raise TrainingDataError("train_share + validation_share must leave a share for the test split")
    counts = table.group_by(DATE).len().sort(DATE)
    days = counts.get_column(DATE).to_list()
    if len(days) < 3:
        raise TrainingDataError(f"a time-aware split needs at least 3 days of account features, got {len(days)}")
    cumulative = counts.get_column("len").cum_sum().to_list()
    total = cumulative[-1]

    def cut(share: float, low: int, high: int) -> int:
        # index of the first day after the cut, within [low, high]
        best = min(range(low, high + 1), key=lambda i: abs((cumulative[i - 1] if i else 0) - share * total))
        return best

    first_val = cut(train_share, 1, len(days) - 2)
    first_test = cut(train_share + validation_share, first_val + 1, len(days) - 1)
    split_days = SplitDays(tuple(days[:first_val]), tuple(days[first_val:first_test]), tuple(days[first_test:]))
    assignment = pl.DataFrame({DATE: days, SPLIT: ["train"] * first_val + ["validation"] * (first_test - first_val)
                               + ["test"] * (len(days) - first_test)})
    return table.join(assignment, on=DATE, how="left"), split_days
