"""Train fusion strategies on encoded clips and turn them into the heads the registry serves.

`train_heads` is what `mmdemo finetune video` and `bench/fusion.py` both call: every strategy gets the
same fit/early-stopping clips, the same standardisation, the same class weights and the same seed, and
(with `LoopOptions.refit_on_all`) is then trained afresh on all those clips for the epochs early stopping
chose.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from mmdemo.finetune.fusion import ENSEMBLE, NETS, WEIGHTED, net_class
from mmdemo.finetune.fusion.batch import Rows, Scaling, class_weights, make_batch
from mmdemo.finetune.fusion.loop import Fitted, LoopOptions, Progress, fit, refit
from mmdemo.serving.models import fusion_head
from mmdemo.serving.models.base import ModelInfo

# What new heads are built with (saved in each head, so a head reads back as it was built).
NET_OPTIONS: dict[str, dict[str, Any]] = {
    WEIGHTED: {},
    "pooled": {},
    "concat": {"interaction": 16},
    "attention": {"product": True, "width": 8},
}


@dataclass
class Trained:
    strategy: str
    head: fusion_head.Head
    seconds: float
    parameters: int
    fitted: Fitted | None = None  # None for the ensemble
    stop_macro_f1: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Clips:
    """Encoded clips: each clip's feature rows per modality, and its label index."""

    rows: list[Rows]
    targets: list[int]


def _quiet(total: int, desc: str) -> Any:
    class Bar:
        def update(self, n: int) -> None: ...

    return nullcontext(Bar())


def to_head(
    strategy: str,
    net: torch.nn.Module,
    labels: list[str],
    dims: dict[str, int],
    scaling: Scaling,
    feature_models: dict[str, str],
    info: ModelInfo,
) -> fusion_head.Head:
    if strategy == WEIGHTED:
        branches = {
            m: fusion_head.Branch(
                weight=branch.weight.detach().double().numpy(),
                bias=branch.bias.detach().double().numpy(),
                mean=scaling[m][0],
                scale=scaling[m][1],
            )
            for m, branch in net.branches.items()  # type: ignore[union-attr]
        }
        return fusion_head.FusionHead(info, labels, branches, net.fusion_weights(), feature_models)  # type: ignore[operator]
    return fusion_head.NetHead(
        info, labels, strategy, net, dict(dims), scaling, NET_OPTIONS[strategy], feature_models
    )


def macro_f1(head: fusion_head.Head, clips: Clips, labels: list[str]) -> float:
    predicted = [int(np.argmax(fusion_head.clip_probabilities(head, r, labels))) for r in clips.rows]
    return float(f1_score(clips.targets, predicted, average="macro", zero_division=0))


def ensemble_weights(members: dict[str, Trained], stop: Clips | None, labels: list[str]) -> dict[str, float]:
    """Each member weighs its macro-F1 on the early-stopping clips (equal weights without them); a member
    refitted on all clips was scored before the refit (`stop_macro_f1`), while those clips were unseen."""
    if stop is None or not stop.targets:
        return {s: 1 / len(members) for s in members}
    for trained in members.values():
        if trained.stop_macro_f1 is None:
            trained.stop_macro_f1 = macro_f1(trained.head, stop, labels)
    scores = {s: max(t.stop_macro_f1 or 0.0, 1e-3) for s, t in members.items()}
    total = sum(scores.values())
    return {s: score / total for s, score in scores.items()}


def train_heads(
    strategies: Sequence[str],
    fit_clips: Clips,
    stop_clips: Clips | None,
    labels: list[str],
    dims: dict[str, int],
    scaling: Scaling,
    feature_models: dict[str, str],
    info: ModelInfo,
    options: LoopOptions,
    progress: Progress = _quiet,
) -> dict[str, Trained]:
    """Every asked strategy trained on the same clips; an ensemble averages the nets (all four are trained
    for it when asked for alone)."""
    nets = [s for s in NETS if s in strategies or ENSEMBLE in strategies]
    fit_batch = make_batch(fit_clips.rows, fit_clips.targets, dims, scaling)
    stop_batch = make_batch(stop_clips.rows, stop_clips.targets, dims, scaling) if stop_clips else None
    weights = class_weights(fit_clips.targets, len(labels))
    refitting = options.refit_on_all and stop_clips is not None and len(stop_clips.targets) > 0
    if refitting:
        all_targets = [*fit_clips.targets, *stop_clips.targets]  # type: ignore[union-attr]
        all_batch = make_batch([*fit_clips.rows, *stop_clips.rows], all_targets, dims, scaling)  # type: ignore[union-attr]
        all_weights = class_weights(all_targets, len(labels))

    def new_net(strategy: str) -> torch.nn.Module:
        torch.manual_seed(options.seed)
        return net_class(strategy)(dims, len(labels), **NET_OPTIONS[strategy])

    trained: dict[str, Trained] = {}
    for strategy in nets:
        started = time.perf_counter()
        net = new_net(strategy)
        fitted = fit(net, fit_batch, stop_batch, weights, options, progress, f"{strategy} head")
        head = to_head(strategy, fitted.net, labels, dims, scaling, feature_models, info)
        stop_f1 = None
        if refitting:  # scored while the early-stopping clips are still unseen, then trained on them too
            stop_f1 = macro_f1(head, stop_clips, labels)  # type: ignore[arg-type]
            net = new_net(strategy)
            fitted.refit_steps = refit(
                net, all_batch, all_weights, fitted.best_epoch, options, progress, f"{strategy} head (all)"
            )
            fitted.net, fitted.refit_epochs = net, fitted.best_epoch
            head = to_head(strategy, net, labels, dims, scaling, feature_models, info)
        trained[strategy] = Trained(
            strategy,
            head,
            time.perf_counter() - started,
            sum(p.numel() for p in net.parameters()),
            fitted,
            stop_macro_f1=stop_f1,
        )
    if ENSEMBLE in strategies:
        started = time.perf_counter()
        members = {s: trained[s] for s in NETS}
        member_weights = ensemble_weights(members, stop_clips, labels)
        head = fusion_head.EnsembleHead(
            info, labels, {s: t.head for s, t in members.items()}, member_weights, feature_models
        )
        seconds = sum(t.seconds for t in members.values()) + time.perf_counter() - started
        trained[ENSEMBLE] = Trained(ENSEMBLE, head, seconds, head.num_parameters)
    return {s: trained[s] for s in strategies}
