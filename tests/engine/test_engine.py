"""The detection engine on hand-made rule alerts, model scores, features and trades."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from surveillance_pipeline.detectors.alerts import ALERT_SCHEMA, alert_id
from surveillance_pipeline.engine.engine import ENGINE_SCHEMA, ML_ANOMALY, DetectionEngine, link
from surveillance_pipeline.engine.explain import feature_phrase, number
from surveillance_pipeline.engine.settings import EngineSettings

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def rule_alerts(*rows) -> pl.DataFrame:
    """rows: (pattern, score, symbol, users, minute)"""
    frame = pl.DataFrame([{
        "alert_id": None, "pattern": p, "risk_level": "LOW", "score": s, "symbol": sym, "user_ids": users,
        "window_start": T0 + timedelta(minutes=m), "window_end": T0 + timedelta(minutes=m + 5),
        "explanation": f"{users} did {p}", "evidence": ["t1", "t2"], "model_version": None,
        "thresholds": json.dumps({"min": 1})} for p, s, sym, users, m in rows], schema=ALERT_SCHEMA, orient="row")
    return frame.with_columns(alert_id().alias("alert_id"))


def scores(n: int = 100, flagged: dict[str, float] | None = None) -> pl.DataFrame:
    """n ordinary accounts scored low; `flagged` accounts with their (high) scores, every model agreeing."""
    rows = [{"account_id": f"u{i:03d}", "score": 0.1 + i / 10_000, "models": "isolation_forest;random_forest",
             "top_features": "cancel_rate", "score_isolation_forest": 0.2, "score_random_forest": 0.1}
            for i in range(n)]
    for account, value in (flagged or {}).items():
        rows.append({"account_id": account, "score": value, "models": "isolation_forest;random_forest",
                     "top_features": "cancel_rate;trades_day", "score_isolation_forest": value,
                     "score_random_forest": value})
    return pl.DataFrame(rows).with_columns(pl.lit(DAY).alias("date"), (pl.col("score") >= 0.5).alias("anomalous"))


def features(accounts: list[str], extreme: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({"account_id": accounts, "date": [DAY] * len(accounts),
                         "cancel_rate": [extreme.get(a, 0.1) for a in accounts],
                         "trades_day": [10.0] * len(accounts)})


def trades(account: str, symbol: str = "BTCUSDT", n: int = 5) -> pl.DataFrame:
    return pl.DataFrame({
        "trade_id": [f"x{i}" for i in range(n + 2)],
        "timestamp": [T0 + timedelta(minutes=i) for i in range(n)] + [T0, T0],
        "symbol": [symbol] * n + ["ETHUSDT", "ETHUSDT"],
        "buyer_id": [account] * n + [account, "zz"], "seller_id": ["mm"] * n + ["mm", account]})


def test_rule_alert_alone_keeps_its_score_and_level():
    out = DetectionEngine().combine(DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0)))
    row = out.row(0, named=True)
    assert out.schema == pl.Schema(ENGINE_SCHEMA)
    assert (row["score"], row["risk_level"], row["sources"], row["model_score"]) == (0.6, "MEDIUM", "rules", None)
    assert row["alert_key"] == "spoofing|BTCUSDT|a" and row["occurrence"] == 1 and row["first_seen"] == DAY
    assert row["explanation"] == "a did spoofing."


def test_model_evidence_adds_up_by_noisy_or_and_is_explained():
    table = scores(flagged={"a": 0.9})
    accounts = table["account_id"].to_list()
    out = DetectionEngine(EngineSettings(model_weight=0.5)).combine(
        DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0)), table, features(accounts, {"a": 0.95}),
        model_version="champion surveillance-ensemble v2")
    row = out.row(0, named=True)
    assert row["score"] == pytest.approx(1 - (1 - 0.6) * (1 - 0.5 * 0.9))  # 0.78
    assert row["risk_level"] == "MEDIUM" and row["sources"] == "rules;models" and row["model_score"] == 0.9
    assert row["model_version"] == "champion surveillance-ensemble v2"
    assert "The models also flag a's day (score 0.90, 1st highest of 101 accounts)" in row["explanation"]
    assert "cancel_rate 0.950 (higher than 99.0% of 101 accounts; median 0.100)" in row["explanation"]
    top = json.loads(row["top_features"])
    assert top[0]["feature"] == "cancel_rate" and top[0]["percentile"] == pytest.approx(1 - 0.5 / 101)


def test_unflagged_model_scores_add_nothing():
    out = DetectionEngine().combine(DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "u001", 0)), scores())
    assert out.row(0, named=True)["score"] == 0.6 and out.row(0, named=True)["sources"] == "rules"


def test_two_patterns_on_the_same_account_corroborate_each_other():
    out = DetectionEngine(EngineSettings(corroboration_weight=0.5)).combine(DAY, rule_alerts(
        ("spoofing", 0.6, "BTCUSDT", "a", 0), ("quote_stuffing", 0.7, "BTCUSDT", "a;b", 30),
        ("wash_trading", 0.9, "ETHUSDT", "c", 0)))
    by = {r["pattern"]: r for r in out.iter_rows(named=True)}
    assert by["spoofing"]["score"] == pytest.approx(1 - 0.4 * (1 - 0.35))
    assert by["quote_stuffing"]["score"] == pytest.approx(1 - 0.3 * (1 - 0.3))
    assert by["wash_trading"]["score"] == 0.9  # no shared account
    assert "also raised a quote stuffing alert" in by["spoofing"]["explanation"]


def test_model_only_alert_needs_every_condition():
    table = scores(n=300, flagged={"m": 0.95})
    accounts = table["account_id"].to_list()
    engine = DetectionEngine(EngineSettings(ml_max_share=0.01))
    out = engine.combine(DAY, rule_alerts(), table, features(accounts, {"m": 0.99}), trades("m"), "champion v1")
    row = out.row(0, named=True)
    assert (row["pattern"], row["symbol"], row["user_ids"], row["sources"]) == (ML_ANOMALY, "BTCUSDT", "m", "models")
    assert row["risk_level"] == "MEDIUM"  # capped: a lead, not a finding
    assert row["window_start"] == T0 and row["window_end"] == T0 + timedelta(minutes=4)
    assert row["evidence"] == ["x0", "x1", "x2", "x3", "x4"]
    assert "m's activity on 2026-03-02 scored 0.95 from the models (isolation forest, random forest), the 1st " \
           "highest of 301 accounts" in row["explanation"]
    assert "traded BTCUSDT 5 times between 10:00 and 10:04 UTC (71% of its trades that day)" in row["explanation"]
    # Each condition alone stops it:
    assert engine.combine(DAY, rule_alerts(), scores(n=30, flagged={"m": 0.95}), None, trades("m")).is_empty()
    assert DetectionEngine(EngineSettings(ml_min_score=0.97)).combine(DAY, rule_alerts(), table, None,
                                                                      trades("m")).is_empty()
    weak = table.with_columns(pl.when(pl.col("account_id") == "m").then(0.3).otherwise(pl.col("score_random_forest"))
                              .alias("score_random_forest"))
    assert engine.combine(DAY, rule_alerts(), weak, None, trades("m")).is_empty()  # one model only
    crowd = scores(n=300, flagged={f"m{i}": 0.95 - i / 1000 for i in range(10)})
    out = engine.combine(DAY, rule_alerts(), crowd, None, pl.concat([trades(f"m{i}") for i in range(10)]))
    assert out.height == 3  # the top 1% of 310 accounts only
    covered = engine.combine(DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "m", 0)), table, None, trades("m"))
    assert covered["pattern"].to_list() == ["spoofing"]  # the rule alert carries the model evidence instead
    assert DetectionEngine(EngineSettings(ml_alerts=False)).combine(DAY, rule_alerts(), table, None,
                                                                   trades("m")).is_empty()


def test_link_to_the_alert_of_an_earlier_day():
    engine = DetectionEngine()
    first = engine.combine(DAY, rule_alerts(("wash_trading", 0.9, "BTCUSDT", "a;b", 0)))
    next_day = DAY + timedelta(days=1)
    second = engine.combine(next_day, rule_alerts(("wash_trading", 0.9, "BTCUSDT", "a;b", 0)).with_columns(
        pl.col("window_start", "window_end") + timedelta(days=1)).with_columns(alert_id().alias("alert_id")))
    linked = link(second, first, link_days=3).row(0, named=True)
    assert linked["linked_alert_id"] == first["alert_id"][0] and linked["alert_id"] != first["alert_id"][0]
    assert (linked["occurrence"], linked["first_seen"]) == (2, DAY)
    assert linked["explanation"].startswith(f"Raised again (occurrence 2, first seen {DAY}")
    assert link(second, first, link_days=0).row(0, named=True)["occurrence"] == 1
    far = first.with_columns(pl.lit(DAY - timedelta(days=5)).alias("date"))
    assert link(second, far, link_days=3).row(0, named=True)["linked_alert_id"] is None


def test_rerun_gives_the_same_ids():
    engine = DetectionEngine()
    args = (DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0)), scores(n=300, flagged={"m": 0.95}),
            None, trades("m"))
    assert engine.combine(*args)["alert_id"].to_list() == engine.combine(*args)["alert_id"].to_list()


def test_numbers_and_phrases():
    assert [number(v) for v in (0.000123, 0.5, 12.345, 1234.5, 0)] == ["0.000123", "0.500", "12.3", "1,234", "0"]
    assert feature_phrase({"feature": "x", "value": 2.0, "below": 0.1, "above": 0.8, "median": 5.0, "peers": 10}) == \
        "x 2.00 (lower than 80.0% of 10 accounts; median 5.00)"


def test_model_evidence_counts_only_high_in_the_days_ranking():
    crowd = {f"f{i}": 0.9 - i / 100 for i in range(10)}  # ten accounts score above a
    table = scores(n=90, flagged={**crowd, "a": 0.55})   # a: flagged (>= 0.5) but 11th of 101: not top 5 %
    out = DetectionEngine(EngineSettings(model_evidence_max_share=0.05)).combine(
        DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0)), table)
    assert out.row(0, named=True)["sources"] == "rules" and out.row(0, named=True)["score"] == 0.6
    wider = DetectionEngine(EngineSettings(model_evidence_max_share=0.2)).combine(
        DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0)), table)
    assert wider.row(0, named=True)["sources"] == "rules;models"


def test_one_answering_model_is_not_enough_for_a_model_only_alert():
    table = scores(n=300, flagged={"m": 0.95}).drop("score_random_forest")  # only the isolation forest answered
    assert DetectionEngine(EngineSettings(ml_max_share=0.01)).combine(DAY, rule_alerts(), table, None,
                                                                     trades("m")).is_empty()
