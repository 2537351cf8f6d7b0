"""`attention` (hybrid fusion): frames and sound windows become two token sequences (projected to a small
width, plus a modality embedding); each modality's tokens attend to the other's (cross-attention), then a
small feed-forward layer; each sequence is averaged and the two are classified together. A clip without
sound has one learned "no sound" token as its sound sequence. With `product`, the element-wise product of
the two averaged sequences goes to the classifier beside them: a multiplicative interaction term for labels
that depend on the combination of picture and sound (off, as in heads saved before it, by default)."""

from __future__ import annotations

import torch

from mmdemo.finetune.fusion.batch import Batch


class AttentionNet(torch.nn.Module):
    def __init__(
        self, dims: dict[str, int], n_labels: int, width: int = 16, heads: int = 2, product: bool = False
    ) -> None:
        super().__init__()
        names = list(dims)
        self.project = torch.nn.ModuleDict({m: torch.nn.Linear(d, width) for m, d in dims.items()})
        self.kind = torch.nn.Parameter(0.02 * torch.randn(len(names), width))
        self.missing = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(0.02 * torch.randn(width)) for m in names}
        )
        self.cross = torch.nn.ModuleDict(
            {m: torch.nn.MultiheadAttention(width, heads, batch_first=True) for m in names}
        )
        self.norm1 = torch.nn.ModuleDict({m: torch.nn.LayerNorm(width) for m in names})
        self.norm2 = torch.nn.ModuleDict({m: torch.nn.LayerNorm(width) for m in names})
        self.feed = torch.nn.Sequential(
            torch.nn.Linear(width, 2 * width), torch.nn.GELU(), torch.nn.Linear(2 * width, width)
        )
        self.product = product and len(names) > 1
        self.classifier = torch.nn.Linear((len(names) + self.product) * width, n_labels)

    def _tokens(self, batch: Batch, index: int, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.project[modality](batch.seqs[modality]) + self.kind[index]
        steps = batch.steps[modality]
        absent = steps.sum(1) == 0
        first = torch.zeros_like(steps)
        first[:, 0] = 1.0
        use_missing = (absent[:, None] & (first > 0))[..., None]
        tokens = torch.where(use_missing, self.missing[modality].expand_as(tokens), tokens)
        return tokens, torch.where(absent[:, None], first, steps)

    def forward(self, batch: Batch) -> torch.Tensor:
        names = list(self.project)
        seqs = {m: self._tokens(batch, i, m) for i, m in enumerate(names)}
        pooled = []
        for modality in names:
            other = next((m for m in names if m != modality), modality)
            query, steps = seqs[modality]
            keys, key_steps = seqs[other]
            attended, _ = self.cross[modality](query, keys, keys, key_padding_mask=key_steps == 0)
            x = self.norm1[modality](query + attended)
            x = self.norm2[modality](x + self.feed(x))
            pooled.append((x * steps[..., None]).sum(1) / steps.sum(1, keepdim=True).clamp_min(1.0))
        if self.product:
            pooled.append(torch.stack(pooled).prod(0))
        return self.classifier(torch.cat(pooled, -1))
