"""The model-training report: metrics per model and split, ROC and PR charts, and what was registered.

`write_training_report` writes metrics.csv, metrics.json, roc.png, pr.png and report.pdf into one folder.
A metric that is undefined (AUC on a single class) is None: empty in the CSV, null in the JSON, "n/a" in the PDF.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from surveillance_pipeline.reporting.charts import pr_curves, roc_curves
from surveillance_pipeline.reporting.analyst_common import write_json, write_text
from surveillance_pipeline.reporting.pdf import (
    ReportDocument,
    format_value,
    utc_timestamp,
)

METRIC_COLUMNS = ("model", "split", "precision", "recall", "f1", "auc_roc", "average_precision", "threshold",
                  "rows", "positives")
METRIC_LABELS = {"model": "Model", "precision": "Precision", "recall": "Recall", "f1": "F1", "auc_roc": "AUC-ROC",
                 "average_precision": "Avg. precision", "threshold": "Threshold", "rows": "Rows",
                 "positives": "Positives"}
SPLIT_ORDER = ("validation", "test")
DEFAULT_TITLE = "Model training report"
# meta keys with a place of their own in the PDF; every other scalar goes to "Run details"
_PLACED_META = {"title", "period", "selected_model", "selection_split", "selection_metric", "ensemble_weights",
                "registered"}
_META_LABELS = {"seed": "Seed", "scenario_days": "Scenario days", "mlflow_run_id": "MLflow run id",
                "mlflow_experiment": "MLflow experiment", "training_rows": "Training rows"}


def write_training_report(out_dir: Path, metrics: list[dict], curves: dict[str, tuple[np.ndarray, np.ndarray]],
                          meta: dict) -> dict[str, Path]:
    """Write the training report's files into `out_dir` and return their paths by name.

    `metrics`: one row per model and split (`model`, `split`, precision, recall, f1, auc_roc, average_precision,
    threshold, rows, positives; None where undefined). `curves`: test-split (y_true, scores) per model.
    `meta`: title, period, seed, scenario_days, selected_model, selection_split (default "validation"),
    ensemble_weights {model: weight}, registered {name: {version, champion, reason}}, other scalars.
    Returns {"csv", "json", "roc", "pr", "pdf"}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [_plain(row) for row in metrics]
    for index, row in enumerate(rows):
        missing = [key for key in ("model", "split") if not row.get(key)]
        if missing:
            raise ValueError(f"metrics row {index}: missing {', '.join(missing)}; every row needs a model and a split")
    meta = _plain(meta)
    generated = datetime.now(UTC)  # one timestamp for the JSON and the PDF
    payload = {"generated_at": utc_timestamp(generated), "meta": meta, "metrics": rows}
    paths = {
        "csv": write_text(out_dir / "metrics.csv", _metrics_csv(rows)),
        "json": write_json(out_dir / "metrics.json", payload),
        "roc": roc_curves(curves, out_dir / "roc.png", title="ROC curve, test split"),
        "pr": pr_curves(curves, out_dir / "pr.png", title="Precision-recall curve, test split"),
    }
    paths["pdf"] = _report_pdf(rows, meta, paths, generated).write(out_dir / "report.pdf")
    return paths


def _report_pdf(rows: list[dict], meta: dict, paths: dict[str, Path], generated: datetime) -> ReportDocument:
    document = ReportDocument(str(meta.get("title") or DEFAULT_TITLE), _text_or_none(meta.get("period")),
                              generated_at=generated)
    selected = _text_or_none(meta.get("selected_model"))
    document.heading("Summary")
    document.paragraph(_summary(rows, meta, selected), markup=True)

    document.heading("Metrics")
    for split in _splits(rows):
        split_rows = [row for row in rows if row["split"] == split]
        document.heading(f"{split.capitalize()} split", level=2)
        document.table(
            [METRIC_LABELS[c] for c in METRIC_COLUMNS if c != "split"],
            [[row.get(c) for c in METRIC_COLUMNS if c != "split"] for row in split_rows],
            align=["left"] + ["right"] * (len(METRIC_COLUMNS) - 2),  # numbers even when a column is all n/a
            highlight_rows=[i for i, row in enumerate(split_rows) if row["model"] == selected],
        )
    if selected:
        document.paragraph(f"The highlighted row is the selected model, {selected}.")

    document.heading("Model registry")
    registered = meta.get("registered") or {}
    if isinstance(registered, Mapping) and registered:
        document.table(
            ["Registered model", "Version", "Champion", "Reason"],
            [[name, (entry or {}).get("version"), (entry or {}).get("champion"), (entry or {}).get("reason")]
             for name, entry in registered.items()],
        )
    else:
        document.paragraph("No model was registered in this run.")

    weights = meta.get("ensemble_weights")
    if isinstance(weights, Mapping) and weights:
        document.heading("Ensemble weights", level=2)
        document.table(["Model", "Weight"], list(weights.items()), width_mm=90)

    details = [(_META_LABELS.get(key, key.replace("_", " ").capitalize()), value) for key, value in meta.items()
               if key not in _PLACED_META and _is_scalar(value)]
    if details:
        document.heading("Run details", level=2)
        document.table(["Setting", "Value"], details, align=["left", "left"], width_mm=120)

    document.heading("Test split curves")
    document.image(paths["roc"], width_mm=140, caption="One line per model; the dashed diagonal is chance.")
    document.image(paths["pr"], width_mm=140,
                   caption="One line per model; the dashed line is the share of positives (chance).")
    return document


def _summary(rows: list[dict], meta: dict, selected: str | None) -> str:
    """The opening paragraph (reportlab markup, data escaped)."""
    split = escape(str(meta.get("selection_split") or "validation"))
    if not selected:
        text = f"No model was selected in this run. Models were compared on the {split} split."
    else:
        metric = meta.get("selection_metric")
        by = f" by {escape(str(metric).replace('_', ' '))}" if metric else ""
        text = f"Selected model: <b>{escape(selected)}</b>, chosen on the <b>{split}</b> split{by}."
        test = next((r for r in rows if r["model"] == selected and r["split"] == "test"), None)
        if test:
            scores = ", ".join(f"{label} {format_value(test.get(key))}" for key, label in (
                ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("auc_roc", "AUC-ROC"),
                ("average_precision", "average precision")))
            text += (f" On the held-out test split it reaches {scores} at threshold "
                     f"{format_value(test.get('threshold'))} ({format_value(test.get('rows'))} rows, "
                     f"{format_value(test.get('positives'))} positives).")
    scenario = [f"{format_value(meta['scenario_days'])} scenario days" if meta.get("scenario_days") is not None
                else None, f"seed {format_value(meta['seed'])}" if meta.get("seed") is not None else None]
    if any(scenario):
        text += f" Data: {escape(', '.join(filter(None, scenario)))}."
    return text


def _splits(rows: list[dict]) -> list[str]:
    present = list(dict.fromkeys(row["split"] for row in rows))
    return [s for s in SPLIT_ORDER if s in present] + [s for s in present if s not in SPLIT_ORDER]


def _metrics_csv(rows: list[dict]) -> str:
    extra = [key for row in rows for key in row if key not in METRIC_COLUMNS]
    columns = list(METRIC_COLUMNS) + list(dict.fromkeys(extra))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN and infinities to None, paths and dates to text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
