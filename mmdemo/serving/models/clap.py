"""CLAP (transformers) as an audio–text embedder: laion/clap-htsat-unfused (full) or a small random one."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizerFast

from mmdemo.serving.models.base import LoadContext, ModelInfo, batched, count_parameters

SAMPLE_RATE = 48_000
TINY_CORPUS = [
    "the sound of a dog barking",
    "a cat meowing",
    "people talking",
    "speech",
    "music playing",
    "a bell ringing",
    "rain falling",
    "a car engine",
    "birds singing",
    "a door knock",
    "applause",
    "a phone ringing",
    "silence",
    "an alarm",
    "water running",
    "footsteps",
    "a tone",
    "wind",
]


def _pooled(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected embedding.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClapAudioEmbedder:
    zero_shot = True
    sample_rate = SAMPLE_RATE

    def __init__(
        self, model: ClapModel, processor: ClapProcessor, info: ModelInfo, batch_size: int = 8
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.info = info
        self.batch_size = batch_size
        self.dim = int(model.config.projection_dim)
        self.num_parameters = count_parameters(model)

    @torch.inference_mode()
    def encode_audio(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        parameter = next(self.model.parameters())
        chunks = [np.zeros((0, self.dim), np.float32)]
        for batch in batched([np.asarray(w, np.float32) for w in waveforms], self.batch_size):
            features = self.processor.feature_extractor(
                list(batch), sampling_rate=SAMPLE_RATE, return_tensors="pt"
            )
            features = {
                k: v.to(parameter.device, parameter.dtype)
                if v.is_floating_point()
                else v.to(parameter.device)
                for k, v in features.items()
            }
            embedding = _pooled(self.model.get_audio_features(**features))
            chunks.append(torch.nn.functional.normalize(embedding.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        device = next(self.model.parameters()).device
        chunks = [np.zeros((0, self.dim), np.float32)]
        for batch in batched(list(texts), 64):
            tokens = self.processor.tokenizer(list(batch), padding=True, truncation=True, return_tensors="pt")
            embedding = _pooled(self.model.get_text_features(**tokens.to(device)))
            chunks.append(torch.nn.functional.normalize(embedding.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)


def load_pretrained(ctx: LoadContext) -> ClapAudioEmbedder:
    model = ClapModel.from_pretrained(ctx.path, dtype=ctx.dtype).to(ctx.device)
    return ClapAudioEmbedder(model, ClapProcessor.from_pretrained(ctx.path), ctx.info)


def tiny_tokenizer() -> RobertaTokenizerFast:
    """A byte-level BPE tokenizer of CLAP's class (RoBERTa's), trained in code on a few phrases."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        TINY_CORPUS,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        bpe.save(str(path))
        return RobertaTokenizerFast(tokenizer_file=str(path))


def load_tiny(ctx: LoadContext) -> ClapAudioEmbedder:
    tokenizer = tiny_tokenizer()
    # Same feature settings as clap-htsat-unfused: 48 kHz, 64 mel bins, 10 s windows, no fusion.
    features = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    config = ClapConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 80,
            "projection_dim": 32,
        },
        audio_config={
            "spec_size": 256,
            "patch_size": 16,
            "patch_stride": 16,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "patch_embeds_hidden_size": 16,
            "hidden_size": 32,
            "window_size": 8,
            "num_mel_bins": 64,
            "projection_dim": 32,
            "enable_fusion": False,
        },
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = ClapModel(config).to(ctx.device, ctx.dtype)
    return ClapAudioEmbedder(model, ClapProcessor(feature_extractor=features, tokenizer=tokenizer), ctx.info)
