"""A trained video fusion head (`mmdemo finetune video`): one linear branch per modality over frozen
features, mixed with learned fusion weights. Inference is plain numpy; the files are `head.npz` (arrays,
read without pickle) and `head.json` (labels, which feature models it reads, its fusion weights).

A branch's logits are affine in its input, so scoring each time step and averaging over time gives the
same overall ranking as scoring the time-pooled features the head was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mmdemo.serving.models.base import LoadContext, ModelInfo

ARRAYS, META = "head.npz", "head.json"


@dataclass
class Branch:
    """One modality's linear map: logits = ((x - mean) / scale) @ weight.T + bias."""

    weight: np.ndarray  # labels × feature dim
    bias: np.ndarray  # labels
    mean: np.ndarray  # feature dim: standardisation learned on the training clips
    scale: np.ndarray

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return ((np.asarray(rows, np.float64) - self.mean) / self.scale) @ self.weight.T + self.bias


@dataclass
class FusionHead:
    info: ModelInfo
    labels: list[str]
    branches: dict[str, Branch]  # modality -> branch
    fusion_weights: dict[str, float]  # modality -> learned weight (they sum to 1)
    feature_models: dict[str, str]  # modality -> name of the model whose features the branch reads

    @property
    def num_parameters(self) -> int:
        return sum(b.weight.size + b.bias.size for b in self.branches.values()) + len(self.fusion_weights)

    def logits(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """Per-step logits (steps × labels) of one modality's feature rows."""
        return self.branches[modality].logits(rows)


def save(folder: Path, head: FusionHead) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{modality}.{part}": getattr(branch, part)
        for modality, branch in head.branches.items()
        for part in ("weight", "bias", "mean", "scale")
    }
    np.savez(folder / ARRAYS, **arrays)
    meta = {
        "labels": head.labels,
        "modalities": list(head.branches),
        "fusion_weights": head.fusion_weights,
        "feature_models": head.feature_models,
    }
    (folder / META).write_text(json.dumps(meta, indent=2))


def read(folder: Path, info: ModelInfo) -> FusionHead:
    meta = json.loads((folder / META).read_text())
    with np.load(folder / ARRAYS, allow_pickle=False) as arrays:
        branches = {
            modality: Branch(
                *(
                    np.asarray(arrays[f"{modality}.{part}"], np.float64)
                    for part in Branch.__dataclass_fields__
                )
            )
            for modality in meta["modalities"]
        }
    return FusionHead(info, meta["labels"], branches, meta["fusion_weights"], meta["feature_models"])


def load(ctx: LoadContext) -> FusionHead:
    """The registry's loader for a `video` version (ctx.path is the version's model folder)."""
    assert ctx.path is not None
    return read(Path(ctx.path), replace(ctx.info, name=f"video fusion head on {ctx.spec.name}"))
