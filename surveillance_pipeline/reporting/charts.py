"""ROC and precision-recall charts for model reports, drawn with matplotlib's Agg backend into PNG files.

Each chart takes `curves`: model name -> (y_true, scores) on one split, one line per model. A model whose
labels hold a single class has no curve; it is named in the legend's title instead of failing the report.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on the servers; must precede the pyplot import

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]

FIGURE_SIZE_IN = (6.0, 4.5)
DPI = 150
_CHANCE_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.0}


def roc_curves(curves: Curves, path: str | Path, *, title: str = "ROC curve") -> Path:
    """One ROC line per model with its AUC in the legend, over the chance diagonal; saved as PNG."""
    usable, skipped = _usable(curves)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    try:
        for name, (y_true, scores) in usable.items():
            false_positive_rate, true_positive_rate, _ = roc_curve(y_true, scores)
            auc = roc_auc_score(y_true, scores)
            axes.plot(false_positive_rate, true_positive_rate, linewidth=1.8, label=f"{name} (AUC {auc:.3f})")
        axes.plot([0, 1], [0, 1], label="Chance (AUC 0.500)", zorder=1, **_CHANCE_STYLE)
        axes.set_xlabel("False positive rate")
        axes.set_ylabel("True positive rate (recall)")
        _finish(axes, title, skipped, legend_location="lower right")
        return _save(figure, Path(path))
    finally:
        plt.close(figure)


def pr_curves(curves: Curves, path: str | Path, *, title: str = "Precision-recall curve") -> Path:
    """One precision-recall line per model with its average precision in the legend, over the positive share."""
    usable, skipped = _usable(curves)
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    try:
        for name, (y_true, scores) in usable.items():
            precision, recall, _ = precision_recall_curve(y_true, scores)
            average_precision = average_precision_score(y_true, scores)
            # step drawing matches how average precision sums the curve
            axes.step(recall, precision, where="post", linewidth=1.8, label=f"{name} (AP {average_precision:.3f})")
        if usable:
            positive_share = float(np.mean(np.concatenate([y for y, _ in usable.values()])))
            axes.axhline(positive_share, label=f"Chance (positive share {positive_share:.3f})", zorder=1,
                         **_CHANCE_STYLE)
        axes.set_xlabel("Recall")
        axes.set_ylabel("Precision")
        # below the axes: PR curves run along the top and the chance line along the bottom
        _finish(axes, title, skipped, legend_location="upper center", legend_below=True)
        return _save(figure, Path(path))
    finally:
        plt.close(figure)


def _usable(curves: Curves) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Models that can have a curve, and the names of those that cannot (one class, or no rows)."""
    usable, skipped = {}, []
    for name, (y_true, scores) in curves.items():
        labels = np.asarray(y_true).astype(int).ravel()
        values = np.asarray(scores, dtype=float).ravel()
        if labels.shape != values.shape:
            raise ValueError(f"curve {name!r}: {labels.size} labels but {values.size} scores; expected one score per label")
        if not np.isfinite(values).all():
            raise ValueError(f"curve {name!r}: scores hold NaN or infinite values; expected finite scores")
        if np.unique(labels).size < 2:
            skipped.append(name)
        else:
            usable[name] = (labels, values)
    return usable, skipped


def _finish(axes: plt.Axes, title: str, skipped: list[str], *, legend_location: str,
            legend_below: bool = False) -> None:
    axes.set_title(title)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.02)
    axes.grid(True, linewidth=0.5, alpha=0.5)
    note = f"Not drawn (one class only): {', '.join(skipped)}" if skipped else None
    handles, _ = axes.get_legend_handles_labels()
    if not handles:  # nothing to draw: say why in the plot area
        axes.text(0.5, 0.5, note or "No scores to draw", ha="center", va="center", fontsize=9,
                  transform=axes.transAxes, wrap=True)
        return
    options = {"fontsize": 8, "title": note, "title_fontsize": 8, "framealpha": 0.9}
    if legend_below:
        options |= {"bbox_to_anchor": (0.5, -0.16), "ncol": 2 if len(handles) > 3 else 1}
    axes.legend(loc=legend_location, **options)


def _save(figure: Figure, path: Path) -> Path:
    """Write the PNG to a temporary file beside `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        figure.savefig(temporary, format="png", dpi=DPI)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
