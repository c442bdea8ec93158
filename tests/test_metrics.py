"""Metrics against hand-computed cases and against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss, precision_score, recall_score

from carat.metrics import (
    binarize,
    jaccard_accuracy,
    multilabel_metrics,
    score_metrics,
    tune_threshold,
)

TRUTH = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]])
PRED = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]])


def test_hand_computed_case():
    m = multilabel_metrics(TRUTH, PRED, ["a", "b", "c"])
    # TP = 3 (a0, a1, c3), FP = 3 (b0, a3, b3), FN = 1 (b1)
    assert m["micro_precision"] == pytest.approx(3 / 6)
    assert m["micro_recall"] == pytest.approx(3 / 4)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (6 + 4))
    # Jaccard per sample: 1/2, 1/2, empty-empty, 1/3
    assert m["acc"] == pytest.approx((0.5 + 0.5 + 0.0 + 1 / 3) / 4)
    assert m["acc_empty_ok"] == pytest.approx((0.5 + 0.5 + 1.0 + 1 / 3) / 4)
    assert m["hamming_loss"] == pytest.approx(4 / 12)
    # per label: a: P 2/3 R 1; b: P 0 R 0; c: P 1 R 1
    assert m["per_label"]["a"]["precision"] == pytest.approx(2 / 3)
    assert m["per_label"]["a"]["recall"] == pytest.approx(1.0)
    assert m["per_label"]["b"]["f1"] == 0.0
    assert m["per_label"]["c"]["f1"] == pytest.approx(1.0)
    assert m["per_label"]["b"]["support"] == 1
    assert m["macro_f1"] == pytest.approx((0.8 + 0.0 + 1.0) / 3)


def test_precision_and_recall_are_not_swapped():
    truth = np.array([[1, 0, 0, 0], [0, 1, 0, 0]])
    everything = np.ones_like(truth)
    m = multilabel_metrics(truth, everything)
    # predicting every label: recall is perfect, precision is low
    assert m["micro_recall"] == 1.0
    assert m["micro_precision"] == pytest.approx(2 / 8)


def test_against_sklearn_on_random_matrices():
    rng = np.random.default_rng(0)
    truth = (rng.random((200, 6)) < 0.3).astype(int)
    pred = (rng.random((200, 6)) < 0.4).astype(int)
    m = multilabel_metrics(truth, pred)
    kw = {"zero_division": 0}
    assert m["micro_precision"] == pytest.approx(
        precision_score(truth, pred, average="micro", **kw)
    )
    assert m["micro_recall"] == pytest.approx(recall_score(truth, pred, average="micro", **kw))
    assert m["micro_f1"] == pytest.approx(f1_score(truth, pred, average="micro", **kw))
    assert m["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro", **kw))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(truth, pred))
    per_label_f1 = f1_score(truth, pred, average=None, **kw)
    assert [m["per_label"][str(i)]["f1"] for i in range(6)] == pytest.approx(per_label_f1)


def test_jaccard_empty_rule():
    empty = np.zeros((2, 3))
    assert jaccard_accuracy(empty, empty) == 0.0
    assert jaccard_accuracy(empty, empty, empty_ok=True) == 1.0


def test_threshold_is_strict_and_recorded():
    scores = np.array([[0.25, 0.26, 0.1]])
    assert binarize(scores, 0.25).tolist() == [[0, 1, 0]]
    m = score_metrics(np.array([[0, 1, 0]]), scores, 0.25)
    assert m["micro_f1"] == 1.0 and m["threshold"] == 0.25


def test_tune_threshold_finds_the_separating_value():
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    # positives score 0.6-0.7, negatives 0.3-0.42: thresholds in [0.42, 0.6) separate them
    scores = np.array([[0.7, 0.3], [0.42, 0.6], [0.65, 0.6], [0.35, 0.4]])
    threshold = tune_threshold(truth, scores)
    assert 0.42 <= threshold < 0.6
    assert multilabel_metrics(truth, binarize(scores, threshold))["micro_f1"] == 1.0
