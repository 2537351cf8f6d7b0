"""Fusion strategies for the video head: one small torch module per strategy, one shared training loop.

- `weighted` (decision level): one linear branch per modality, mixed by learned softmax weights.
- `pooled`: each modality projected to one width, pooled over modalities (mean and max), one classifier.
- `concat` (feature level): the modalities' time-pooled features concatenated into one small MLP.
- `attention` (hybrid): per-step frame and sound tokens joined by a small cross-attention block.
- `ensemble`: a weighted average of the other heads' probabilities.

Every strategy takes the same batch (`batch.Batch`: per-modality step sequences with masks), so a clip
without sound is a masked modality everywhere (and a learned "no sound" token where the net needs an input).
"""

from __future__ import annotations

WEIGHTED, POOLED, CONCAT, ATTENTION, ENSEMBLE = "weighted", "pooled", "concat", "attention", "ensemble"
NETS = (WEIGHTED, POOLED, CONCAT, ATTENTION)  # trained directly
STRATEGIES = (*NETS, ENSEMBLE)
ALL = "all"
CHOICES = (*STRATEGIES, ALL)


def net_class(strategy: str) -> type:
    """The torch module of a trained strategy (imported lazily: serving needs only the one it loads)."""
    from mmdemo.finetune.fusion import attention, concat, pooled, weighted

    classes = {
        WEIGHTED: weighted.WeightedNet,
        POOLED: pooled.PooledNet,
        CONCAT: concat.ConcatNet,
        ATTENTION: attention.AttentionNet,
    }
    if strategy not in classes:
        raise ValueError(f"unknown fusion strategy {strategy!r}; choose one of {', '.join(CHOICES)}")
    return classes[strategy]
