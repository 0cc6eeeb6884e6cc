"""The analyst reports (daily summary, account profile, pattern analysis) on small hand-made frames whose
counts are known, plus one realistic run that checks the pages stay few and never blank."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from surveillance_pipeline.reporting.analyst import (
    account_profile,
    daily_summary,
    feature_comparison,
    pattern_analysis,
)
from surveillance_pipeline.reporting.analyst_common import ALERT_CSV_COLUMNS, window_text

from .test_pdf import page_texts

FIRST, LAST = date(2026, 3, 2), date(2026, 3, 3)
PERIOD = "2026-03-02 – 2026-03-03"
ALERT_SCHEMA = {
    "alert_id": pl.String, "pattern": pl.String, "risk_level": pl.String, "score": pl.Float64, "symbol": pl.String,
    "user_ids": pl.String, "window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
    "explanation": pl.String, "evidence": pl.List(pl.String), "model_version": pl.String, "thresholds": pl.String,
    "sources": pl.String, "model_score": pl.Float64, "top_features": pl.String, "linked_alert_id": pl.String,
    "first_seen": pl.Date, "occurrence": pl.Int64, "date": pl.Date,
}
LONG = ("u1 bought and sold 4,120 BTC with itself through 37 matched order pairs within 30 minutes on BTCUSDT, "
        "at prices within 0.02% of each other, with no change in net position; self-trades made up 61% of the "
        "account's volume in the window (threshold 30%), and the pairs repeated every 45 seconds.")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def alert(alert_id: str, pattern: str, risk: str, score: float, symbol: str, users: str, start: datetime,
          minutes: int = 30, *, occurrence: int = 1, explanation: str | None = None, day: date | None = None,
          top_features: str = "[]") -> dict:
    day = day or start.date()
    return {
        "alert_id": alert_id, "pattern": pattern, "risk_level": risk, "score": score, "symbol": symbol,
        "user_ids": users, "window_start": start, "window_end": start + timedelta(minutes=minutes),
        "explanation": explanation or f"{pattern} on {symbol} by {users or 'the market'}, alert {alert_id}.",
        "evidence": [f"{alert_id}-T1", f"{alert_id}-T2"], "model_version": None,
        "thresholds": json.dumps({"min_trades": 4}), "sources": "rules", "model_score": None,
        "top_features": top_features, "linked_alert_id": "a0" if occurrence > 1 else None,
        "first_seen": FIRST if occurrence > 1 else day, "occurrence": occurrence, "date": day,
    }


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ALERT_SCHEMA)


ML_FEATURES = json.dumps([{"feature": "cancel_rate", "value": 0.97, "percentile": 0.998, "median": 0.12}])
ALERTS = frame([
    alert("a1", "wash_trading", "HIGH", 0.91, "BTCUSDT", "u1;u2", at(2, 10, 15), explanation=LONG),
    alert("a2", "wash_trading", "MEDIUM", 0.70, "BTCUSDT", "u1", at(3, 9, 0), occurrence=2),
    alert("a3", "spoofing", "LOW", 0.40, "ETHUSDT", "u3", at(2, 23, 50), minutes=25),
    alert("a4", "pump_and_dump", "HIGH", 0.85, "SOLUSDT", "", at(3, 14, 0), minutes=60),
    alert("a5", "circular_trading", "MEDIUM", 0.66, "ETHUSDT", "u1;u3;u4", at(3, 16, 5)),
    alert("a6", "ml_anomaly", "LOW", 0.55, "BTCUSDT", "u5", at(3, 0, 0), minutes=1439, top_features=ML_FEATURES),
    alert("late", "spoofing", "HIGH", 0.99, "BTCUSDT", "u1", at(4, 1, 0)),  # after the period
])
IN_PERIOD = {"a1", "a2", "a3", "a4", "a5", "a6"}
SCORES = pl.DataFrame({
    "account_id": ["u1", "u2", "u3", "u1", "u2", "u3", "u1"],
    "date": [FIRST, FIRST, FIRST, LAST, LAST, LAST, date(2026, 3, 1)],
    "score": [0.62, 0.10, 0.20, 0.81, 0.05, 0.50, 0.30],
    "anomalous": [True, False, False, True, False, True, False],
    "models": ["isolation_forest;random_forest"] * 7, "model_source": ["registry"] * 7,
})
ACTIVITY = pl.DataFrame({
    "symbol": ["BTCUSDT", "ETHUSDT", "BTCUSDT", "SOLUSDT"],
    "hour": [at(2, 10), at(2, 10), at(3, 14), at(3, 14)],
    "trades": [120, 40, 300, 80], "volume": [1.2e6, 2.0e5, 3.1e6, 9.0e4], "accounts": [12, 5, 30, 9],
}, schema={"symbol": pl.String, "hour": pl.Datetime("us", "UTC"), "trades": pl.Int64, "volume": pl.Float64,
           "accounts": pl.Int64})


def pdf_text(path: Path) -> str:
    """All the PDF's text with whitespace collapsed, in drawing order so that a wrapped cell stays together."""
    if shutil.which("pdftotext"):
        raw = subprocess.run(["pdftotext", "-raw", str(path), "-"], check=True, capture_output=True).stdout
        text = raw.decode("utf-8")
    else:
        text = "\n".join(page_texts(path))
    return " ".join(text.split())


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def only_report_files(folder: Path, stem: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{stem}.{ext}" for ext in ("csv", "json", "pdf"))


# ---- daily summary --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return daily_summary(tmp_path_factory.mktemp("daily"), FIRST, LAST, ALERTS, SCORES, ACTIVITY, top_n=4)


def test_daily_writes_its_three_files_and_nothing_else(daily: dict[str, Path]) -> None:
    assert set(daily) == {"pdf", "csv", "json"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in daily.values())
    only_report_files(daily["pdf"].parent, "daily_summary")  # no chart PNGs or temporary files left behind


def test_daily_csv_holds_the_alerts_of_the_period(daily: dict[str, Path]) -> None:
    rows = csv_rows(daily["csv"])
    assert {r["alert_id"] for r in rows} == IN_PERIOD and len(rows) == len(IN_PERIOD)
    assert list(rows[0])[:len(ALERT_CSV_COLUMNS)] == list(ALERT_CSV_COLUMNS)
    assert [r["alert_id"] for r in rows][:2] == ["a1", "a4"]  # priority order: HIGH by score first
    first = rows[0]
    assert first["evidence"] == "a1-T1;a1-T2"
    assert first["window_start"] == "2026-03-02T10:15:00Z" and first["window_end"] == "2026-03-02T10:45:00Z"
    assert first["explanation"] == LONG  # commas and quotes survive
    assert first["date"] == "2026-03-02" and first["model_score"] == ""
    market = next(r for r in rows if r["alert_id"] == "a4")
    assert market["user_ids"] == ""


def test_daily_json_counts_match_the_hand_counts(daily: dict[str, Path]) -> None:
    report = json.loads(daily["json"].read_text(encoding="utf-8"))
    counts = report["counts"]
    assert report["period"] == {"first_day": "2026-03-02", "last_day": "2026-03-03"}
    assert counts["total"] == 6 and counts["re_raised"] == 1 and counts["new"] == 5
    assert counts["by_risk_level"] == {"HIGH": 2, "MEDIUM": 2, "LOW": 2}
    assert counts["by_pattern"] == {
        "wash_trading": {"total": 2, "HIGH": 1, "MEDIUM": 1, "LOW": 0, "re_raised": 1},
        "circular_trading": {"total": 1, "HIGH": 0, "MEDIUM": 1, "LOW": 0, "re_raised": 0},
        "pump_and_dump": {"total": 1, "HIGH": 1, "MEDIUM": 0, "LOW": 0, "re_raised": 0},
        "spoofing": {"total": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 1, "re_raised": 0},
        "ml_anomaly": {"total": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 1, "re_raised": 0},
    }
    by_day = {d["date"]: d for d in counts["by_day"]}
    assert by_day["2026-03-02"]["total"] == 2 and by_day["2026-03-03"]["total"] == 4
    assert by_day["2026-03-03"]["by_pattern"] == {"wash_trading": 1, "circular_trading": 1, "pump_and_dump": 1,
                                                  "ml_anomaly": 1}
    top = report["top_alerts"]
    assert [a["alert_id"] for a in top] == ["a1", "a4", "a2", "a5"]  # top_n=4
    assert top[0]["explanation"] == LONG and top[0]["thresholds"] == {"min_trades": 4}
    scores = report["scores"]  # the period's six rows, not the day before
    assert scores["rows"] == 6 and scores["accounts"] == 3
    assert scores["at_or_above_threshold"] == 3 and scores["anomalous"] == 3
    assert scores["max"] == pytest.approx(0.81) and scores["median"] == pytest.approx(0.35)
    assert report["activity"]["trades"] == 540 and report["activity"]["busiest_hour"]["trades"] == 380
    assert report["generated_at"].endswith("Z")


def test_daily_pdf_reads_as_a_summary(daily: dict[str, Path]) -> None:
    pages = page_texts(daily["pdf"])
    text = pdf_text(daily["pdf"])
    assert "Daily surveillance summary" in pages[0] and PERIOD in pages[0] and "Page 1 of" in pages[0]
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]
    assert LONG in text  # the explanation wraps in its cell, never cut
    assert "6 alerts in this period: 2 HIGH, 2 MEDIUM and 2 LOW" in text
    assert "wash trading (2)" in text and "ML anomaly (1)" in text
    assert "1 alert was re-raised from earlier days" in text
    assert "Top 4 alerts" in text and "Mar 02 10:15–10:45" in text
    for heading in ("Alerts by pattern and risk level", "Alerts by day", "Trading activity and alert windows",
                    "Model scores", "When alerts start"):
        assert heading in text
    assert "market-level" in text and "u1, u2" in text


