"""`mmdemo finetune video`: a fusion head on frozen clip features, trained on the stored video labels.

Each clip gives frame embeddings from the active image embedder and sound embeddings from the active
audio model (CLAP in full and tiny, librosa features in lite), each averaged over the sampled times. The
head has one linear branch per modality, mixed by learned fusion weights (a softmax over one weight per
modality, renormalised over the modalities a clip has). Training uses class-weighted cross-entropy (labels
are imbalanced in real sessions) and AdamW, and stops early on a split of the training clips, so the
validation clips the report scores are never used to pick the model. "Before" is the zero-shot classify
path with its default weights, on the same validation clips.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmdemo.data import Store
from mmdemo.finetune.data import ClipTarget, LabelSelection, clip_targets
from mmdemo.finetune.runs import RunConfig, RunContext, RunOutcome, TrainResult, run, split
from mmdemo.finetune.video_report import draw_confusion, per_class_markdown, scores
from mmdemo.media.files import MediaError
from mmdemo.media.video import sample_clip
from mmdemo.serving.models import fusion_head
from mmdemo.serving.models.base import ModelInfo
from mmdemo.serving.registry import Registry
from mmdemo.tasks import fusion
from mmdemo.tasks.fusion import MODALITIES
from mmdemo.tasks.video_classify import (
    DEFAULT_FRAMES,
    TASK,
    ClipFeatures,
    ModalityScores,
    clip_features,
    head_scores,
    head_weights,
    zero_shot_scores,
)

BUILDER = "mmdemo.serving.models.fusion_head:load"
CONFUSION_PNG = "confusion.png"
FEATURE_TASKS = {fusion.VISUAL: "embed", fusion.AUDIO: "audio"}


@dataclass
class HeadOptions:
    frames: int = DEFAULT_FRAMES
    patience: int = 10  # epochs without a lower early-stopping loss before training stops
    # On a handful of early-stopping clips the loss is noisy at first; it is watched from this epoch on.
    min_epochs: int = 20
    weight_decay: float = 1e-2
    early_stop_fraction: float = 0.25  # of the training clips, held back to decide when to stop

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> HeadOptions:
        return cls(**{key: options[key] for key in cls.__dataclass_fields__ if key in options})


@dataclass
class EncodedClip:
    target: ClipTarget
    features: ClipFeatures


# -- features ---------------------------------------------------------------------------------------
def encode_clips(
    targets: Sequence[ClipTarget], registry: Registry, frames: int, context: RunContext
) -> tuple[list[EncodedClip], list[str]]:
    """Frozen features of every clip; clips that cannot be read are left out and named."""
    rate = int(registry.get("audio").sample_rate)
    encoded, skipped = [], []
    with context.progress(len(targets), "video features") as bar:
        for target in targets:
            try:
                clip = sample_clip(target.clip_path, frames, rate)
                encoded.append(EncodedClip(target, clip_features(clip, registry)))
            except MediaError as error:
                skipped.append(f"{Path(target.clip_path).name}: {error}")
            bar.update(1)
    return encoded, skipped


def feature_dims(clips: Sequence[EncodedClip]) -> dict[str, int]:
    """The width of each modality's features, for the modalities the clips have."""
    dims: dict[str, int] = {}
    for clip in clips:
        for modality in MODALITIES:
            rows, _ = clip.features.rows(modality)
            if rows is not None and modality not in dims:
                dims[modality] = int(np.asarray(rows).shape[1])
    return dims


