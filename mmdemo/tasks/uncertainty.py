"""How unsure the served model is about a stored prediction, per task: 0 sure … 1 unsure, None unknown.

The task table's `uncertainty` slot points here; a labeling job's `uncertainty` order asks for the items
with the highest value first.
- video / label jobs: 1 − the margin between the two best fused label scores;
- retrieval: how near the similarity lies to the decision threshold that pre-fills "relevant";
- VQA: 1 − the probability of the answer given (BLIP's beams merged, the lite baseline's top class);
- caption: 1 − exp(mean token log-probability of the model's own caption), recorded with the prediction
  as `params["logprob"]` (BLIP: its tokens' log-probabilities, or the beam's length-normalised score; the
  lite baseline: log of its top class's probability); a caption recorded without it stays unscored.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mmdemo.tasks.prefill import RELEVANCE_THRESHOLD

if TYPE_CHECKING:
    from mmdemo.data import Prediction


def _clip(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def margin_uncertainty(scores: list[float]) -> float:
    """1 − (best − second best) of scores that sum to about 1; one score alone is sure."""
    ranked = sorted((float(s) for s in scores), reverse=True)
    if not ranked:
        return 1.0
    second = ranked[1] if len(ranked) > 1 else 0.0
    return _clip(1.0 - (ranked[0] - second))


def video(prediction: Prediction) -> float | None:
    output: Any = prediction.output
    fused = output.get("fused") if isinstance(output, dict) else None
    if not fused:
        return None
    return margin_uncertainty([entry["score"] for entry in fused])


def relevance(prediction: Prediction, threshold: float = RELEVANCE_THRESHOLD) -> float | None:
    output: Any = prediction.output
    score = output.get("score") if isinstance(output, dict) else None
    if not isinstance(score, int | float):
        return None
    # 1 at the threshold, falling linearly to 0 at a cosine one unit away
    return _clip(1.0 - abs(float(score) - threshold))


def answer(prediction: Prediction) -> float | None:
    output: Any = prediction.output
    top = output.get("top") if isinstance(output, dict) else None
    if not top:
        return None
    return _clip(1.0 - float(top[0][1]))


def caption(prediction: Prediction) -> float | None:
    output: Any = prediction.output
    logprob = output.get("logprob") if isinstance(output, dict) else None
    if logprob is None and isinstance(prediction.params, dict):
        logprob = prediction.params.get("logprob")
    if not isinstance(logprob, int | float) or not math.isfinite(logprob):
        return None
    return _clip(1.0 - math.exp(float(logprob)))