def test_daily_with_zero_alerts_still_renders(tmp_path: Path) -> None:
    empty = ALERTS.clear()
    paths = daily_summary(tmp_path, FIRST, FIRST, empty, SCORES.clear(), ACTIVITY.clear())
    text = pdf_text(paths["pdf"])
    assert "No alerts in this period." in text and "No model scores in this period." in text
    assert "Daily surveillance summary" in text and "2026-03-02" in text and "Page 1 of 1" in text
    assert csv_rows(paths["csv"]) == []
    assert paths["csv"].read_text().startswith("alert_id,date,pattern")
    report = json.loads(paths["json"].read_text())
    assert report["counts"]["total"] == 0 and report["top_alerts"] == []
    assert report["counts"]["by_day"] == [{"date": "2026-03-02", "total": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0,
                                           "re_raised": 0, "by_pattern": {}}]
    assert report["scores"]["rows"] == 0 and report["scores"]["median"] is None


def test_daily_accepts_an_empty_frame_without_columns(tmp_path: Path) -> None:
    paths = daily_summary(tmp_path, FIRST, FIRST, pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
    assert "No alerts in this period." in pdf_text(paths["pdf"])


def test_one_day_windows_have_no_date(tmp_path: Path) -> None:
    paths = daily_summary(tmp_path, FIRST, FIRST, ALERTS, SCORES, ACTIVITY)
    text = pdf_text(paths["pdf"])
    assert "10:15–10:45" in text and "Mar 02 10:15" not in text
    assert "Alerts by day" not in text  # one day: no per-day table
    assert {r["alert_id"] for r in csv_rows(paths["csv"])} == {"a1", "a3"}


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="alerts: missing column.*score"):
        daily_summary(tmp_path, FIRST, LAST, ALERTS.drop("score"), SCORES, ACTIVITY)
    with pytest.raises(ValueError, match="before first_day"):
        daily_summary(tmp_path, LAST, FIRST, ALERTS, SCORES, ACTIVITY)
    with pytest.raises(TypeError, match="window_start: expected UTC datetimes"):
        daily_summary(tmp_path, FIRST, LAST, ALERTS.with_columns(pl.col("window_start").cast(pl.String)), SCORES,
                      ACTIVITY)
    assert list(tmp_path.iterdir()) == []