def pooled(clips: Sequence[EncodedClip], modality: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's features averaged over time (zeros where the clip lacks the modality), and a mask."""
    matrix, mask = np.zeros((len(clips), dim)), np.zeros(len(clips), bool)
    for row, clip in enumerate(clips):
        features, _ = clip.features.rows(modality)
        if features is not None and len(features):
            matrix[row], mask[row] = np.asarray(features, np.float64).mean(axis=0), True
    return matrix, mask


# -- the head in torch --------------------------------------------------------------------------------
class HeadModule(torch.nn.Module):
    def __init__(self, dims: dict[str, int], n_labels: int) -> None:
        super().__init__()
        self.branches = torch.nn.ModuleDict({m: torch.nn.Linear(d, n_labels) for m, d in dims.items()})
        self.fusion_logits = torch.nn.Parameter(torch.zeros(len(dims)))

    def forward(self, inputs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        names = list(self.branches)
        logits = torch.stack([self.branches[m](inputs[m]) for m in names])  # modalities × clips × labels
        weights = torch.softmax(self.fusion_logits, 0)[:, None] * torch.stack([masks[m] for m in names])
        weights = weights / weights.sum(0, keepdim=True).clamp_min(1e-12)
        return (weights[..., None] * logits).sum(0)


@dataclass
class Tensors:
    inputs: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    targets: torch.Tensor

    def rows(self, index: torch.Tensor | slice) -> Tensors:
        return Tensors(
            {m: x[index] for m, x in self.inputs.items()},
            {m: x[index] for m, x in self.masks.items()},
            self.targets[index],
        )


def _standardisation(matrix: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = matrix[mask] if mask.any() else matrix
    return present.mean(axis=0), np.maximum(present.std(axis=0), 1e-4)


def _tensors(
    clips: Sequence[EncodedClip],
    labels: list[str],
    dims: dict[str, int],
    scaling: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Tensors:
    inputs, masks = {}, {}
    for modality, dim in dims.items():
        matrix, mask = pooled(clips, modality, dim)
        mean, scale = scaling[modality]
        inputs[modality] = torch.tensor(
            np.where(mask[:, None], (matrix - mean) / scale, 0.0), dtype=torch.float32
        )
        masks[modality] = torch.tensor(mask, dtype=torch.float32)
    targets = torch.tensor([labels.index(c.target.label) for c in clips], dtype=torch.long)
    return Tensors(inputs, masks, targets)


def class_weights(clips: Sequence[EncodedClip], labels: list[str]) -> torch.Tensor:
    """n / (classes × count): every class weighs the same in the loss, however many clips it has."""
    counts = Counter(c.target.label for c in clips)
    return torch.tensor(
        [len(clips) / (len(labels) * max(1, counts[label])) for label in labels], dtype=torch.float32
    )


@dataclass
class Fitted:
    module: HeadModule
    epochs: int
    best_epoch: int
    steps: int
    stopped_early: bool
    early_stop_loss: float | None


def fit(
    train_set: Tensors,
    stop_set: Tensors | None,
    weights: torch.Tensor,
    dims: dict[str, int],
    n_labels: int,
    config: RunConfig,
    options: HeadOptions,
    context: RunContext,
) -> Fitted:
    """AdamW on mini-batches for at most `config.steps` steps; after each epoch from `options.min_epochs`
    on, the loss on `stop_set` decides: the best epoch's weights are kept, and `options.patience` epochs
    without a better one stop."""
    module = HeadModule(dims, n_labels)
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=options.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train_set.targets)
    best_loss, best_state, best_epoch, waited, steps, epoch = float("inf"), None, 0, 0, 0, 0
    with context.progress(config.steps, "video head") as bar:
        while steps < config.steps and waited < options.patience:
            epoch += 1
            module.train()
            for batch in torch.randperm(n, generator=generator).split(config.batch_size):
                rows = train_set.rows(batch)
                loss = loss_fn(module(rows.inputs, rows.masks), rows.targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", epoch=epoch)
                if steps >= config.steps:
                    break
            if stop_set is None or epoch < options.min_epochs:
                continue
            module.eval()
            with torch.no_grad():
                stop_loss = float(loss_fn(module(stop_set.inputs, stop_set.masks), stop_set.targets))
            if stop_loss < best_loss - 1e-6:
                best_loss, best_state, best_epoch, waited = (
                    stop_loss,
                    copy.deepcopy(module.state_dict()),
                    epoch,
                    0,
                )
            else:
                waited += 1
    if best_state is not None:
        module.load_state_dict(best_state)
    return Fitted(
        module,
        epochs=epoch,
        best_epoch=best_epoch or epoch,
        steps=steps,
        stopped_early=waited >= options.patience,
        early_stop_loss=None if stop_set is None else best_loss,
    )


def to_head(
    fitted: HeadModule,
    labels: list[str],
    scaling: dict[str, tuple[np.ndarray, np.ndarray]],
    feature_models: dict[str, str],
    info: ModelInfo,
) -> fusion_head.FusionHead:
    weights = torch.softmax(fitted.fusion_logits.detach(), 0).tolist()
    branches = {
        modality: fusion_head.Branch(
            weight=branch.weight.detach().double().numpy(),
            bias=branch.bias.detach().double().numpy(),
            mean=scaling[modality][0],
            scale=scaling[modality][1],
        )
        for modality, branch in fitted.branches.items()
    }
    return fusion_head.FusionHead(
        info, labels, branches, dict(zip(fitted.branches, weights, strict=True)), feature_models
    )


# -- evaluation ---------------------------------------------------------------------------------------
def _fused(scores: dict[str, ModalityScores | None], weights: dict[str, float], n_labels: int) -> np.ndarray:
    """The classify path's fused probabilities; uniform when nothing could be scored."""
    present = {m: s.overall for m, s in scores.items() if s is not None}
    if not present or not any(weights.get(m, 0) > 0 for m in present):
        return np.full(n_labels, 1 / n_labels)
    return fusion.fuse({m: present.get(m) for m in scores}, weights)


def predict_zero_shot(clips: Sequence[EncodedClip], labels: list[str], registry: Registry) -> list[int]:
    notes: list[str] = []
    return [
        int(
            np.argmax(
                _fused(
                    zero_shot_scores(c.features, labels, registry, notes), fusion.DEFAULT_WEIGHTS, len(labels)
                )
            )
        )
        for c in clips
    ]


def predict_head(clips: Sequence[EncodedClip], labels: list[str], head: fusion_head.FusionHead) -> list[int]:
    weights = head_weights(head, fusion.DEFAULT_WEIGHTS)
    return [
        int(np.argmax(_fused(head_scores(head, c.features, labels), weights, len(labels)))) for c in clips
    ]


# -- the run ----------------------------------------------------------------------------------------
def train(context: RunContext[ClipTarget]) -> TrainResult:
    config, registry = context.config, context.registry
    options = HeadOptions.from_options(config.options)
    labels = sorted({t.label for t in [*context.train, *context.validation]})
    train_clips, skipped = encode_clips(context.train, registry, options.frames, context)
    validation_clips, skipped_validation = encode_clips(context.validation, registry, options.frames, context)
    if not train_clips or not validation_clips:
        raise ValueError(
            "no readable clips left to train or validate on: " + "; ".join(skipped + skipped_validation)
        )
    dims = feature_dims(train_clips)
    scaling = {m: _standardisation(*pooled(train_clips, m, d)) for m, d in dims.items()}
    fit_clips, stop_clips = train_clips, []
    if len(train_clips) >= 4:
        fit_clips, stop_clips = split(
            train_clips, options.early_stop_fraction, config.seed, lambda c: c.target.media_id
        )
    weights = class_weights(fit_clips, labels)
    fitted = fit(
        _tensors(fit_clips, labels, dims, scaling),
        _tensors(stop_clips, labels, dims, scaling) if stop_clips else None,
        weights,
        dims,
        len(labels),
        config,
        options,
        context,
    )
    feature_models = {m: registry.serving_spec(FEATURE_TASKS[m]).name for m in dims}
    info = ModelInfo(
        name="video fusion head", version="new", profile=registry.profile, source=str(context.model_dir)
    )
    head = to_head(fitted.module, labels, scaling, feature_models, info)
    fusion_head.save(context.model_dir, head)
    saved = fusion_head.read(context.model_dir, info)  # score what the registry will serve
    truth = [labels.index(c.target.label) for c in validation_clips]
    before = scores(truth, predict_zero_shot(validation_clips, labels, registry), labels)
    after = scores(truth, predict_head(validation_clips, labels, saved), labels)
    draw_confusion(
        {"before (zero-shot)": before["confusion"], "after (fine-tuned head)": after["confusion"]},
        labels,
        context.model_dir.parent / CONFUSION_PNG,
    )
    headline = ("accuracy", "macro_f1")
    return TrainResult(
        before={name: before[name] for name in headline},
        after={name: after[name] for name in headline},
        builder=BUILDER,
        primary_metric="macro_f1",
        higher_is_better=True,
        details={
            "labels": labels,
            "class_counts": dict(Counter(t.label for t in context.train)),
            "fusion_weights": head.fusion_weights,
            "feature_models": feature_models,
            "epochs": fitted.epochs,
            "best_epoch": fitted.best_epoch,
            "steps": fitted.steps,
            "stopped_early": fitted.stopped_early,
            "early_stop_clips": len(stop_clips),
            "early_stop_loss": fitted.early_stop_loss,
            "per_class": {"before": before["per_class"], "after": after["per_class"]},
            "confusion": {"labels": labels, "before": before["confusion"], "after": after["confusion"]},
            "skipped_clips": skipped + skipped_validation,
            "plot": CONFUSION_PNG,
        },
    )


def finetune(
    config: RunConfig, *, registry: Registry, store: Store, job_id: int | None = None, user: str | None = None
) -> RunOutcome:
    """`mmdemo finetune video [--job ID]`: train a fusion head on the stored video labels."""
    selection = LabelSelection.of(config)
    if job_id is not None and selection.job_ids is None:
        selection = replace(selection, job_ids=(job_id,))
    targets = clip_targets(store, selection=selection)
    if not targets:
        raise ValueError(
            "no video labels yet: correct some video predictions (Video tab or `mmdemo classify-video`), "
            "or label clips in a video labeling job (its reviewed or agreed labels count)"
        )
    classes = Counter(t.label for t in targets)
    if len(classes) < 2:
        raise ValueError(
            f"all {len(targets)} labelled clips are {next(iter(classes))!r}: a classifier needs at least "
            "two classes"
        )
    # The first head starts from the embedder it reads; later ones record the head they replace.
    base_task = None if registry.active_version(TASK) is not None else "embed"
    outcome = run(
        config,
        targets,
        train,
        registry=registry,
        store=store,
        base_task=base_task,
        group=lambda t: t.media_id,
        user=user,
    )
    report = outcome.report + "\n" + per_class_markdown(outcome.result.details)
    (Path(outcome.version.path) / "report.md").write_text(report)
    return replace(outcome, report=report)
