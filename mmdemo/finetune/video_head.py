"""`mmdemo finetune video`: a fusion head on frozen clip features, trained on the stored video labels.

Each clip gives frame embeddings from the active image embedder and sound embeddings from the active
audio model (CLAP in full and tiny, librosa features in lite), each averaged over the sampled times. The
head is one of the fusion strategies of `mmdemo.finetune.fusion` (`--fusion`; default `weighted`: one
linear branch per modality mixed by learned fusion weights), or all of them side by side (`all`: the best
by validation macro-F1 is kept). All share one training loop: class-weighted cross-entropy (labels are
imbalanced in real sessions), AdamW, early stopping on a split of the training clips, so the validation
clips the report scores are never used to stop training. "Before" is the zero-shot classify
path with its default weights, on the same validation clips.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.data import Store
from mmdemo.finetune import fusion as strategies
from mmdemo.finetune.data import ClipTarget, LabelSelection, clip_targets
from mmdemo.finetune.fusion.batch import Rows, dims_of, standardisation
from mmdemo.finetune.fusion.loop import LoopOptions
from mmdemo.finetune.fusion.train import Clips, Trained, train_heads
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
    fusion: str = strategies.WEIGHTED  # a strategy of `mmdemo.finetune.fusion`, or "all"

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> HeadOptions:
        return cls(**{key: options[key] for key in cls.__dataclass_fields__ if key in options})

    def strategies(self) -> tuple[str, ...]:
        if self.fusion == strategies.ALL:
            return strategies.STRATEGIES
        if self.fusion not in strategies.STRATEGIES:
            raise ValueError(
                f"unknown fusion strategy {self.fusion!r}; choose one of {', '.join(strategies.CHOICES)}"
            )
        return (self.fusion,)


@dataclass
class EncodedClip:
    target: ClipTarget
    features: ClipFeatures

    def rows(self) -> Rows:
        return {m: self.features.rows(m)[0] for m in MODALITIES}


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


def as_clips(encoded: Sequence[EncodedClip], labels: list[str]) -> Clips:
    return Clips([c.rows() for c in encoded], [labels.index(c.target.label) for c in encoded])


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


def predict_head(clips: Sequence[EncodedClip], labels: list[str], head: fusion_head.Head) -> list[int]:
    """What the classify path would answer with this head (the weighted head through its per-step scores)."""
    if isinstance(head, fusion_head.FusionHead):
        weights = head_weights(head, fusion.DEFAULT_WEIGHTS)
        return [
            int(np.argmax(_fused(head_scores(head, c.features, labels), weights, len(labels)))) for c in clips
        ]
    return [int(np.argmax(fusion_head.clip_probabilities(head, c.rows(), labels))) for c in clips]


def _summary(trained: Trained, result: dict[str, Any]) -> dict[str, Any]:
    """One strategy's line in the side-by-side report."""
    fitted = trained.fitted
    summary = {
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "parameters": trained.parameters,
        "train_seconds": round(trained.seconds, 3),
        "fusion_weights": trained.head.fusion_weights,
    }
    if fitted is not None:
        summary |= {"steps": fitted.steps, "epochs": fitted.epochs, "best_epoch": fitted.best_epoch}
        summary |= {"stopped_early": fitted.stopped_early, "refit_epochs": fitted.refit_epochs}
    if isinstance(trained.head, fusion_head.EnsembleHead):
        summary["member_weights"] = trained.head.member_weights
    return summary


# -- the run ----------------------------------------------------------------------------------------
def train(context: RunContext[ClipTarget]) -> TrainResult:
    config, registry = context.config, context.registry
    options = HeadOptions.from_options(config.options)
    asked = options.strategies()
    labels = sorted({t.label for t in [*context.train, *context.validation]})
    train_clips, skipped = encode_clips(context.train, registry, options.frames, context)
    validation_clips, skipped_validation = encode_clips(context.validation, registry, options.frames, context)
    if not train_clips or not validation_clips:
        raise ValueError(
            "no readable clips left to train or validate on: " + "; ".join(skipped + skipped_validation)
        )
    dims = dims_of([c.rows() for c in train_clips], MODALITIES)
    scaling = standardisation([c.rows() for c in train_clips], dims)
    fit_clips, stop_clips = train_clips, []
    if len(train_clips) >= 4:
        fit_clips, stop_clips = split(
            train_clips, options.early_stop_fraction, config.seed, lambda c: c.target.media_id
        )
    feature_models = {m: registry.serving_spec(FEATURE_TASKS[m]).name for m in dims}
    info = ModelInfo(
        name="video fusion head", version="new", profile=registry.profile, source=str(context.model_dir)
    )
    loop = LoopOptions(
        steps=config.steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=options.weight_decay,
        seed=config.seed,
        patience=options.patience,
        min_epochs=options.min_epochs,
    )
    trained = train_heads(
        asked,
        as_clips(fit_clips, labels),
        as_clips(stop_clips, labels) if stop_clips else None,
        labels,
        dims,
        scaling,
        feature_models,
        info,
        loop,
        context.progress,
    )
    truth = [labels.index(c.target.label) for c in validation_clips]
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for strategy, candidate in trained.items():  # score what the registry will serve
            fusion_head.save(Path(tmp) / strategy, candidate.head)
            saved = fusion_head.read(Path(tmp) / strategy, info)
            results[strategy] = scores(truth, predict_head(validation_clips, labels, saved), labels)
        # the best by validation macro-F1; on a tie the simpler strategy (the order of STRATEGIES)
        best = max(asked, key=lambda s: (results[s]["macro_f1"], -asked.index(s)))
        shutil.copytree(Path(tmp) / best, context.model_dir, dirs_exist_ok=True)
    head, after = trained[best].head, results[best]
    before = scores(truth, predict_zero_shot(validation_clips, labels, registry), labels)
    draw_confusion(
        {"before (zero-shot)": before["confusion"], f"after ({best} head)": after["confusion"]},
        labels,
        context.model_dir.parent / CONFUSION_PNG,
    )
    headline = ("accuracy", "macro_f1")
    summary = _summary(trained[best], after)
    return TrainResult(
        before={name: before[name] for name in headline},
        after={name: after[name] for name in headline},
        builder=BUILDER,
        primary_metric="macro_f1",
        higher_is_better=True,
        details={
            "labels": labels,
            "class_counts": dict(Counter(t.label for t in context.train)),
            "fusion": best,
            "fusion_weights": head.fusion_weights,
            "member_weights": summary.get("member_weights"),
            "strategies": {s: _summary(trained[s], results[s]) for s in asked},
            "feature_models": feature_models,
            "epochs": summary.get("epochs"),
            "best_epoch": summary.get("best_epoch"),
            "steps": summary.get("steps"),
            "stopped_early": summary.get("stopped_early"),
            "refit_epochs": summary.get("refit_epochs"),
            "early_stop_clips": len(stop_clips),
            "early_stop_loss": None if trained[best].fitted is None else trained[best].fitted.early_stop_loss,
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
