"""Explanations an analyst can read: model evidence in one sentence, with the numbers and the comparison
that makes them unusual (the account's percentile among all accounts of the day, and the peers' median)."""
from __future__ import annotations

import math

import polars as pl

from surveillance_pipeline.features.base import ACCOUNT, DATE

MODEL_NAMES = {"isolation_forest": "isolation forest", "autoencoder": "autoencoder", "random_forest": "random forest"}


def number(value: float | None) -> str:
    """3 significant digits, thousands separated, no scientific notation for ordinary magnitudes."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    digits = max(0, 2 - int(math.floor(math.log10(magnitude))))
    return f"{value:,.{min(digits, 6)}f}"


def peer_table(features: pl.DataFrame, accounts: list[str], names: list[str]) -> dict[tuple[str, str], dict]:
    """(account, feature) -> {value, percentile, below, above, median, peers} among every account of the same
    table (a day): `below` / `above` are the shares of accounts with a strictly lower / higher value, and the
    percentile is the mid-rank one (ties count half)."""
    names = [n for n in names if n in features.columns]
    if not names or features.is_empty():
        return {}
    ranked = features.select(
        pl.col(ACCOUNT).cast(pl.String),
        *[pl.col(n).cast(pl.Float64).alias(n) for n in names],
        *[((pl.col(n).rank("min") - 1) / pl.col(n).count()).alias(f"{n}__below") for n in names],
        *[((pl.col(n).count() - pl.col(n).rank("max")) / pl.col(n).count()).alias(f"{n}__above") for n in names],
    )
    medians = ranked.select(pl.col(names).median()).row(0, named=True)
    counts = ranked.select(pl.col(names).count()).row(0, named=True)
    out = {}
    for row in ranked.filter(pl.col(ACCOUNT).is_in(accounts)).iter_rows(named=True):
        for n in names:
            below, above = row[f"{n}__below"], row[f"{n}__above"]
            out[(row[ACCOUNT], n)] = {
                "feature": n, "value": row[n], "median": medians[n], "peers": counts[n], "below": below,
                "above": above, "percentile": None if below is None else below + (1 - below - above) / 2}
    return out


def feature_phrase(entry: dict) -> str:
    """`cancel_rate 0.98 (higher than 99.7% of 1,912 accounts; median 0.12)`."""
    value, below, above, median = (entry.get(k) for k in ("value", "below", "above", "median"))
    if value is None or below is None:
        return f"{entry['feature']} missing"
    if below >= above:
        where = f"higher than {100 * below:.1f}% of {entry['peers']:,} accounts"
    else:
        where = f"lower than {100 * above:.1f}% of {entry['peers']:,} accounts"
    return f"{entry['feature']} {number(value)} ({where}; median {number(median)})"


def model_sentence(account: str, day, score: float, rank: int, scored: int, models: list[str],
                   features: list[dict]) -> str:
    """One sentence for a model-only alert."""
    who = ", ".join(MODEL_NAMES.get(m, m) for m in models)
    lead = (f"{account}'s activity on {day} scored {score:.2f} from the models ({who}), the "
            f"{_ordinal(rank)} highest of {scored:,} accounts that day")
    if not features:
        return lead + "."
    return lead + "; most unusual: " + "; ".join(feature_phrase(f) for f in features) + "."


def corroboration_sentence(account: str, score: float, rank: int, scored: int, features: list[dict]) -> str:
    """Appended to a rule alert whose account the models also flag."""
    text = (f" The models also flag {account}'s day (score {score:.2f}, {_ordinal(rank)} highest of "
            f"{scored:,} accounts)")
    if features:
        text += ": " + "; ".join(feature_phrase(f) for f in features[:2])
    return text + "."


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def day_ranks(scores: pl.DataFrame) -> pl.DataFrame:
    """Each account-day's rank by score within its day (1 = highest) and the number of accounts scored."""
    return scores.with_columns(
        pl.col("score").rank("min", descending=True).over(DATE).cast(pl.Int64).alias("day_rank"),
        pl.len().over(DATE).cast(pl.Int64).alias("day_accounts"))
