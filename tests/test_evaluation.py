"""Evaluation of alerts against labelled episodes: the matching rule, the figures and the file readers."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from surveillance_pipeline.contract import ALERT_COLUMNS, LABEL_SCHEMA, Alert, Label
from surveillance_pipeline.evaluation import (
    EvaluationInputError, EvaluationSettings, count_trades, evaluate, read_alerts, read_labels,
)
from surveillance_pipeline.ingest.readers import InputFileError
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, write_scenario

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def labels(*episodes: tuple) -> pl.DataFrame:
    """(episode_id, pattern, symbol, user_ids, start minute, end minute) rows."""
    rows = [{Label.EPISODE_ID: e, Label.PATTERN: p, Label.SYMBOL: s, Label.USER_IDS: u, Label.START: at(a),
             Label.END: at(b)} for e, p, s, u, a, b in episodes]
    return pl.DataFrame(rows, schema=LABEL_SCHEMA)


def alerts(*rows: tuple) -> pl.DataFrame:
    """(pattern, symbol, user_ids, start minute, end minute) rows, numbered a1, a2, ..."""
    return pl.DataFrame(
        [{Alert.ALERT_ID: f"a{i}", Alert.PATTERN: p, Alert.SYMBOL: s, Alert.USER_IDS: u,
          Alert.WINDOW_START: at(a), Alert.WINDOW_END: at(b)} for i, (p, s, u, a, b) in enumerate(rows, 1)],
        schema={Alert.ALERT_ID: pl.String, Alert.PATTERN: pl.String, Alert.SYMBOL: pl.String,
                Alert.USER_IDS: pl.String, Alert.WINDOW_START: pl.Datetime("us", "UTC"),
                Alert.WINDOW_END: pl.Datetime("us", "UTC")})


WASH = ("ep1", "wash_trading", "BTCUSDT", "u1;u2", 0, 10)
PUMP = ("ep2", "pump_and_dump", "ETHUSDT", "org1;org2", 0, 60)
SPOOF = ("ep3", "spoofing", "SOLUSDT", "u9", 100, 105)
NO_SLACK = EvaluationSettings(slack_minutes=0)


def test_exact_hit():
    report = evaluate(alerts(("wash_trading", "BTCUSDT", "u2", 2, 8)), labels(WASH), NO_SLACK)
    row = report.row("wash_trading")
    assert (row.episodes, row.found, row.recall, row.alerts, row.precision, row.alerts_per_found_episode) == \
        (1, 1, 1.0, 1, 1.0, 1.0)
    assert (report.macro_recall, report.macro_precision) == (1.0, 1.0)


def test_slack_hit_and_its_limit():
    late = alerts(("wash_trading", "BTCUSDT", "u1", 14, 20))  # starts 4 minutes after the episode ends
    assert evaluate(late, labels(WASH), NO_SLACK).row("wash_trading").found == 0
    assert evaluate(late, labels(WASH), EvaluationSettings(slack_minutes=5)).row("wash_trading").found == 1
    assert evaluate(late, labels(WASH), EvaluationSettings(slack_minutes=3)).row("wash_trading").found == 0


def test_miss_on_symbol():
    report = evaluate(alerts(("wash_trading", "ETHUSDT", "u1", 0, 10)), labels(WASH), NO_SLACK)
    row = report.row("wash_trading")
    assert (row.found, row.recall, row.true_alerts, row.precision) == (0, 0.0, 0, 0.0)
    assert row.missed_episode_ids == ("ep1",) and row.false_alert_ids == ("a1",)


def test_miss_on_account():
    report = evaluate(alerts(("wash_trading", "BTCUSDT", "u3;u4", 0, 10), ("wash_trading", "BTCUSDT", "", 0, 10)),
                      labels(WASH), NO_SLACK)
    assert report.row("wash_trading").found == 0 and report.row("wash_trading").false_alerts == 2


def test_family_match_circular_alert_finds_wash_episode():
    report = evaluate(alerts(("circular_trading", "BTCUSDT", "u1;u7;u8", 1, 3)), labels(WASH), NO_SLACK)
    assert report.row("wash_trading").found == 1 and report.row("wash_trading").alerts == 0
    assert report.row("circular_trading").precision == 1.0
    assert report.row("wash_trading").alerts_per_found_episode == 1.0
    # Other families do not match: a spoofing alert on the wash episode is false and finds nothing.
    other = evaluate(alerts(("spoofing", "BTCUSDT", "u1", 1, 3)), labels(WASH), NO_SLACK)
    assert other.row("wash_trading").found == 0 and other.row("spoofing").precision == 0.0


def test_market_level_match_without_accounts():
    anonymous = labels(("ep9", "pump_and_dump", "ETHUSDT", "", 0, 60))
    report = evaluate(alerts(("pump_and_dump", "ETHUSDT", "", 30, 40)), anonymous, NO_SLACK)
    assert report.row("pump_and_dump").found == 1
    # Pump labels name the organisers; a pump alert naming none (or others) still finds the pump.
    named = evaluate(alerts(("pump_and_dump", "ETHUSDT", "", 30, 40), ("pump_and_dump", "ETHUSDT", "x", 50, 70)),
                     labels(PUMP), NO_SLACK)
    assert named.row("pump_and_dump").found == 1 and named.row("pump_and_dump").precision == 1.0


def test_duplicates_count_as_alerts_per_episode():
    three = alerts(*[("wash_trading", "BTCUSDT", "u1;u2", m, m + 2) for m in (0, 3, 6)])
    row = evaluate(three, labels(WASH), NO_SLACK).row("wash_trading")
    assert (row.found, row.alerts, row.precision, row.alerts_per_found_episode) == (1, 3, 1.0, 3.0)


def test_false_alerts_and_macro_figures():
    found = alerts(("wash_trading", "BTCUSDT", "u1", 0, 1), ("spoofing", "SOLUSDT", "u9", 200, 201),
                   ("spoofing", "SOLUSDT", "u9", 101, 102), ("quote_stuffing", "BTCUSDT", "u5", 0, 1))
    report = evaluate(found, labels(WASH, PUMP, SPOOF), NO_SLACK, trade_count=200_000)
    assert report.row("spoofing").precision == 0.5 and report.row("spoofing").false_alert_ids == ("a2",)
    assert report.row("quote_stuffing").episodes == 0 and report.row("quote_stuffing").recall is None
    assert report.row("pump_and_dump").alerts == 0 and report.row("pump_and_dump").precision is None
    assert report.macro_recall == pytest.approx((1 + 0 + 1) / 3)  # wash, pump, spoofing
    assert report.macro_precision == pytest.approx((1 + 0.5 + 0) / 3)  # wash, spoofing, stuffing
    assert (report.alerts, report.true_alerts, report.false_alerts) == (4, 2, 2)
    assert report.false_alerts_per_100k_trades == 1.0


def test_ml_anomaly_matches_any_family_on_its_own_row():
    report = evaluate(alerts(("ml_anomaly", "BTCUSDT", "u2", 5, 6), ("ml_anomaly", "SOLUSDT", "u9", 0, 1),
                             ("spoofing", "SOLUSDT", "u9", 101, 102)), labels(WASH, SPOOF), NO_SLACK)
    ml = report.row("ml_anomaly")
    assert (ml.any_family, ml.episodes, ml.found, ml.alerts, ml.precision) == (True, 2, 1, 2, 0.5)
    assert report.row("wash_trading").found == 0  # rows count their own family's alerts only
    assert report.macro_precision == 1.0 and report.episodes_found == 2


def test_clean_scenario_reports_false_alerts_per_100k_trades():
    noise = alerts(("wash_trading", "BTCUSDT", "u1", 0, 1), ("spoofing", "SOLUSDT", "u2", 0, 1),
                   ("spoofing", "SOLUSDT", "u3", 5, 6))
    report = evaluate(noise, pl.DataFrame(schema=LABEL_SCHEMA), trade_count=300_000)
    assert report.episodes == 0 and report.macro_recall is None and report.macro_precision == 0.0
    assert report.false_alerts_per_100k_trades == 1.0
    assert report.row("spoofing").false_alerts_per_100k_trades == pytest.approx(2 / 3)
    assert "false/100k trades" in report.format_table()
    assert json.loads(json.dumps(report.to_dict()))["totals"]["false_alerts"] == 3


def test_list_user_ids_are_accepted():
    frame = alerts(("wash_trading", "BTCUSDT", "", 0, 1)).with_columns(
        pl.Series(Alert.USER_IDS, [["u2", "u5"]], dtype=pl.List(pl.String)))
    assert evaluate(frame, labels(WASH), NO_SLACK).row("wash_trading").found == 1


def test_settings_reject_a_pattern_in_two_families():
    with pytest.raises(ValueError, match="more than one family"):
        EvaluationSettings(families=(("wash_trading", "circular_trading"), ("wash_trading", "spoofing")))


def test_matching_is_joins_not_loops_on_a_large_day():
    many = pl.concat([alerts(("wash_trading", "BTCUSDT", "u1;u2", 0, 1))] * 20_000)
    episodes = labels(*[(f"ep{i}", "wash_trading", "BTCUSDT", f"v{i}", i, i + 1) for i in range(200)], WASH)
    report = evaluate(many, episodes, NO_SLACK)
    assert report.row("wash_trading").found == 1 and report.row("wash_trading").alerts_per_found_episode == 20_000


# ---- files ---------------------------------------------------------------------------------------------

def test_labels_round_trip_through_write_scenario(tmp_path):
    scenario = generate_scenario(ScenarioSpec(trades_per_day=2_000, accounts=60, symbols=("BTCUSDT", "ETHUSDT")))
    paths = write_scenario(scenario, tmp_path)
    read = read_labels(paths["labels"])
    assert read.schema == pl.Schema(LABEL_SCHEMA) and read.equals(scenario.labels)
    assert count_trades(paths["trades"]) == scenario.trades.height
    perfect = read.select(pl.col(Label.EPISODE_ID).alias(Alert.ALERT_ID), Label.PATTERN, Label.SYMBOL,
                          Label.USER_IDS, pl.col(Label.START).alias(Alert.WINDOW_START),
                          pl.col(Label.END).alias(Alert.WINDOW_END))
    assert evaluate(perfect, read, NO_SLACK).macro_recall == 1.0


def test_alerts_from_csv_and_json_read_alike(tmp_path):
    row = {Alert.ALERT_ID: "a1", Alert.PATTERN: "wash_trading", Alert.RISK_LEVEL: "HIGH", Alert.SCORE: 0.9,
           Alert.SYMBOL: "BTCUSDT", Alert.USER_IDS: "u1;u2", Alert.WINDOW_START: "2026-03-02T10:00:00Z",
           Alert.WINDOW_END: "2026-03-02T10:05:00.5Z", Alert.EXPLANATION: "u1 and u2 traded 12 times, net 0",
           Alert.EVIDENCE: ["trade:1", "trade:2"], Alert.MODEL_VERSION: "rules-1",
           Alert.THRESHOLDS: {"min_round_trips": 3}}
    (tmp_path / "alerts.json").write_text(json.dumps([row]))
    csv_row = {**row, Alert.EVIDENCE: ";".join(row[Alert.EVIDENCE]), Alert.THRESHOLDS: json.dumps(row[Alert.THRESHOLDS])}
    pl.DataFrame([csv_row]).select(ALERT_COLUMNS).write_csv(tmp_path / "alerts.csv")
    from_json, from_csv = read_alerts(tmp_path / "alerts.json"), read_alerts(tmp_path / "alerts.csv")
    assert from_json.equals(from_csv)
    assert from_csv[Alert.WINDOW_END][0] == at(5) + timedelta(milliseconds=500)
    # JSON may carry user_ids as a list too.
    (tmp_path / "listed.json").write_text(json.dumps([{**row, Alert.USER_IDS: ["u1", "u2"]}]))
    assert read_alerts(tmp_path / "listed.json")[Alert.USER_IDS][0] == "u1;u2"
    (tmp_path / "none.json").write_text("[]")
    assert read_alerts(tmp_path / "none.json").height == 0


HEADER = "alert_id,pattern,symbol,user_ids,window_start,window_end\n"


@pytest.mark.parametrize(("content", "message"), [
    ("alert_id,pattern,symbol,user_ids,window_start\na1,wash_trading,BTCUSDT,u1,2026-03-02T10:00:00Z\n",
     "missing column(s) window_end"),
    (HEADER + "a1,wash_trading,BTCUSDT,u1,2026-03-02T10:00:00Z,2026-03-02T10:01:00Z\n"
     "a2,wash_trading,BTCUSDT,u1,2026-03-02T10:00:00Z,yesterday\n",
     "alerts.csv:3: window_end: expected an ISO-8601 UTC timestamp, got 'yesterday'"),
    (HEADER + "a1,wash_trading,BTCUSDT,u1,,2026-03-02T10:01:00Z\n", "alerts.csv:2: window_start: missing value"),
    (HEADER + "a1,washing,BTCUSDT,u1,2026-03-02T10:00:00Z,2026-03-02T10:01:00Z\n",
     "alerts.csv:2: pattern: unknown pattern 'washing'; expected one of wash_trading"),
    (HEADER + "a1,wash_trading,,u1,2026-03-02T10:00:00Z,2026-03-02T10:01:00Z\n", "alerts.csv:2: symbol: missing value"),
    (HEADER + "a1,wash_trading,BTCUSDT,u1,2026-03-02T10:02:00Z,2026-03-02T10:01:00Z\n",
     "alerts.csv:2: window_end: 2026-03-02 10:01:00+00:00 is before window_start"),
])
def test_bad_alert_files_name_file_row_and_field(tmp_path, content, message):
    path = tmp_path / "alerts.csv"
    path.write_text(content)
    with pytest.raises(EvaluationInputError) as error:
        read_alerts(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_bad_label_files(tmp_path):
    header = ",".join(LABEL_SCHEMA) + "\n"
    path = tmp_path / "labels.csv"
    path.write_text(header + "ep1,wash_trading,BTCUSDT,u1,2026-03-02T10:00:00Z,2026-03-02T10:05:00Z\n"
                    "ep2,wash_trading,BTCUSDT,u1,2026-03-02T10:00:00Z,2026-03-02 25:00\n")
    with pytest.raises(EvaluationInputError, match="labels.csv:3: end: expected an ISO-8601 UTC timestamp"):
        read_labels(path)
    path.write_text(header + "ep1,wash_trading,BTCUSDT,u1,2026-03-02T10:00:00Z,2026-03-02T10:05:00Z\n" * 2)
    with pytest.raises(EvaluationInputError, match="labels.csv:3: episode_id: 'ep1' appears more than once"):
        read_labels(path)
    path.write_text("episode_id,pattern,symbol,start,end\n")
    with pytest.raises(EvaluationInputError, match="missing column\\(s\\) user_ids"):
        read_labels(path)
    path.write_text(header)
    assert read_labels(path).height == 0
    with pytest.raises(InputFileError, match="file not found"):
        read_labels(tmp_path / "nowhere.csv")
