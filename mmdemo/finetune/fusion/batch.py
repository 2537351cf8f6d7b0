"""The batch every strategy reads: per-modality step sequences (clips × steps × dim), standardised with
the training clips' statistics, and masks of the steps a clip has (all 0: the clip lacks the modality)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Rows = Mapping[str, np.ndarray | None]  # modality -> one clip's feature rows (steps × dim), None if absent
Scaling = dict[str, tuple[np.ndarray, np.ndarray]]  # modality -> (mean, scale)


@dataclass
class Batch:
    seqs: dict[str, torch.Tensor]  # modality -> clips × steps × dim
    steps: dict[str, torch.Tensor]  # modality -> clips × steps (1: a real step)
    targets: torch.Tensor  # clips (label indices; -1 when unknown)

    def __len__(self) -> int:
        return len(self.targets)

    def rows(self, index: torch.Tensor) -> Batch:
        return Batch(
            {m: x[index] for m, x in self.seqs.items()},
            {m: x[index] for m, x in self.steps.items()},
            self.targets[index],
        )

    def present(self, modality: str) -> torch.Tensor:
        return self.steps[modality].amax(1)

    def pooled(self, modality: str) -> torch.Tensor:
        return masked_mean(self.seqs[modality], self.steps[modality])

    def without(self, modality: str, clips: torch.Tensor) -> Batch:
        """The same batch with `modality` masked for the clips where `clips` is true (modality dropout)."""
        steps = dict(self.steps)
        steps[modality] = steps[modality] * (~clips)[:, None]
        return Batch(self.seqs, steps, self.targets)


def masked_mean(seqs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    return (seqs * steps[..., None]).sum(1) / steps.sum(1, keepdim=True).clamp_min(1.0)


def standardisation(clips: Sequence[Rows], dims: Mapping[str, int]) -> Scaling:
    """Mean and spread of each modality's time-pooled features over the clips that have it."""
    scaling: Scaling = {}
    for modality, dim in dims.items():
        present = [np.asarray(c[modality], np.float64).mean(0) for c in clips if _has(c, modality)]
        matrix = np.stack(present) if present else np.zeros((1, dim))
        scaling[modality] = (matrix.mean(0), np.maximum(matrix.std(0), 1e-4))
    return scaling


def _has(clip: Rows, modality: str) -> bool:
    rows = clip.get(modality)
    return rows is not None and len(rows) > 0


def dims_of(clips: Sequence[Rows], modalities: Sequence[str]) -> dict[str, int]:
    """The width of each modality's features, for the modalities some clip has."""
    dims: dict[str, int] = {}
    for clip in clips:
        for modality in modalities:
            if modality not in dims and _has(clip, modality):
                dims[modality] = int(np.asarray(clip[modality]).shape[1])
    return dims


def make_batch(
    clips: Sequence[Rows], targets: Sequence[int], dims: Mapping[str, int], scaling: Scaling
) -> Batch:
    seqs, steps = {}, {}
    for modality, dim in dims.items():
        length = max([1, *(len(c[modality]) for c in clips if _has(c, modality))])  # type: ignore[arg-type]
        values, mask = np.zeros((len(clips), length, dim)), np.zeros((len(clips), length))
        mean, scale = scaling[modality]
        for row, clip in enumerate(clips):
            if _has(clip, modality):
                rows = np.asarray(clip[modality], np.float64)
                values[row, : len(rows)], mask[row, : len(rows)] = (rows - mean) / scale, 1.0
        seqs[modality] = torch.tensor(values, dtype=torch.float32)
        steps[modality] = torch.tensor(mask, dtype=torch.float32)
    return Batch(seqs, steps, torch.tensor(list(targets), dtype=torch.long))


def class_weights(targets: Sequence[int], n_labels: int) -> torch.Tensor:
    """n / (classes × count): every class weighs the same in the loss, however many clips it has."""
    counts = np.bincount(np.asarray(targets, int), minlength=n_labels)
    return torch.tensor(len(targets) / (n_labels * np.maximum(counts, 1)), dtype=torch.float32)
