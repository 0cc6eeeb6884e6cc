"""DetectionEngine: rule alerts and model scores per account / symbol / window -> one risk score, a risk level,
an explanation with the numbers, and a stable key that de-duplicates re-runs and links re-raised episodes."""
from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl

from surveillance_pipeline.contract import USER_IDS_SEPARATOR, Alert, Trade
from surveillance_pipeline.detectors.alerts import ALERT_SCHEMA, alert_id, risk_level
from surveillance_pipeline.engine.explain import corroboration_sentence, day_ranks, model_sentence, peer_table
from surveillance_pipeline.engine.settings import EngineSettings
from surveillance_pipeline.features.base import ACCOUNT, DATE

ML_ANOMALY = "ml_anomaly"
RISK_ORDER = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
SOURCES, MODEL_SCORE, TOP_FEATURES = "sources", "model_score", "top_features"
ALERT_KEY, LINKED, FIRST_SEEN, OCCURRENCE = "alert_key", "linked_alert_id", "first_seen", "occurrence"
ENGINE_SCHEMA: dict[str, pl.DataType] = {
    **ALERT_SCHEMA,
    SOURCES: pl.String(), MODEL_SCORE: pl.Float64(), TOP_FEATURES: pl.String(), ALERT_KEY: pl.String(),
    LINKED: pl.String(), FIRST_SEEN: pl.Date(), OCCURRENCE: pl.Int64(), DATE: pl.Date(),
}


def empty_alerts() -> pl.DataFrame:
    return pl.DataFrame(schema=ENGINE_SCHEMA)


def alert_key() -> pl.Expr:
    """The episode's identity across days and re-runs: pattern, symbol and the sorted accounts."""
    return pl.concat_str(pl.col(Alert.PATTERN), pl.col(Alert.SYMBOL).fill_null(""),
                         pl.col(Alert.USER_IDS).fill_null(""), separator="|")