def test_window_text() -> None:
    assert window_text(at(2, 23, 50), at(3, 0, 15), with_day=False) == "23:50–00:15 +1d"
    assert window_text(at(2, 9, 5), at(2, 9, 35), with_day=True) == "Mar 02 09:05–09:35"


# ---- account profile ------------------------------------------------------------------------------------

def features_table() -> pl.DataFrame:
    """Five accounts on two days; on the later day u1 is extreme in `order_to_trade_ratio` only."""
    accounts = ["u1", "u2", "u3", "u4", "u5"]
    later = pl.DataFrame({
        "account_id": accounts, "date": [LAST] * 5,
        "trades_day": [13.0, 10.0, 14.0, 11.0, 12.0],  # u1 a little above the middle: percentile 70
        "order_to_trade_ratio": [480.0, 2.0, 3.0, 4.0, 2.5],  # u1 far above everyone
        "cancel_rate": [0.2, 0.2, 0.2, 0.2, 0.2],  # all the same: typical, percentile 50
        "volume_day": [None, 100.0, 200.0, 300.0, 400.0],  # u1 has no value
    })
    earlier = later.with_columns(pl.lit(FIRST).alias("date"), pl.lit(1.0).alias("order_to_trade_ratio"))
    other_period = later.with_columns(pl.lit(date(2026, 3, 9)).alias("date"))  # after the period: ignored
    return pl.concat([earlier, later, other_period])


