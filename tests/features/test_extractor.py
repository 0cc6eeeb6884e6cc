import polars as pl
import pytest

from surveillance_pipeline.features.extractor import FeatureExtractor


def _table():
    return pl.DataFrame({
        "account_id": ["a", "b", "c", "d", "e"],
        "x": [1.0, 2.0, 3.0, 4.0, 100.0],         # median 3, IQR 4-2 = 2
        "x_twice": [2.0, 4.0, 6.0, 8.0, 200.0],   # perfectly correlated with x: pruned
        "constant": [5.0] * 5,                     # no variance: pruned
        "y": [None, 1.0, 0.0, 1.0, 0.0],           # median of 1,0,1,0 = 0.5; IQR q75 1 - q25 0 = 1
    })


def test_selection_and_robust_scaling():
    extractor = FeatureExtractor(compress_tails=False).fit(_table())
    assert extractor.features_ == ["x", "y"]
    assert extractor.dropped_ == {"constant": "low variance", "x_twice": "correlated"}
    assert (extractor.center_["x"], extractor.scale_["x"]) == (3.0, 2.0)
    out = extractor.transform(_table())
    assert out.columns == ["account_id", "x", "y", "y_missing"]
    assert out["x"].to_list() == [-1.0, -0.5, 0.0, 0.5, 48.5]  # (1-3)/2 ... (100-3)/2
    assert out["y"].to_list() == [0.0, 0.5, -0.5, 0.5, -0.5]   # missing -> median -> 0
    assert out["y_missing"].to_list() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_compressed_tails_keep_order_and_shrink_extremes():
    import math

    out = FeatureExtractor().fit(_table()).transform(_table())
    assert out["x"].to_list() == pytest.approx([-math.log(2), -math.log(1.5), 0.0, math.log(1.5), math.log(49.5)])
    assert out["y_missing"].to_list() == [1.0, 0.0, 0.0, 0.0, 0.0]  # indicators are not transformed


def test_infinite_values_count_as_missing():
    table = _table().with_columns(pl.Series("x", [1.0, 2.0, float("inf"), 4.0, 100.0]))
    extractor = FeatureExtractor(compress_tails=False).fit(table)
    out = extractor.transform(table)
    assert out["x"].is_finite().all() and out["x_missing"].to_list() == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_include_exclude_and_round_trip():
    extractor = FeatureExtractor(include=["x", "y", "constant"], exclude=["y"]).fit(_table())
    assert extractor.features_ == ["x"]
    again = FeatureExtractor.from_json(extractor.to_json())
    assert again.transform(_table()).equals(extractor.transform(_table()))
    with pytest.raises(ValueError, match=r"unknown features \['nope'\]"):
        FeatureExtractor(include=["nope"]).fit(_table())
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureExtractor().transform(_table())


def test_feature_docs_are_current_and_complete():
    from pathlib import Path

    from surveillance_pipeline.features.account import ACCOUNT_FEATURES
    from surveillance_pipeline.features.catalog import features_markdown
    from surveillance_pipeline.features.market import MARKET_FEATURES

    docs = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"
    assert docs.read_text() == features_markdown(), "run `surveillance features docs` to regenerate docs/FEATURES.md"
    names = [f.name for f in ACCOUNT_FEATURES + MARKET_FEATURES]
    assert len(names) == len(set(names))
    assert all(f.unit and len(f.meaning) > 10 for f in ACCOUNT_FEATURES + MARKET_FEATURES)
