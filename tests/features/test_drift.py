import polars as pl

from surveillance_pipeline.features.drift import drift_problems


def test_drift_flags_missing_values_and_moved_medians():
    previous = pl.DataFrame({"a": [float(i) for i in range(101)], "b": [1.0] * 101})  # a: p1 1, p99 99
    same = pl.DataFrame({"a": [10.0, 50.0, 90.0], "b": [1.0, 1.0, 1.0]})
    assert drift_problems(same, previous, ["a", "b"]) == []
    moved = pl.DataFrame({"a": [500.0, 600.0, 700.0], "b": [None, None, 1.0]})
    assert drift_problems(moved, previous, ["a", "b"]) == [
        "a: median 600 outside the previous day's 1-99% range [1, 99]",
        "b: missing 0% -> 67%",
    ]
    assert drift_problems(same, None, ["a"]) == []