def test_feature_comparison_ranks_the_extreme_feature_first() -> None:
    result = feature_comparison(features_table(), "u1", FIRST, LAST, units={"order_to_trade_ratio": "orders/fill"})
    assert result["date"] == LAST and result["accounts"] == 5
    rows = result["rows"]
    assert [r["feature"] for r in rows] == ["order_to_trade_ratio", "trades_day", "cancel_rate", "volume_day"]
    top = rows[0]
    assert top["value"] == 480.0 and top["percentile"] == pytest.approx(90.0)  # 4 below, itself counts half
    assert top["peer_median"] == pytest.approx(2.75) and top["unit"] == "orders/fill" and top["peers"] == 4
    assert rows[2]["percentile"] == pytest.approx(50.0)  # a value everyone shares is typical
    assert rows[3]["value"] is None and rows[3]["percentile"] is None
    assert feature_comparison(features_table(), "nobody", FIRST, LAST)["date"] is None


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    activity = ACTIVITY.filter(pl.col("symbol") == "BTCUSDT")
    return account_profile(tmp_path_factory.mktemp("account"), "u1", FIRST, LAST, ALERTS, features_table(), SCORES,
                           activity, feature_units={"order_to_trade_ratio": "orders/fill"})


def test_account_profile_files_and_alerts(profile: dict[str, Path]) -> None:
    assert {p.name for p in profile.values()} == {"account_u1.pdf", "account_u1.csv", "account_u1.json"}
    only_report_files(profile["pdf"].parent, "account_u1")
    assert [r["alert_id"] for r in csv_rows(profile["csv"])] == ["a1", "a2", "a5"]  # u1's, priority order
    report = json.loads(profile["json"].read_text())
    assert report["account_id"] == "u1" and report["alerts"]["total"] == 3
    assert report["alerts"]["by_risk_level"] == {"HIGH": 1, "MEDIUM": 2, "LOW": 0}
    assert report["features"]["rows"][0]["feature"] == "order_to_trade_ratio"
    history = report["scores"]["history"]  # up to the period's end, the day before included
    assert [(h["date"], h["score"]) for h in history] == [("2026-03-01", 0.30), ("2026-03-02", 0.62),
                                                         ("2026-03-03", 0.81)]
    assert report["activity"]["trades"] == 420


def test_account_profile_pdf(profile: dict[str, Path]) -> None:
    text = pdf_text(profile["pdf"])
    pages = page_texts(profile["pdf"])
    assert "Account risk profile: u1" in pages[0] and PERIOD in pages[0] and "Page 1 of" in pages[0]
    assert LONG in text
    assert "named in 3 alerts" in text and "Other accounts in the same alerts: u2, u3 and u4" in text
    assert "Latest model score 0.810 on 2026-03-03" in text
    features = text[text.index("Features against peers"):]
    assert features.index("order_to_trade_ratio") < features.index("trades_day") < features.index("cancel_rate")
    assert "480 orders/fill" in features and "90.0" in features and "2.75 orders/fill" in features
    for heading in ("Alerts", "Model score history", "Activity"):
        assert heading in text


def test_account_without_alerts_gets_a_profile(tmp_path: Path) -> None:
    paths = account_profile(tmp_path, "u2", LAST, LAST, ALERTS, features_table(), SCORES.clear(),
                            ACTIVITY.clear())
    text = pdf_text(paths["pdf"])
    assert "No alerts for account u2 in this period." in text
    assert "No model scores for this account." in text
    assert csv_rows(paths["csv"]) == []
    assert json.loads(paths["json"].read_text())["alerts"]["total"] == 0


def test_account_with_nothing_at_all_and_an_awkward_id(tmp_path: Path) -> None:
    paths = account_profile(tmp_path, "ops/desk 7", FIRST, LAST, ALERTS.clear(), None, None, None)
    assert paths["pdf"].name == "account_ops_desk_7.pdf"
    text = pdf_text(paths["pdf"])
    assert "Account risk profile: ops/desk 7" in text and "No feature row for this account" in text


def test_model_drivers_are_listed(tmp_path: Path) -> None:
    paths = account_profile(tmp_path, "u5", FIRST, LAST, ALERTS, None, None, None)
    text = pdf_text(paths["pdf"])
    assert "What drove the model alerts" in text and "cancel_rate" in text and "99.8" in text


# ---- pattern analysis -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def patterns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return pattern_analysis(tmp_path_factory.mktemp("pattern"), FIRST, LAST, ALERTS)


