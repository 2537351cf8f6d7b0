"""`concat` (feature level): the modalities' time-pooled features concatenated into one small MLP. A clip
that lacks a modality gets that modality's learned "missing" vector (the "no sound" token) in its place;
the shared loop's modality dropout is what teaches it."""

from __future__ import annotations

import torch

from mmdemo.finetune.fusion.batch import Batch


class ConcatNet(torch.nn.Module):
    def __init__(self, dims: dict[str, int], n_labels: int, hidden: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.missing = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.zeros(d)) for m, d in dims.items()}
        )
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(sum(dims.values()), hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, n_labels),
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = []
        for modality, missing in self.missing.items():
            present = batch.present(modality)[:, None] > 0
            parts.append(torch.where(present, batch.pooled(modality), missing.expand(len(batch), -1)))
        return self.mlp(torch.cat(parts, -1))
