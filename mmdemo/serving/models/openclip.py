"""open_clip CLIP as an image–text embedder: pretrained ViT-B-32 (full) or a small random one (tiny)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from mmdemo.serving.models.base import LoadContext, ModelInfo, batched, count_parameters, parallel_map

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"layers": 2, "width": 64, "patch_size": 16, "image_size": 64, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEmbedder:
    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Any,
        tokenizer: Any,
        info: ModelInfo,
        dtype: torch.dtype,
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.info = info
        self.dtype = dtype
        self.batch_size = batch_size
        self.dim = int(model.text_projection.shape[1])
        self.num_parameters = count_parameters(model)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        chunks = [np.zeros((0, self.dim), np.float32)]
        for batch in batched(list(images), self.batch_size):
            pixels = torch.stack(parallel_map(self.preprocess, batch))
            features = self.model.encode_image(pixels.to(self.info.device, self.dtype))
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = [np.zeros((0, self.dim), np.float32)]
        for batch in batched(list(texts), self.batch_size):
            tokens = self.tokenizer(list(batch)).to(self.info.device)
            features = self.model.encode_text(tokens)
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)


def _weights_file(directory: Path) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"no open_clip weights ({' or '.join(WEIGHT_FILES)}) in {directory}")


def load_pretrained(ctx: LoadContext) -> OpenClipEmbedder:
    assert ctx.path is not None
    arch = ctx.spec.options["arch"]
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=str(_weights_file(ctx.path)), device=ctx.device, precision=_precision(ctx.dtype)
    )
    return OpenClipEmbedder(model, preprocess, open_clip.get_tokenizer(arch), ctx.info, ctx.dtype)


def load_tiny(ctx: LoadContext) -> OpenClipEmbedder:
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CONFIG).to(ctx.device, ctx.dtype)
    preprocess = open_clip.image_transform(TINY_CONFIG["vision_cfg"]["image_size"], is_train=False)
    # ViT-B-32's tokenizer ships inside open_clip (no download), so tiny tokenizes exactly like full.
    return OpenClipEmbedder(model, preprocess, open_clip.get_tokenizer("ViT-B-32"), ctx.info, ctx.dtype)


def _precision(dtype: torch.dtype) -> str:
    return "fp16" if dtype == torch.float16 else "fp32"
