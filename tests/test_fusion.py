from __future__ import annotations

import numpy as np
import pytest

from mmdemo.tasks import fusion

VISUAL = np.log(np.array([0.7, 0.2, 0.1]))
AUDIO = np.log(np.array([0.1, 0.3, 0.6]))


def test_softmax_and_log_softmax_agree_and_normalise():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]])
    probabilities = fusion.softmax(logits)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.allclose(np.exp(fusion.log_softmax(logits)), probabilities)
    assert np.allclose(probabilities[1], [0.5, 0.5, 0.0])  # no overflow on large logits


def test_a_weight_of_zero_removes_a_modality():
    fused = fusion.fuse({"visual": VISUAL, "audio": AUDIO}, {"visual": 1.0, "audio": 0.0})
    assert np.allclose(fused, fusion.softmax(VISUAL))
    fused = fusion.fuse({"visual": VISUAL, "audio": AUDIO}, {"visual": 0.0, "audio": 0.3})
    assert np.allclose(fused, fusion.softmax(AUDIO))


def test_equal_weights_average_the_modalities():
    expected = fusion.softmax((VISUAL + AUDIO) / 2)
    assert np.allclose(fusion.fuse({"visual": VISUAL, "audio": AUDIO}, {"visual": 1, "audio": 1}), expected)
    assert np.allclose(
        fusion.fuse({"visual": VISUAL, "audio": AUDIO}, {"visual": 0.2, "audio": 0.2}), expected
    )


def test_unequal_weights_follow_the_formula():
    fused = fusion.fuse({"visual": VISUAL, "audio": AUDIO}, {"visual": 3.0, "audio": 1.0})
    assert np.allclose(fused, fusion.softmax(0.75 * VISUAL + 0.25 * AUDIO))
    assert fused.argmax() == 0  # the heavier modality's favourite wins
    assert fusion.fuse({"visual": VISUAL, "audio": AUDIO}, {"visual": 1.0, "audio": 3.0}).argmax() == 2


def test_a_missing_modality_leaves_the_other():
    fused = fusion.fuse({"visual": VISUAL, "audio": None}, {"visual": 0.5, "audio": 0.5})
    assert np.allclose(fused, fusion.softmax(VISUAL))
    assert fusion.effective_weights({"visual": 0.2, "audio": 0.6}, ["visual"]) == {"visual": 1.0}


@pytest.mark.parametrize(
    "weights, present",
    [({"visual": 0.0, "audio": 0.0}, ["visual", "audio"]), ({"visual": 0.0, "audio": 1.0}, ["visual"])],
)
def test_no_usable_weight_is_a_clear_error(weights, present):
    with pytest.raises(ValueError, match="raise it above 0"):
        fusion.effective_weights(weights, present)


def test_negative_or_nan_weights_are_refused():
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="must be a number"):
            fusion.effective_weights({"visual": bad}, ["visual"])


def test_scores_are_averaged_over_time():
    steps = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 1.0]])
    assert np.allclose(fusion.aggregate_over_time(steps), [2.0, 1.0])
    with pytest.raises(ValueError):
        fusion.aggregate_over_time(np.zeros((0, 3)))


def test_fusion_over_time_uses_the_nearest_step_of_each_modality():
    visual = np.log(np.array([[0.9, 0.1], [0.2, 0.8]]))
    audio = np.log(np.array([[0.5, 0.5], [0.1, 0.9], [0.6, 0.4]]))
    fused = fusion.fuse_over_time(
        {"visual": ([1.0, 3.0], visual), "audio": ([0.9, 2.0, 3.2], audio)},
        {"visual": 1, "audio": 1},
        [1.0, 3.0],
    )
    assert fused.shape == (2, 2)
    assert np.allclose(fused[0], fusion.softmax((visual[0] + audio[0]) / 2))
    assert np.allclose(fused[1], fusion.softmax((visual[1] + audio[2]) / 2))


def test_top_k_is_sorted_best_first():
    assert fusion.top_k(["a", "b", "c"], np.array([0.2, 0.5, 0.3]), 2) == [("b", 0.5), ("c", 0.3)]
