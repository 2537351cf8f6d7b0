"""LoRA fine-tuning of BLIP captioning and VQA (peft) on corrected captions and answers.

The run starts from the model the registry serves for the task (a private float32 copy), trains LoRA
adapters on the text side's attention, merges them into the weights, and saves model and processor with
`save_pretrained`, so the registry loads the result with the same loader as the full model.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model
from PIL import Image

from mmdemo.data import Store
from mmdemo.finetune.data import LabelSelection, TextTarget, text_targets
from mmdemo.finetune.runs import RunConfig, RunContext, RunOutcome, TrainResult, run
from mmdemo.media.files import load_image
from mmdemo.serving.models.base import CaptionOptions, batched
from mmdemo.serving.models.blip import BlipCaptioner, BlipVQA, _to
from mmdemo.serving.registry import Registry
from mmdemo.tasks import table

LOADERS = {
    "caption": "mmdemo.serving.models.blip:load_captioner",
    "vqa": "mmdemo.serving.models.blip:load_vqa",
}
MAX_TARGET_TOKENS = 40


@dataclass
class LoraOptions:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("query", "value")  # BLIP text encoder/decoder attention
    max_new_tokens: int = 20

    @classmethod
    def from_options(cls, options: dict[str, object]) -> LoraOptions:
        known = {key: options[key] for key in cls.__dataclass_fields__ if key in options}
        if "target_modules" in known:
            known["target_modules"] = tuple(known["target_modules"])  # type: ignore[arg-type]
        return cls(**known)  # type: ignore[arg-type]


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _images(batch: Sequence[TextTarget]) -> list[Image.Image]:
    return [load_image(example.image_path).image for example in batch]


def _decoder_tensors(ids: torch.Tensor, mask: torch.Tensor, bos_token_id: int) -> tuple[torch.Tensor, ...]:
    """Decoder inputs start with BLIP's [DEC] token, as in generation; padding is not scored."""
    ids = ids.clone()
    ids[:, 0] = bos_token_id
    return ids, mask, ids.masked_fill(mask == 0, -100)


def batch_loss(model: torch.nn.Module, processor, task: str, batch: Sequence[TextTarget]) -> torch.Tensor:
    bos = model.config.text_config.bos_token_id
    images = _images(batch)
    limits = {"padding": True, "truncation": True, "max_length": MAX_TARGET_TOKENS, "return_tensors": "pt"}
    if table.get(task).prompt is None:  # captions: the target is the whole decoded text
        inputs = processor(images=images, text=[e.target for e in batch], **limits)
        ids, mask, labels = _decoder_tensors(inputs["input_ids"], inputs["attention_mask"], bos)
        tensors = _to({**inputs, "input_ids": ids, "attention_mask": mask, "labels": labels}, model)
        return model(**tensors).loss
    inputs = processor(images=images, text=[e.prompt for e in batch], **limits)
    answers = processor.tokenizer([e.target for e in batch], **limits)
    ids, mask, labels = _decoder_tensors(answers["input_ids"], answers["attention_mask"], bos)
    tensors = _to(
        {**inputs, "decoder_input_ids": ids, "decoder_attention_mask": mask, "labels": labels}, model
    )
    return model(**tensors).loss


def evaluate(
    model: torch.nn.Module, processor, task: str, examples: Sequence[TextTarget], options: LoraOptions, info
) -> dict[str, float]:
    """Mean loss and exact match (normalized text) of the model's own output on `examples`."""
    model.eval()
    losses, matches = [], 0
    with torch.no_grad():
        for batch in batched(list(examples), 8):
            losses.append(float(batch_loss(model, processor, task, batch)) * len(batch))
            if table.get(task).prompt is None:
                options_ = CaptionOptions(num_beams=1, max_length=options.max_new_tokens)
                outputs = BlipCaptioner(model, processor, info).caption(_images(batch), options_)
            else:
                answers = BlipVQA(model, processor, info).answer(_images(batch), [e.prompt for e in batch], 1)
                outputs = [answer.answer for answer in answers]
            matches += sum(normalize(o) == normalize(e.target) for o, e in zip(outputs, batch, strict=True))
    return {"loss": sum(losses) / len(examples), "exact_match": matches / len(examples)}


def _batches(examples: list[TextTarget], size: int, seed: int) -> Iterator[list[TextTarget]]:
    """Endless shuffled passes over the training examples."""
    order, rng = list(examples), random.Random(seed)
    while True:
        rng.shuffle(order)
        yield from (list(batch) for batch in batched(order, size))


def train(context: RunContext[TextTarget]) -> TrainResult:
    task, run = context.config.task, context.config
    options = LoraOptions.from_options(run.options)
    adapter = context.registry.build_copy(task)
    model, processor, info = adapter.model, adapter.processor, adapter.info
    before = evaluate(model, processor, task, context.validation, options, info)
    lora = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
    )
    with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5; harmless
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in peft_model.parameters() if p.requires_grad], lr=run.learning_rate
    )
    peft_model.train()
    batches = _batches(context.train, run.batch_size, run.seed)
    losses: list[float] = []
    with context.progress(run.steps, f"LoRA {task}") as bar:
        for _ in range(run.steps):
            loss = batch_loss(peft_model, processor, task, next(batches))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    merged = peft_model.merge_and_unload()
    after = evaluate(merged, processor, task, context.validation, options, info)
    merged.save_pretrained(context.model_dir)
    processor.save_pretrained(context.model_dir)
    return TrainResult(
        before=before,
        after=after,
        builder=LOADERS[task],
        primary_metric="loss",
        higher_is_better=False,
        details={
            "trainable_parameters": trainable,
            "train_loss_first": losses[0],
            "train_loss_last": losses[-1],
            "lora": {"rank": options.rank, "alpha": options.alpha, "targets": list(options.target_modules)},
        },
    )


def finetune(config: RunConfig, *, registry: Registry, store: Store, user: str | None = None) -> RunOutcome:
    """`mmdemo finetune caption|vqa`: train on the corrections and job labels of `config.task`."""
    if config.task not in LOADERS:
        raise ValueError(f"BLIP fine-tuning is for caption or vqa, not {config.task!r}")
    start = registry.serving_spec(config.task)
    if start.family != "blip":
        raise ValueError(
            f"{config.task} fine-tuning needs a BLIP model (profile full, on a GPU, or tiny); "
            f"the {start.profile} profile serves {start.name}"
        )
    examples = list(text_targets(store, config.task, LabelSelection.of(config)))
    if len(examples) < 2:
        raise ValueError(
            f"need at least 2 corrected {config.task} predictions or settled {config.task} job labels (with "
            f"their images) to train and validate; found {len(examples)}"
        )
    # Split by image, so no validation image was seen in training.
    return run(config, examples, train, registry=registry, store=store, group=lambda e: e.media_id, user=user)
