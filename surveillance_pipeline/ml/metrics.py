"""Precision, recall, F1, AUC-ROC and average precision of scores against account-day labels."""
from __future__ import annotations

import numpy as np

from surveillance_pipeline.ml.base import BOUNDARY

METRIC_NAMES = ("precision", "recall", "f1", "auc_roc", "average_precision")


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = BOUNDARY) -> dict:
    """Metrics at `threshold` plus the ranking metrics; a metric undefined on the data (AUC with one class,
    precision with no positive prediction) is None rather than a made-up number."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    flagged = s >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else
          (0.0 if precision is not None or recall is not None else None))
    both = 0 < y.sum() < len(y)
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "auc_roc": float(roc_auc_score(y, s)) if both else None,
        "average_precision": float(average_precision_score(y, s)) if both else None,
        "threshold": float(threshold), "rows": int(len(y)), "positives": int(y.sum()), "flagged": int(flagged.sum()),
    }


def metric_value(metrics: dict, name: str) -> float:
    """A metric for comparisons: undefined counts as -inf, so that anything measurable beats it."""
    value = metrics.get(name)
    return float("-inf") if value is None else float(value)


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """The score cut with the best F1 on labelled data (the highest such cut on ties); None with one class."""
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y_true, dtype=np.int8)
    if not 0 < y.sum() < len(y):
        return None
    precision, recall, cuts = precision_recall_curve(y, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]))
    best = np.flatnonzero(f1 == f1.max())
    return float(cuts[best[-1]])
