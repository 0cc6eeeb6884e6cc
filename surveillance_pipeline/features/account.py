"""The account feature table: one row per account and day, every calculator's columns side by side."""
from __future__ import annotations

from collections.abc import Callable

import polars as pl

from surveillance_pipeline.features import (
    behaviour,
    counterparty,
    frequency,
    order_intent,
    price_impact,
    temporal,
    volume,
)
from surveillance_pipeline.features.base import ACCOUNT, DATE, FeatureInputs, FeatureSpec

Calculator = Callable[[FeatureInputs], pl.LazyFrame]

# (calculator, its catalogue) in the order of the table's columns.
CALCULATORS: list[tuple[Calculator, list[FeatureSpec]]] = [
    (frequency.frequency_features, frequency.FEATURES),
    (volume.volume_features, volume.FEATURES),
    (temporal.temporal_features, temporal.FEATURES),
    (price_impact.price_impact_features, price_impact.FEATURES),
    (behaviour.behaviour_features, behaviour.FEATURES),
    (counterparty.counterparty_features, counterparty.FEATURES),
    (order_intent.order_intent_features, order_intent.FEATURES),
]
ACCOUNT_FEATURES: list[FeatureSpec] = [spec for _, specs in CALCULATORS for spec in specs]


def account_feature_table(inputs: FeatureInputs) -> pl.DataFrame:
    """`account_id`, `date`, then every account feature, for the accounts active on the day.

    Anonymous tapes (no account ids) give an empty table with the same columns.
    """
    accounts = pl.concat([
        inputs.fills.select(pl.col(ACCOUNT).cast(pl.String)),
        inputs.order_events.select(pl.col(ACCOUNT).cast(pl.String)),
    ]).drop_nulls().unique().collect()
    table = accounts
    # One calculator at a time: their results are small (a row per account), their working sets are not,
    # so running them one after another bounds peak memory by the largest rather than the sum.
    for calculator, specs in CALCULATORS:
        result = calculator(inputs).select(pl.col(ACCOUNT).cast(pl.String), *[s.name for s in specs]).collect()
        table = table.join(result, on=ACCOUNT, how="left")
    return (
        table.with_columns(pl.lit(inputs.day).alias(DATE))
        .select(ACCOUNT, DATE, *[s.name for s in ACCOUNT_FEATURES])
        .sort(ACCOUNT)
    )
