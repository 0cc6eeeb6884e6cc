import math

import numpy as np
import pytest

from surveillance_pipeline.ml.metrics import (
    METRIC_NAMES,
    best_f1_threshold,
    classification_metrics,
    metric_value,
)

# Ranked by score: .9 (P) .7 (N) .6 (P) .55 (N) .3 (P) .2 (N)
Y = np.array([1, 1, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.6, 0.55, 0.2, 0.3, 0.7])


def test_precision_recall_f1_at_the_threshold_by_hand():
    m = classification_metrics(Y, SCORES, 0.5)
    # flagged (>= 0.5): .9 P, .6 P, .55 N, .7 N -> tp 2, fp 2; missed: .3 P -> fn 1
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # 4/7
    assert m["f1"] == pytest.approx(4 / 7)
    assert (m["rows"], m["positives"], m["flagged"], m["threshold"]) == (6, 3, 4, 0.5)
    assert set(METRIC_NAMES) <= set(m)


def test_ranking_metrics_by_hand():
    m = classification_metrics(Y, SCORES)
    # AUC: pairs (positive above negative): .9 beats 3, .6 beats 2, .3 beats 1 -> 6 of 9
    assert m["auc_roc"] == pytest.approx(6 / 9)
    # AP: precision at each positive's rank (1, 3, 5): 1, 2/3, 3/5, averaged
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_the_threshold_is_inclusive_and_moves_the_counts():
    at = classification_metrics(Y, SCORES, 0.6)  # .9, .7, .6 flagged: tp 2, fp 1
    assert at["flagged"] == 3
    assert at["precision"] == pytest.approx(2 / 3)
    assert at["recall"] == pytest.approx(2 / 3)
    high = classification_metrics(Y, SCORES, 0.8)  # only .9: tp 1
    assert (high["precision"], high["recall"]) == (pytest.approx(1.0), pytest.approx(1 / 3))
    assert high["f1"] == pytest.approx(0.5)


def test_ranking_metrics_are_none_with_one_class():
    negatives = classification_metrics(np.zeros(4), [0.1, 0.9, 0.4, 0.6])
    assert negatives["auc_roc"] is None and negatives["average_precision"] is None
    assert negatives["recall"] is None  # no positives to find
    assert negatives["precision"] == pytest.approx(0.0)  # two flagged, both wrong
    positives = classification_metrics(np.ones(3), [0.1, 0.9, 0.4])
    assert positives["auc_roc"] is None and positives["average_precision"] is None
    assert positives["precision"] == pytest.approx(1.0)
    assert positives["recall"] == pytest.approx(1 / 3)


def test_precision_is_none_without_any_flagged_row():
    m = classification_metrics([1, 0, 1], [0.1, 0.2, 0.3])
    assert m["precision"] is None
    assert m["recall"] == pytest.approx(0.0)
    assert m["f1"] == pytest.approx(0.0)
    assert m["flagged"] == 0


def test_metric_value_counts_undefined_as_minus_infinity():
    assert metric_value({"auc_roc": None}, "auc_roc") == -math.inf
    assert metric_value({}, "f1") == -math.inf
    assert metric_value({"f1": 0.25}, "f1") == 0.25


def test_best_f1_threshold_known_answer():
    y = [0, 0, 1, 1, 0, 1]
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    # F1 per cut: .6 -> 1/2, .5 -> 2/5, .4 -> 2/3, .3 -> 6/7 (P 3/4, R 1), .2 -> 3/4, .1 -> 2/3
    assert best_f1_threshold(y, scores) == pytest.approx(0.3)
    # the returned cut really has the best F1 of all cuts
    f1 = [classification_metrics(y, scores, c)["f1"] for c in scores]
    assert classification_metrics(y, scores, 0.3)["f1"] == pytest.approx(max(f1)) == pytest.approx(6 / 7)


def test_best_f1_threshold_takes_the_highest_cut_on_ties():
    y = [1, 0, 0, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    # cut .9: P 1, R 1/2 -> 2/3; cut .6: P 1/2, R 1 -> 2/3; every other cut is lower
    assert best_f1_threshold(y, scores) == pytest.approx(0.9)


def test_best_f1_threshold_is_none_with_one_class():
    assert best_f1_threshold([0, 0, 0], [0.1, 0.5, 0.9]) is None
    assert best_f1_threshold([1, 1], [0.1, 0.5]) is None
