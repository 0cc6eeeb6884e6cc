import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from surveillance_pipeline.features.extractor import FeatureExtractor
from surveillance_pipeline.ml.base import ModelError
from surveillance_pipeline.ml.bundle import EnsembleBundle, ModelBundle, load_bundle
from surveillance_pipeline.ml.isolation_forest import IsolationForestModel
from surveillance_pipeline.ml.random_forest import RandomForestModel
from surveillance_pipeline.ml.settings import (
    IsolationForestSettings,
    RandomForestSettings,
)

FEATURES = ["f0", "f1", "f2", "f3"]
DAY = date(2026, 3, 1)
WEIGHTS = {"isolation_forest": 1.0, "random_forest": 3.0}
SCORE_COLUMNS = ["account_id", "date", "score", "anomalous", "models", "top_features"]


def feature_table(rng, accounts: int, days: int) -> pl.DataFrame:
    n = accounts * days
    return pl.DataFrame({
        "account_id": [f"a{i % accounts}" for i in range(n)],
        "date": [DAY + timedelta(days=i // accounts) for i in range(n)],
        **{name: rng.normal(size=n) for name in FEATURES},
    })


def labels_of(table: pl.DataFrame) -> np.ndarray:
    return (table.get_column("f0").to_numpy() > 1.0).astype(np.int8)


@pytest.fixture(scope="module")
def train():
    return feature_table(np.random.default_rng(0), accounts=60, days=5)


@pytest.fixture(scope="module")
def table():
    """Account-days to score: ordinary ones, then one extreme feature each on accounts x0..x3."""
    ordinary = feature_table(np.random.default_rng(1), accounts=20, days=1)
    extreme = pl.DataFrame({"account_id": [f"x{k}" for k in range(4)], "date": [DAY] * 4,
                            **{name: [50.0 if k == j else 0.0 for k in range(4)] for j, name in enumerate(FEATURES)}})
    return pl.concat([ordinary, extreme])


@pytest.fixture(scope="module")
def if_bundle(train):
    extractor = FeatureExtractor().fit(train)
    X = extractor.transform(train).select(extractor.output_names_).to_numpy()
    return ModelBundle(IsolationForestModel(IsolationForestSettings(n_estimators=50)).fit(X), extractor)


@pytest.fixture(scope="module")
def rf_bundle(train):
    extractor = FeatureExtractor().fit(train)
    X = extractor.transform(train).select(extractor.output_names_).to_numpy()
    return ModelBundle(RandomForestModel(RandomForestSettings(n_estimators=30)).fit(X, labels_of(train)), extractor)


@pytest.fixture(scope="module")
def ensemble(if_bundle, rf_bundle):
    return EnsembleBundle({"isolation_forest": if_bundle, "random_forest": rf_bundle}, weights=WEIGHTS)


def test_a_model_bundle_scores_a_feature_table(if_bundle, table):
    assert if_bundle.kind == "isolation_forest"
    assert if_bundle.feature_names == FEATURES
    scored = if_bundle.score_table(table)
    assert scored.columns == SCORE_COLUMNS + ["score_isolation_forest"]
    assert scored.height == table.height
    assert scored.get_column("account_id").to_list() == table.get_column("account_id").to_list()
    assert scored.get_column("date").to_list() == table.get_column("date").to_list()
    assert scored.schema["score"] == pl.Float64 and scored.schema["anomalous"] == pl.Boolean
    scores = scored.get_column("score").to_numpy()
    expected = if_bundle.model.score_samples(if_bundle.extractor.transform(table).select(FEATURES).to_numpy())
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(scored.get_column("score_isolation_forest").to_numpy(), scores)
    assert scored.get_column("anomalous").to_list() == (scores >= 0.5).tolist()
    assert set(scored.get_column("models")) == {"isolation_forest"}


def test_top_features_name_the_extreme_feature_first(if_bundle, table):
    scored = if_bundle.score_table(table).filter(pl.col("account_id").str.starts_with("x")).sort("account_id")
    tops = [value.split(";") for value in scored.get_column("top_features")]
    assert [names[0] for names in tops] == FEATURES  # x0 extreme in f0, x1 in f1, ...
    assert all(1 <= len(names) <= 3 and len(set(names)) == len(names) for names in tops)


def test_top_features_drop_missing_suffixes_and_duplicates(table):
    # f1 is sometimes missing in training: the extractor adds f1_missing, reported as f1
    train = feature_table(np.random.default_rng(4), accounts=50, days=2).with_columns(
        pl.when(pl.col("account_id").is_in(["a1", "a2", "a3"])).then(None).otherwise(pl.col("f1")).alias("f1"))
    extractor = FeatureExtractor().fit(train)
    assert "f1_missing" in extractor.output_names_
    X = extractor.transform(train).select(extractor.output_names_).to_numpy()
    bundle = ModelBundle(IsolationForestModel(IsolationForestSettings(n_estimators=25)).fit(X), extractor)
    row = pl.DataFrame({"account_id": ["m"], "date": [DAY], "f0": [0.0], "f1": [None], "f2": [0.0], "f3": [0.0]},
                       schema_overrides={"f1": pl.Float64})
    top = bundle.score_table(row).get_column("top_features")[0].split(";")
    assert top[0] == "f1"
    assert "f1_missing" not in top and len(top) == len(set(top))


def test_an_ensemble_bundle_scores_with_both_members(ensemble, if_bundle, rf_bundle, table):
    scored = ensemble.score_table(table)
    assert scored.columns == SCORE_COLUMNS + ["score_isolation_forest", "score_random_forest", "failed_models"]
    assert set(scored.get_column("models")) == {"isolation_forest;random_forest"}
    assert set(scored.get_column("failed_models")) == {""}
    if_scores, rf_scores = if_bundle.score_samples(table), rf_bundle.score_samples(table)
    np.testing.assert_allclose(scored.get_column("score_isolation_forest").to_numpy(), if_scores)
    np.testing.assert_allclose(scored.get_column("score_random_forest").to_numpy(), rf_scores, atol=1e-12)
    np.testing.assert_allclose(scored.get_column("score").to_numpy(), 0.25 * if_scores + 0.75 * rf_scores,
                               atol=1e-12)
    assert scored.get_column("anomalous").to_list() == (scored.get_column("score").to_numpy() >= 0.5).tolist()
    np.testing.assert_allclose(ensemble.score_samples(table), scored.get_column("score").to_numpy(), atol=1e-12)


def test_the_ensemble_labels_the_supervised_pattern(ensemble, table):
    scored = ensemble.score_table(table)
    high_f0 = (table.get_column("f0") > 1.5).to_numpy()
    assert high_f0.any()
    scores = scored.get_column("score_random_forest").to_numpy()
    assert scores[high_f0].min() > scores[~high_f0 & (table.get_column("f0") < 0.5).to_numpy()].max()


def test_a_member_whose_extractor_cannot_read_the_table_fails_alone(if_bundle, train, table):
    wider = train.with_columns(pl.Series("f_extra", np.random.default_rng(3).normal(size=train.height)))
    extractor = FeatureExtractor().fit(wider)
    assert "f_extra" in extractor.output_names_
    X = extractor.transform(wider).select(extractor.output_names_).to_numpy()
    rf = ModelBundle(RandomForestModel(RandomForestSettings(n_estimators=25)).fit(X, labels_of(wider)), extractor)
    ensemble = EnsembleBundle({"isolation_forest": if_bundle, "random_forest": rf}, weights=WEIGHTS)
    scored = ensemble.score_table(table)  # the table has no f_extra
    assert set(scored.get_column("models")) == {"isolation_forest"}
    failed = json.loads(scored.get_column("failed_models")[0])
    assert list(failed) == ["random_forest"]
    assert "f_extra" in failed["random_forest"]
    assert "score_random_forest" not in scored.columns
    np.testing.assert_array_equal(scored.get_column("score").to_numpy(), if_bundle.score_samples(table))
    # the explanation comes from the member that scored
    x2 = scored.filter(pl.col("account_id") == "x2")
    assert x2.get_column("top_features")[0].split(";")[0] == "f2"


def test_no_member_able_to_score_raises(if_bundle, table):
    ensemble = EnsembleBundle({"isolation_forest": if_bundle}, weights={"isolation_forest": 1.0})
    with pytest.raises(ModelError, match="isolation_forest"):
        ensemble.score_table(table.drop("f3"))


def test_model_bundle_save_load_round_trip(if_bundle, table, tmp_path):
    if_bundle.save(tmp_path / "if")
    loaded = load_bundle(tmp_path / "if")
    assert isinstance(loaded, ModelBundle) and isinstance(loaded.model, IsolationForestModel)
    assert loaded.feature_names == if_bundle.feature_names
    assert_frame_equal(loaded.score_table(table), if_bundle.score_table(table))


def test_ensemble_bundle_save_load_round_trip(ensemble, table, tmp_path):
    ensemble.save(tmp_path / "ens")
    loaded = load_bundle(tmp_path / "ens")
    assert isinstance(loaded, EnsembleBundle)
    assert sorted(loaded.members) == ["isolation_forest", "random_forest"]
    assert isinstance(loaded.members["random_forest"].model, RandomForestModel)
    assert loaded.weights == WEIGHTS and loaded.ensemble.threshold == ensemble.ensemble.threshold
    # the forest's probabilities vary in the last bit between calls (see test_random_forest), hence the tolerance
    assert_frame_equal(loaded.score_table(table), ensemble.score_table(table), check_exact=False,
                       rel_tol=0.0, abs_tol=1e-12)


def test_load_bundle_refuses_a_directory_without_a_bundle(tmp_path):
    with pytest.raises(ModelError):
        load_bundle(tmp_path)
