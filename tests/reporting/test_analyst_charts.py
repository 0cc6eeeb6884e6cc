"""The analyst charts: PNGs of a readable size, a note instead of a failure when there is nothing to draw,
consistent colours, and the figures closed afterwards."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from surveillance_pipeline.reporting.charts import (
    RISK_COLORS,
    activity_bucket,
    activity_timeline,
    alert_heatmap,
    feature_percentiles,
    pattern_colors,
    pattern_label,
    pattern_trend,
    risk_by_pattern,
    risk_level_bars,
    score_histogram,
    score_history,
)

from .test_training_report import png_size

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=2)


def hours(count: int) -> list[datetime]:
    return [START + timedelta(hours=i) for i in range(count)]


def readable(path: Path) -> tuple[int, int]:
    width, height = png_size(path)
    assert 700 <= width <= 1200 and 300 <= height <= 1000, (width, height)
    return width, height


def test_every_chart_draws_with_data_and_without(tmp_path: Path) -> None:
    windows = [(START + timedelta(hours=3), START + timedelta(hours=3, minutes=20), "HIGH"),
               (START + timedelta(hours=30), START + timedelta(hours=31), "LOW")]
    series = {"BTCUSDT": (hours(40), list(range(40))), "ETHUSDT": (hours(10), [5] * 10)}
    days = [date(2026, 3, 2), date(2026, 3, 3)]
    drawn = [
        activity_timeline(tmp_path / "a1.png", series, windows, start=START, end=END),
        activity_timeline(tmp_path / "a2.png", {}, [], start=START, end=END),
        score_histogram(tmp_path / "s1.png", np.random.default_rng(1).beta(1, 9, 500).tolist() + [None, 0.9]),
        score_histogram(tmp_path / "s2.png", []),
        alert_heatmap(tmp_path / "h1.png", [w[0] for w in windows], weekdays_in_period=[0, 1]),
        alert_heatmap(tmp_path / "h2.png", []),
        pattern_trend(tmp_path / "t1.png", days, {"wash_trading": [2, 0], "spoofing": [1, 3]}),
        pattern_trend(tmp_path / "t2.png", days, {}),
        score_history(tmp_path / "c1.png", days, [0.2, 0.7], period=(days[1], days[1])),
        score_history(tmp_path / "c2.png", [], []),
    ]
    for path in drawn:
        readable(path)
    assert png_size(risk_level_bars(tmp_path / "r.png", {"HIGH": 2, "LOW": 1}))[0] >= 700
    assert png_size(risk_by_pattern(tmp_path / "p.png", {"spoofing": {"HIGH": 1, "LOW": 4}}))[0] >= 700
    assert png_size(feature_percentiles(tmp_path / "f.png", ["a", "b", "c"], [99.5, 3.0, None]))[0] >= 700
    assert not plt.get_fignums()  # every figure closed
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".png"]  # no temporary files left


def test_chart_inputs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'spoofing': 1 counts for 2 days"):
        pattern_trend(tmp_path / "t.png", [date(2026, 3, 2), date(2026, 3, 3)], {"spoofing": [1]})
    assert not plt.get_fignums() and not list(tmp_path.iterdir())


def test_activity_is_bucketed_by_the_length_of_the_period() -> None:
    assert activity_bucket(START, START + timedelta(days=1)) == (1, "hour")
    assert activity_bucket(START, START + timedelta(days=4)) == (1, "hour")
    assert activity_bucket(START, START + timedelta(days=7)) == (6, "6 hours")
    assert activity_bucket(START, START + timedelta(days=30)) == (24, "day")


def test_names_and_colours() -> None:
    assert pattern_label("wash_trading") == "Wash trading" and pattern_label("ml_anomaly") == "ML anomaly"
    assert pattern_label("pump_and_dump") == "Pump and dump"
    colours = pattern_colors(["wash_trading", "spoofing", "new_pattern", "other_pattern"])
    assert len(set(colours.values())) == 4
    assert not set(colours.values()) & set(RISK_COLORS.values())  # patterns never look like risk levels
    assert set(RISK_COLORS) == {"HIGH", "MEDIUM", "LOW"}
