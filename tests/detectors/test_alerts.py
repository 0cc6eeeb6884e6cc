import json
from datetime import datetime, timedelta, timezone

import polars as pl

from surveillance_pipeline.contract import ALERT_COLUMNS
from surveillance_pipeline.detectors.alerts import MERGED, findings_to_alerts, merge_findings, write_alerts
from surveillance_pipeline.detectors.base import findings_frame

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def finding(pattern="wash_trading", symbol="BTCUSDT", users=("a", "b"), start=0, end=60, score=0.5,
            evidence=("trade:1",), text="x", metrics=None):
    return dict(pattern=pattern, symbol=symbol, user_ids=list(users), window_start=T0 + timedelta(seconds=start),
                window_end=T0 + timedelta(seconds=end), score=score, explanation=text, evidence=list(evidence),
                metrics=metrics or {"score": score})


def test_overlapping_findings_of_one_episode_merge():
    findings = findings_frame([
        finding(start=0, end=60, score=0.6, evidence=("trade:1", "trade:2"), text="first"),
        finding(start=50, end=120, score=0.9, evidence=("trade:2", "trade:3"), text="strongest"),
        finding(start=130, end=140, score=0.4, evidence=("trade:4",), text="within the gap"),
        finding(start=400, end=420, score=0.7, evidence=("trade:9",), text="later episode"),
        finding(users=("b", "a"), start=10, end=20, score=0.3, evidence=("trade:5",)),  # same set, other order
        finding(users=("a", "c"), start=0, end=60),  # other accounts
        finding(symbol="ETHUSDT", start=0, end=60),  # other symbol
        finding(pattern="circular_trading", start=0, end=60),  # other pattern
    ])
    merged = merge_findings(findings, gap_seconds=30).sort("pattern", "symbol", "user_ids", "window_start")
    rows = merged.to_dicts()
    assert merged.height == 5
    ab = [r for r in rows if r["pattern"] == "wash_trading" and r["symbol"] == "BTCUSDT" and r["user_ids"] == ["a", "b"]]
    assert [r[MERGED] for r in ab] == [4, 1]
    assert ab[0]["window_start"] == T0 and ab[0]["window_end"] == T0 + timedelta(seconds=140)
    assert ab[0]["score"] == 0.9 and ab[0]["explanation"] == "strongest"
    assert sorted(ab[0]["evidence"]) == ["trade:1", "trade:2", "trade:3", "trade:4", "trade:5"]
    assert ab[1]["explanation"] == "later episode"
    others = {(r["pattern"], r["symbol"], tuple(r["user_ids"])) for r in rows if r not in ab}
    assert others == {("wash_trading", "BTCUSDT", ("a", "c")), ("wash_trading", "ETHUSDT", ("a", "b")),
                      ("circular_trading", "BTCUSDT", ("a", "b"))}


def test_alerts_have_the_contract_shape_stable_ids_and_risk_levels(tmp_path):
    findings = findings_frame([finding(score=0.95), finding(symbol="ETHUSDT", score=0.6),
                               finding(symbol="SOLUSDT", score=0.2, evidence=[f"trade:{i}" for i in range(10)])])
    thresholds = {"wash_trading": {"price_tolerance_bps": 5.0}}
    alerts = findings_to_alerts(findings, thresholds, high=0.8, medium=0.5, max_evidence=3, model_version="rules")
    assert tuple(alerts.columns) == ALERT_COLUMNS
    levels = dict(zip(alerts["symbol"], alerts["risk_level"], strict=True))
    assert levels == {"BTCUSDT": "HIGH", "ETHUSDT": "MEDIUM", "SOLUSDT": "LOW"}
    assert alerts.filter(pl.col("symbol") == "SOLUSDT")["evidence"].item().to_list() == ["trade:0", "trade:1",
                                                                                        "trade:2"]
    assert set(alerts["user_ids"]) == {"a;b"}
    again = findings_to_alerts(findings, thresholds, high=0.8, medium=0.5, max_evidence=3)
    assert again["alert_id"].to_list() == alerts["alert_id"].to_list()
    assert alerts["alert_id"].n_unique() == 3

    csv_path, json_path = write_alerts(alerts, tmp_path / "out")
    back = pl.read_csv(csv_path)
    assert back.columns == list(ALERT_COLUMNS) and back.height == 3
    assert back.filter(pl.col("symbol") == "BTCUSDT")["window_start"].item() == "2026-03-02T10:00:00.000000Z"
    rows = json.loads(json_path.read_text())
    assert rows[0]["thresholds"] == {"price_tolerance_bps": 5.0}
    assert isinstance(rows[0]["evidence"], list)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alerts.csv", "alerts.json"]


def test_no_findings_no_alerts(tmp_path):
    merged = merge_findings(findings_frame([]), gap_seconds=30)
    assert merged.is_empty()
    alerts = findings_to_alerts(findings_frame([]), {}, high=0.8, medium=0.5, max_evidence=3)
    assert alerts.is_empty() and tuple(alerts.columns) == ALERT_COLUMNS
    csv_path, json_path = write_alerts(alerts, tmp_path)
    assert json.loads(json_path.read_text()) == []
    assert csv_path.read_text().splitlines()[0].split(",") == list(ALERT_COLUMNS)


def test_alerts_without_thresholds_have_none():
    alerts = findings_to_alerts(findings_frame([finding()]), {}, high=0.8, medium=0.5, max_evidence=3)
    assert alerts.height == 1 and alerts["thresholds"].to_list() == [None]
