"""`weighted` (decision level): one linear branch per modality over its time-pooled features, mixed by
learned softmax weights renormalised over the modalities a clip has (a silent clip uses its frames)."""

from __future__ import annotations

import torch

from mmdemo.finetune.fusion.batch import Batch


class WeightedNet(torch.nn.Module):
    def __init__(self, dims: dict[str, int], n_labels: int) -> None:
        super().__init__()
        self.branches = torch.nn.ModuleDict({m: torch.nn.Linear(d, n_labels) for m, d in dims.items()})
        self.fusion_logits = torch.nn.Parameter(torch.zeros(len(dims)))

    def forward(self, batch: Batch) -> torch.Tensor:
        names = list(self.branches)
        logits = torch.stack(
            [self.branches[m](batch.pooled(m)) for m in names]
        )  # modalities × clips × labels
        weights = torch.softmax(self.fusion_logits, 0)[:, None] * torch.stack(
            [batch.present(m) for m in names]
        )
        weights = weights / weights.sum(0, keepdim=True).clamp_min(1e-12)
        return (weights[..., None] * logits).sum(0)

    def fusion_weights(self) -> dict[str, float]:
        return dict(zip(self.branches, torch.softmax(self.fusion_logits.detach(), 0).tolist(), strict=True))