def test_pattern_analysis_counts_accounts_and_symbols_per_pattern(patterns: dict[str, Path]) -> None:
    only_report_files(patterns["pdf"].parent, "pattern_analysis")
    report = json.loads(patterns["json"].read_text())
    by = {p["pattern"]: p for p in report["patterns"]}
    assert list(by) == ["wash_trading", "circular_trading", "pump_and_dump", "spoofing", "ml_anomaly"]
    wash = by["wash_trading"]
    assert (wash["alerts"], wash["episodes"], wash["accounts"], wash["symbols"]) == (2, 2, 2, 1)
    assert (wash["HIGH"], wash["MEDIUM"], wash["LOW"], wash["re_raised"]) == (1, 1, 0, 1)
    assert wash["re_raised_share"] == pytest.approx(0.5)
    assert wash["top_accounts"] == [{"account": "u1", "alerts": 2}, {"account": "u2", "alerts": 1}]
    assert wash["top_symbols"] == [{"symbol": "BTCUSDT", "alerts": 2}]
    assert by["circular_trading"]["accounts"] == 3
    pump = by["pump_and_dump"]
    assert pump["accounts"] == 0 and pump["market_level"] == 1 and pump["top_accounts"] == []
    assert report["totals"] == {"alerts": 6, "episodes": 6, "accounts": 5, "symbols": 3, "patterns": 5,
                                "HIGH": 2, "MEDIUM": 2, "LOW": 2, "re_raised": 1,
                                "re_raised_share": pytest.approx(1 / 6)}
    days = {d["date"]: d["by_pattern"] for d in report["by_day"]}
    assert days["2026-03-02"] == {"wash_trading": 1, "spoofing": 1} and report["labels"] is None
    rows = csv_rows(patterns["csv"])
    assert [r["pattern"] for r in rows] == list(by)
    assert rows[0]["accounts"] == "2" and rows[0]["top_accounts"] == "u1;u2"


def test_pattern_analysis_pdf(patterns: dict[str, Path]) -> None:
    pages = page_texts(patterns["pdf"])
    text = pdf_text(patterns["pdf"])
    assert "Pattern analysis" in pages[0] and PERIOD in pages[0] and "Page 1 of" in pages[0]
    assert "6 alerts (6 episodes) in 5 patterns, naming 5 accounts on 3 symbols" in text
    for heading in ("Typologies", "Trend", "Most involved accounts and symbols"):
        assert heading in text
    assert "u1 (2), u2 (1)" in text and "market-level only" in text
    assert "Against labelled episodes" not in text


def test_pattern_analysis_against_labels(tmp_path: Path) -> None:
    labels = pl.DataFrame({
        "episode_id": ["e1", "e2", "e3"], "pattern": ["wash_trading", "spoofing", "spoofing"],
        "symbol": ["BTCUSDT", "BTCUSDT", "BTCUSDT"], "user_ids": ["u1;u2", "u9", "u9"],
        "start": [at(2, 10, 20), at(2, 4), datetime(2026, 3, 8, tzinfo=UTC)],  # e3 is outside the period
        "end": [at(2, 10, 40), at(2, 5), datetime(2026, 3, 8, 1, tzinfo=UTC)],
    }, schema={"episode_id": pl.String, "pattern": pl.String, "symbol": pl.String, "user_ids": pl.String,
               "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})
    paths = pattern_analysis(tmp_path, FIRST, LAST, ALERTS, labels=labels)
    evaluation = json.loads(paths["json"].read_text())["labels"]
    assert evaluation["totals"]["episodes"] == 2 and evaluation["totals"]["episodes_found"] == 1
    text = pdf_text(paths["pdf"])
    assert "Against labelled episodes" in text and "2 labelled episodes start in this period" in text


def test_pattern_analysis_with_zero_alerts(tmp_path: Path) -> None:
    paths = pattern_analysis(tmp_path, FIRST, LAST, ALERTS.clear())
    assert "No alerts in this period." in pdf_text(paths["pdf"])
    assert csv_rows(paths["csv"]) == []
    assert json.loads(paths["json"].read_text())["totals"]["alerts"] == 0


# ---- a realistic run ------------------------------------------------------------------------------------

def test_realistic_reports_have_few_pages_and_none_blank(tmp_path: Path) -> None:
    from .analyst_samples import write_samples

    written = write_samples(tmp_path)
    limits = {"daily": 6, "account": 5, "pattern": 4}
    for name, paths in written.items():
        pages = page_texts(paths["pdf"])
        assert 1 <= len(pages) <= limits[name], f"{name}: {len(pages)} pages"
        for number, page in enumerate(pages, start=1):
            content = [line for line in page.splitlines() if line.strip() and not any(
                mark in line for mark in ("Crypto market surveillance", "Generated ", f"of {len(pages)}"))]
            assert content, f"{name} page {number} is blank: only the running header and footer"
    assert len(csv_rows(written["daily"]["csv"])) == 40