class DetectionEngine:
    def __init__(self, settings: EngineSettings = EngineSettings()) -> None:
        self.settings = settings

    def combine(self, day: date, rule_alerts: pl.DataFrame, scores: pl.DataFrame | None = None,
                features: pl.DataFrame | None = None, trades: pl.DataFrame | None = None,
                model_version: str | None = None) -> pl.DataFrame:
        """The day's alerts in ENGINE_SCHEMA, before linking to earlier days (see `link`)."""
        s = self.settings
        scores = _usable_scores(scores, day)
        ranked = day_ranks(scores) if scores.height else scores
        # Model evidence: flagged by the ensemble AND high in the day's own ranking (a cut learned on other data
        # can flag much of an unfamiliar population; the rank within the day cannot).
        flagged = ranked.filter(pl.col("anomalous") & (pl.col("day_rank") <= max(
            1, int(ranked.height * s.model_evidence_max_share)))) if ranked.height else ranked
        model_of = {r[ACCOUNT]: r for r in flagged.iter_rows(named=True)}
        rows = []
        rules = rule_alerts.select(list(ALERT_SCHEMA)) if rule_alerts.height else pl.DataFrame(schema=ALERT_SCHEMA)
        rule_accounts = _accounts_by_alert(rules)
        by_account: dict[str, list[dict]] = {}
        for other in rules.select(Alert.ALERT_ID, Alert.PATTERN, Alert.SCORE).iter_rows(named=True):
            for account in rule_accounts[other[Alert.ALERT_ID]]:
                by_account.setdefault(account, []).append(other)
        peers = peer_table(features, flagged.get_column(ACCOUNT).to_list(),
                           _feature_names(flagged)) if features is not None and flagged.height else {}
        for alert in rules.iter_rows(named=True):
            accounts = rule_accounts[alert[Alert.ALERT_ID]]
            signals, parts, top = [], [], []
            # Model evidence: the strongest flagged account of the alert.
            backing = [model_of[a] for a in accounts if a in model_of]
            model_score = None
            if backing:
                best = max(backing, key=lambda r: r["score"])
                model_score = float(best["score"])
                signals.append(s.model_weight * model_score)
                top = _features_of(best, peers, s.top_features)
                parts.append(corroboration_sentence(best[ACCOUNT], model_score, best["day_rank"],
                                                    best["day_accounts"], top))
            # Corroboration: other patterns' rule alerts on the same accounts that day (from an account index).
            others = {o[Alert.ALERT_ID]: o for account in accounts for o in by_account.get(account, [])
                      if o[Alert.PATTERN] != alert[Alert.PATTERN]}.values()
            if others:
                strongest = max(others, key=lambda o: o[Alert.SCORE])
                signals.append(s.corroboration_weight * strongest[Alert.SCORE])
                parts.append(f" The same account(s) also raised a {strongest[Alert.PATTERN].replace('_', ' ')} "
                             f"alert that day (score {strongest[Alert.SCORE]:.2f}).")
            combined = _noisy_or(alert[Alert.SCORE], signals)
            rows.append({**alert, Alert.SCORE: combined, Alert.EXPLANATION: _sentence(alert[Alert.EXPLANATION])
                         + "".join(parts),
                         SOURCES: "rules;models" if backing else "rules", MODEL_SCORE: model_score,
                         TOP_FEATURES: json.dumps(top), Alert.MODEL_VERSION: (model_version if backing else
                                                                              alert[Alert.MODEL_VERSION])})
        if s.ml_alerts and ranked.height:
            rows += self._model_only(day, ranked, rule_accounts, peers_source=features, trades=trades,
                                     model_version=model_version)
        if not rows:
            return empty_alerts()
        frame = pl.DataFrame(rows, schema={**ALERT_SCHEMA, SOURCES: pl.String, MODEL_SCORE: pl.Float64,
                                           TOP_FEATURES: pl.String}, orient="row")
        levels = risk_level(pl.col(Alert.SCORE), s.risk_high, s.risk_medium)
        capped = pl.when((pl.col(Alert.PATTERN) == ML_ANOMALY) & (levels.replace_strict(RISK_ORDER, default=0)
                                                                  > RISK_ORDER[s.ml_max_risk]))
        return (
            frame.with_columns(capped.then(pl.lit(s.ml_max_risk)).otherwise(levels).alias(Alert.RISK_LEVEL))
            .with_columns(alert_key().alias(ALERT_KEY), pl.lit(None, pl.String).alias(LINKED),
                          pl.lit(day).alias(FIRST_SEEN), pl.lit(1, pl.Int64).alias(OCCURRENCE),
                          pl.lit(day).alias(DATE))
            .select(list(ENGINE_SCHEMA)).cast(ENGINE_SCHEMA)
            .sort(Alert.WINDOW_START, Alert.PATTERN, Alert.SYMBOL, Alert.USER_IDS)
        )

    def _model_only(self, day: date, ranked: pl.DataFrame, rule_accounts: dict[str, list[str]],
                    peers_source: pl.DataFrame | None, trades: pl.DataFrame | None,
                    model_version: str | None) -> list[dict]:
        """ml_anomaly alerts: account-days the models flag strongly, that no rule alert covers, in the account's
        busiest symbol over the span of its trades there."""
        s = self.settings
        covered = {a for accounts in rule_accounts.values() for a in accounts}
        population = ranked.height
        if population < s.ml_min_accounts or trades is None or trades.is_empty():
            return []
        limit = max(1, int(population * s.ml_max_share))
        per_model = [c for c in ranked.columns if c.startswith("score_")]
        agreeing = pl.sum_horizontal([(pl.col(c) >= 0.5).cast(pl.Int32) for c in per_model]) if per_model else pl.lit(0)
        candidates = ranked.filter(
            pl.col("anomalous") & (pl.col("score") >= s.ml_min_score) & (pl.col("day_rank") <= limit)
            & (agreeing >= s.ml_min_models)
            & ~pl.col(ACCOUNT).is_in(list(covered)))
        if candidates.is_empty():
            return []
        peers = peer_table(peers_source, candidates.get_column(ACCOUNT).to_list(), _feature_names(candidates)) \
            if peers_source is not None else {}
        spans = _trade_spans(trades, candidates.get_column(ACCOUNT).to_list(), s.max_evidence)
        rows = []
        for row in candidates.iter_rows(named=True):
            span = spans.get(row[ACCOUNT])
            if span is None:
                continue  # orders only, no trade: no symbol and window an analyst could act on
            models = [m for m in (row.get("models") or "").split(";") if m]
            top = _features_of(row, peers, s.top_features)
            rows.append({
                Alert.ALERT_ID: None, Alert.PATTERN: ML_ANOMALY, Alert.RISK_LEVEL: None,
                Alert.SCORE: float(row["score"]), Alert.SYMBOL: span["symbol"], Alert.USER_IDS: row[ACCOUNT],
                Alert.WINDOW_START: span["start"], Alert.WINDOW_END: span["end"],
                Alert.EXPLANATION: model_sentence(row[ACCOUNT], day, row["score"], row["day_rank"], population,
                                                  models, top)
                + f" It traded {span['symbol']} {span['trades']:,} times between {span['start']:%H:%M} and "
                  f"{span['end']:%H:%M} UTC ({span['share']:.0%} of its trades that day).",
                Alert.EVIDENCE: span["evidence"], Alert.MODEL_VERSION: model_version,
                Alert.THRESHOLDS: json.dumps({"ml_min_score": s.ml_min_score, "ml_max_share": s.ml_max_share,
                                              "ml_min_models": s.ml_min_models, "models": models}),
                SOURCES: "models", MODEL_SCORE: float(row["score"]), TOP_FEATURES: json.dumps(top)})
        if not rows:
            return []
        with_ids = pl.DataFrame(rows, schema={**ALERT_SCHEMA, SOURCES: pl.String, MODEL_SCORE: pl.Float64,
                                              TOP_FEATURES: pl.String}, orient="row")
        return with_ids.with_columns(alert_id().alias(Alert.ALERT_ID)).to_dicts()


