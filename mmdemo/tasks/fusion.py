"""Weighted late fusion of per-modality label scores: p = softmax(Σ_m w_m · s_m).

`s_m` is a modality's log-probability over the labels (scores of its frames or sound windows, averaged
over time). Weights are relative: they are normalised over the modalities that are present, so equal
weights average the modalities, a weight of 0 removes one, and a missing modality (a clip without sound)
leaves the others' weights in proportion. A trained fusion head can later replace `fuse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

VISUAL, AUDIO = "visual", "audio"
MODALITIES = (VISUAL, AUDIO)
DEFAULT_WEIGHTS: dict[str, float] = {VISUAL: 0.5, AUDIO: 0.5}
SHOWN_AS = {VISUAL: "frames", AUDIO: "sound"}  # what the UI calls each modality


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def aggregate_over_time(step_scores: np.ndarray) -> np.ndarray:
    """One score per label from a (time steps × labels) matrix of scores: their mean over time."""
    step_scores = np.asarray(step_scores, np.float64)
    if step_scores.ndim != 2 or step_scores.shape[0] == 0:
        raise ValueError(
            f"expected a (time steps × labels) matrix with at least one row, not {step_scores.shape}"
        )
    return step_scores.mean(axis=0)


def effective_weights(weights: Mapping[str, float], present: Sequence[str]) -> dict[str, float]:
    """The weights actually applied: those of the present modalities, normalised to sum to 1."""
    for name, weight in weights.items():
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"the {name} weight must be a number ≥ 0, not {weight}")
    kept = {name: float(weights.get(name, 0.0)) for name in present}
    total = sum(kept.values())
    if total <= 0:
        names = " or ".join(SHOWN_AS.get(name, name) for name in present) or "a modality"
        raise ValueError(f"nothing to go on: the {names} weight is 0 here; raise it above 0")
    return {name: weight / total for name, weight in kept.items()}


def fuse(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]) -> np.ndarray:
    """Label probabilities from each modality's log-probabilities; `None` marks a missing modality."""
    present = [name for name, value in scores.items() if value is not None]
    applied = effective_weights(weights, present)
    combined = sum(applied[name] * np.asarray(scores[name], np.float64) for name in present)
    return softmax(np.asarray(combined))


def fuse_over_time(
    scores: Mapping[str, tuple[Sequence[float], np.ndarray] | None],
    weights: Mapping[str, float],
    times: Sequence[float],
) -> np.ndarray:
    """Fused probabilities at each of `times` (time steps × labels). Each modality gives
    (its own times, its time steps × labels log-probabilities) and contributes its nearest step."""
    aligned = {
        name: None if value is None else nearest_rows(value[0], value[1], times)
        for name, value in scores.items()
    }
    return fuse(aligned, weights)


def nearest_rows(
    source_times: Sequence[float], rows: np.ndarray, target_times: Sequence[float]
) -> np.ndarray:
    """For each target time, the row of `rows` whose source time is nearest."""
    source = np.asarray(source_times, np.float64)
    nearest = np.abs(source[None, :] - np.asarray(target_times, np.float64)[:, None]).argmin(axis=1)
    return np.asarray(rows)[nearest]


def top_k(labels: Sequence[str], probabilities: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
    """The `k` most probable labels, best first, with their probabilities."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:k]
    return [(labels[i], float(probabilities[i])) for i in order]
