"""`concat` (feature level): the modalities' time-pooled features concatenated into one small MLP. A clip
that lacks a modality gets that modality's learned "missing" vector (the "no sound" token) in its place;
the shared loop's modality dropout is what teaches it.

With `interaction` > 0, each modality is also projected to that small width and the element-wise product
of the projections is fed alongside the concatenation: a multiplicative term, so a label that depends on
which *combination* of picture and sound occurs is one product away instead of something the hidden layer
has to carve out of a sum (0, as heads saved before it, leaves it out)."""

from __future__ import annotations

import torch

from mmdemo.finetune.fusion.batch import Batch


class ConcatNet(torch.nn.Module):
    def __init__(
        self,
        dims: dict[str, int],
        n_labels: int,
        hidden: int = 32,
        dropout: float = 0.1,
        interaction: int = 0,
    ) -> None:
        super().__init__()
        self.missing = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.zeros(d)) for m, d in dims.items()}
        )
        self.interaction = torch.nn.ModuleDict(
            {m: torch.nn.Linear(d, interaction) for m, d in dims.items()} if interaction > 0 else {}
        )
        product = interaction if interaction > 0 and len(dims) > 1 else 0
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(sum(dims.values()) + product, hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, n_labels),
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = {}
        for modality, missing in self.missing.items():
            present = batch.present(modality)[:, None] > 0
            parts[modality] = torch.where(present, batch.pooled(modality), missing.expand(len(batch), -1))
        joined = list(parts.values())
        if len(self.interaction) > 1:
            projected = [self.interaction[m](x) for m, x in parts.items()]
            joined.append(torch.stack(projected).prod(0))
        return self.mlp(torch.cat(joined, -1))
