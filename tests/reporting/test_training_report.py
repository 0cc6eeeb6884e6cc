"""The model-training report: its five files, their content, and the charts' edge cases."""
from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from surveillance_pipeline.reporting.charts import _usable, pr_curves, roc_curves
from surveillance_pipeline.reporting.training import (
    METRIC_COLUMNS,
    write_training_report,
)

from .test_pdf import page_texts

MODELS = ("isolation_forest", "autoencoder", "random_forest", "ensemble")


def synthetic_run(seed: int = 7, rows: int = 300) -> tuple[list[dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Metrics for four models on two splits, and test-split curves with ~10 % positives."""
    rng = np.random.default_rng(seed)
    metrics, curves = [], {}
    for split in ("validation", "test"):
        y_true = (rng.random(rows) < 0.1).astype(int)
        for separation, model in enumerate(MODELS, start=1):
            scores = 1 / (1 + np.exp(-(rng.normal(0, 1, rows) + separation * 0.7 * y_true - 2)))
            metrics.append({
                "model": model, "split": split, "precision": round(0.5 + separation / 10, 4),
                "recall": round(0.4 + separation / 10, 4), "f1": round(0.45 + separation / 10, 4),
                "auc_roc": float(roc_auc_score(y_true, scores)),
                "average_precision": float(average_precision_score(y_true, scores)),
                "threshold": 0.5, "rows": rows, "positives": int(y_true.sum()),
            })
            if split == "test":
                curves[model] = (y_true, scores)
    metrics[0]["auc_roc"] = None  # undefined metric
    return metrics, curves


META = {
    "title": "Model training report", "seed": 7, "scenario_days": 10, "period": "2026-03-02 – 2026-03-11",
    "selected_model": "ensemble", "ensemble_weights": {"isolation_forest": 0.25, "autoencoder": 0.25,
                                                       "random_forest": 0.5},
    "mlflow_run_id": "run-0f3a9c", "feature_set": "account_features_v2",
    "registered": {"surveillance-random-forest": {"version": 3, "champion": True, "reason": "beats champion v2"},
                   "surveillance-autoencoder": {"version": 2, "champion": False, "reason": "below champion"}},
}


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], list[dict]]:
    metrics, curves = synthetic_run()
    paths = write_training_report(tmp_path_factory.mktemp("training"), metrics, curves, META)
    return paths, metrics


def test_writes_every_file_and_returns_its_path(report: tuple[dict[str, Path], list[dict]]) -> None:
    paths, _ = report
    assert set(paths) == {"csv", "json", "roc", "pr", "pdf"}
    assert {p.name for p in paths.values()} == {"metrics.csv", "metrics.json", "roc.png", "pr.png", "report.pdf"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert sorted(p.name for p in paths["pdf"].parent.iterdir()) == sorted(p.name for p in paths.values())


def test_csv_has_one_row_per_model_and_split(report: tuple[dict[str, Path], list[dict]]) -> None:
    paths, metrics = report
    with paths["csv"].open(newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == METRIC_COLUMNS
        rows = list(reader)
    assert [(r["model"], r["split"]) for r in rows] == [(m["model"], m["split"]) for m in metrics]
    assert {(r["model"], r["split"]) for r in rows} == {(m, s) for m in MODELS for s in ("validation", "test")}
    assert rows[0]["auc_roc"] == ""  # undefined metric
    assert float(rows[-1]["average_precision"]) == pytest.approx(metrics[-1]["average_precision"])
    assert int(rows[-1]["positives"]) == metrics[-1]["positives"]


def test_json_round_trips_metrics_and_meta(report: tuple[dict[str, Path], list[dict]]) -> None:
    paths, metrics = report
    loaded = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert loaded["metrics"] == metrics
    assert loaded["meta"] == META
    assert loaded["generated_at"].endswith("Z")


def test_pdf_names_models_metrics_and_registrations(report: tuple[dict[str, Path], list[dict]]) -> None:
    paths, metrics = report
    pages = page_texts(paths["pdf"])
    text = "\n".join(pages)
    assert "Page 1 of" in pages[0] and "Model training report" in pages[0] and "2026-03-02" in pages[0]
    for model in MODELS:
        assert model in text
    test_ensemble = next(m for m in metrics if m["model"] == "ensemble" and m["split"] == "test")
    for key in ("auc_roc", "average_precision", "precision"):
        assert f"{test_ensemble[key]:.3f}" in text
    assert "n/a" in text  # the undefined AUC
    assert "Validation split" in text and "Test split" in text
    assert "validation split" in text.lower() and "ensemble" in pages[0]
    for name in META["registered"]:
        assert name in text
    assert "beats champion v2" in text
    assert "run-0f3a9c" in text and "account_features_v2" in text  # other scalars under "Run details"
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]


def test_charts_are_pngs_of_a_readable_size(report: tuple[dict[str, Path], list[dict]]) -> None:
    paths, _ = report
    for name in ("roc", "pr"):
        width, height = png_size(paths[name])
        assert 700 <= width <= 1400 and 500 <= height <= 1100
        assert width / height == pytest.approx(6 / 4.5, rel=0.05)


def test_single_class_model_is_skipped_not_fatal(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y_true = (rng.random(200) < 0.1).astype(int)
    curves = {"random_forest": (y_true, rng.random(200)), "empty_day": (np.zeros(50, dtype=int), rng.random(50))}
    usable, skipped = _usable(curves)
    assert list(usable) == ["random_forest"] and skipped == ["empty_day"]
    assert png_size(roc_curves(curves, tmp_path / "roc.png"))[0] > 0
    assert png_size(pr_curves(curves, tmp_path / "pr.png"))[0] > 0
    only_one_class = {"empty_day": curves["empty_day"]}
    metrics = [{"model": "empty_day", "split": "test", "precision": None, "recall": None, "f1": None,
                "auc_roc": None, "average_precision": None, "threshold": 0.5, "rows": 50, "positives": 0}]
    paths = write_training_report(tmp_path / "report", metrics, only_one_class, {})
    assert png_size(paths["roc"])[0] > 0
    text = "\n".join(page_texts(paths["pdf"]))
    assert "No model was selected" in text and "No model was registered" in text


def test_mismatched_curve_and_missing_split_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'rf': 3 labels but 2 scores"):
        roc_curves({"rf": (np.array([0, 1, 0]), np.array([0.1, 0.2]))}, tmp_path / "roc.png")
    with pytest.raises(ValueError, match="metrics row 0: missing split"):
        write_training_report(tmp_path, [{"model": "rf"}], {}, {})
    assert not (tmp_path / "roc.png").exists()