def link(alerts: pl.DataFrame, earlier: pl.DataFrame, link_days: int) -> pl.DataFrame:
    """An alert whose key was raised on one of the `link_days` days before links to the latest such alert:
    `linked_alert_id`, the episode's `first_seen` day, and `occurrence` (1 = new). The explanation says so."""
    if alerts.is_empty() or earlier.is_empty() or link_days <= 0:
        return alerts
    day = alerts.get_column(DATE).min()
    window = earlier.filter((pl.col(DATE) < day) & (pl.col(DATE) >= day - timedelta(days=link_days)))
    latest = (window.sort(DATE).group_by(ALERT_KEY).last()
              .select(ALERT_KEY, pl.col(Alert.ALERT_ID).alias("__prev"), pl.col(FIRST_SEEN).alias("__first"),
                      pl.col(OCCURRENCE).alias("__occ"), pl.col(DATE).alias("__day")))
    joined = alerts.join(latest, on=ALERT_KEY, how="left")
    again = pl.col("__prev").is_not_null()
    return joined.with_columns(
        pl.when(again).then(pl.col("__prev")).otherwise(pl.col(LINKED)).alias(LINKED),
        pl.when(again).then(pl.col("__first")).otherwise(pl.col(FIRST_SEEN)).alias(FIRST_SEEN),
        pl.when(again).then(pl.col("__occ") + 1).otherwise(pl.col(OCCURRENCE)).alias(OCCURRENCE),
        pl.when(again).then(pl.format("Raised again (occurrence {}, first seen {}; previous alert {} on {}): {}",
                                      pl.col("__occ") + 1, pl.col("__first"), pl.col("__prev"), pl.col("__day"),
                                      pl.col(Alert.EXPLANATION)))
        .otherwise(pl.col(Alert.EXPLANATION)).alias(Alert.EXPLANATION),
    ).select(list(ENGINE_SCHEMA))


def _sentence(text: str) -> str:
    text = (text or "").rstrip()
    return text if not text or text.endswith((".", "!", "?", ")")) else text + "."


def _noisy_or(base: float, signals: list[float]) -> float:
    remaining = 1.0 - max(0.0, min(1.0, base))
    for signal in signals:
        remaining *= 1.0 - max(0.0, min(1.0, signal))
    return 1.0 - remaining


def _usable_scores(scores: pl.DataFrame | None, day: date) -> pl.DataFrame:
    if scores is None or scores.is_empty() or "score" not in scores.columns:
        return pl.DataFrame(schema={ACCOUNT: pl.String, DATE: pl.Date, "score": pl.Float64, "anomalous": pl.Boolean})
    return scores.filter(pl.col(DATE) == day).with_columns(pl.col(ACCOUNT).cast(pl.String))


def _accounts_by_alert(alerts: pl.DataFrame) -> dict[str, list[str]]:
    return {r[Alert.ALERT_ID]: [a for a in (r[Alert.USER_IDS] or "").split(USER_IDS_SEPARATOR) if a]
            for r in alerts.select(Alert.ALERT_ID, Alert.USER_IDS).iter_rows(named=True)}


def _feature_names(scores: pl.DataFrame) -> list[str]:
    if "top_features" not in scores.columns:
        return []
    return sorted({f for joined in scores.get_column("top_features").to_list() if joined
                   for f in joined.split(";") if f})


def _features_of(row: dict, peers: dict, k: int) -> list[dict]:
    names = [f for f in (row.get("top_features") or "").split(";") if f][:k]
    return [peers[(row[ACCOUNT], n)] for n in names if (row[ACCOUNT], n) in peers]


def _trade_spans(trades: pl.DataFrame, accounts: list[str], max_evidence: int) -> dict[str, dict]:
    """Per account: its busiest symbol of the day, the span of its trades there, their ids and share."""
    legs = pl.concat([
        trades.select(pl.col(Trade.BUYER_ID).cast(pl.String).alias(ACCOUNT), Trade.SYMBOL, Trade.TIMESTAMP,
                      Trade.TRADE_ID),
        trades.select(pl.col(Trade.SELLER_ID).cast(pl.String).alias(ACCOUNT), Trade.SYMBOL, Trade.TIMESTAMP,
                      Trade.TRADE_ID),
    ]).filter(pl.col(ACCOUNT).is_in(accounts)).unique([ACCOUNT, Trade.TRADE_ID])  # a self-trade counts once
    if legs.is_empty():
        return {}
    per = legs.group_by(ACCOUNT, Trade.SYMBOL).agg(
        pl.len().alias("trades"), pl.col(Trade.TIMESTAMP).min().alias("start"),
        pl.col(Trade.TIMESTAMP).max().alias("end"),
        pl.col(Trade.TRADE_ID).sort_by(Trade.TIMESTAMP).head(max_evidence).alias("evidence"))
    per = per.with_columns((pl.col("trades") / pl.col("trades").sum().over(ACCOUNT)).alias("share"))
    best = per.sort("trades", Trade.SYMBOL, descending=[True, False]).group_by(ACCOUNT).first()
    return {r[ACCOUNT]: {"symbol": r[Trade.SYMBOL], "start": r["start"], "end": r["end"], "trades": r["trades"],
                         "share": r["share"], "evidence": r["evidence"]} for r in best.iter_rows(named=True)}
