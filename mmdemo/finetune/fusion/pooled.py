"""`pooled`: each modality's time-pooled features projected to one width, then pooled over the modalities a
clip has (mean and max side by side), then one linear classifier. An absent modality is left out of the
pool (masked), so a silent clip is its frames alone."""

from __future__ import annotations

import torch

from mmdemo.finetune.fusion.batch import Batch


class PooledNet(torch.nn.Module):
    def __init__(self, dims: dict[str, int], n_labels: int, width: int = 32) -> None:
        super().__init__()
        self.project = torch.nn.ModuleDict({m: torch.nn.Linear(d, width) for m, d in dims.items()})
        self.classifier = torch.nn.Linear(2 * width, n_labels)

    def forward(self, batch: Batch) -> torch.Tensor:
        names = list(self.project)
        z = torch.stack([self.project[m](batch.pooled(m)) for m in names])  # modalities × clips × width
        present = torch.stack([batch.present(m) for m in names])[..., None]
        mean = (z * present).sum(0) / present.sum(0).clamp_min(1.0)
        peak = z.masked_fill(present == 0, float("-inf")).amax(0)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        return self.classifier(torch.cat([mean, peak], -1))
