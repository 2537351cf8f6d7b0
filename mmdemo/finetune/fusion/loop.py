"""The one training loop every strategy shares: class-weighted cross-entropy, AdamW on mini-batches,
modality dropout (so "missing" tokens are learned and silent clips work), and early stopping on a part of
the training clips held back (the validation clips the report scores play no part in it)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from mmdemo.finetune.fusion.batch import Batch


@dataclass
class LoopOptions:
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    seed: int = 0
    patience: int = 10  # epochs without a lower early-stopping loss before training stops
    # On a handful of early-stopping clips the loss is noisy at first; it is watched from this epoch on.
    min_epochs: int = 20
    modality_dropout: float = 0.1  # per clip and modality, never both: teaches the "missing" inputs


@dataclass
class Fitted:
    net: torch.nn.Module
    epochs: int
    best_epoch: int
    steps: int
    stopped_early: bool
    early_stop_loss: float | None


Progress = Callable[[int, str], AbstractContextManager[Any]]


def _drop_modalities(batch: Batch, p: float, generator: torch.Generator) -> Batch:
    names = list(batch.steps)
    if len(names) < 2 or p <= 0:
        return batch
    for index, modality in enumerate(names):
        others = torch.stack([batch.present(m) for m in names if m != modality]).amax(0) > 0
        drop = (torch.rand(len(batch), generator=generator) < p) & others
        if index > 0:  # never both: a clip keeps the first modality when the first one was dropped
            drop &= batch.present(names[0]) > 0
        batch = batch.without(modality, drop)
    return batch


def fit(
    net: torch.nn.Module,
    train_set: Batch,
    stop_set: Batch | None,
    weights: torch.Tensor,
    options: LoopOptions,
    progress: Progress,
    desc: str,
) -> Fitted:
    """At most `options.steps` steps; after each epoch from `options.min_epochs` on, the loss on `stop_set`
    decides: the best epoch's weights are kept, and `options.patience` epochs without a better one stop."""
    torch.manual_seed(options.seed)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    generator = torch.Generator().manual_seed(options.seed)
    n = len(train_set)
    best_loss, best_state, best_epoch, waited, steps, epoch = float("inf"), None, 0, 0, 0, 0
    with progress(options.steps, desc) as bar:
        while steps < options.steps and waited < options.patience:
            epoch += 1
            net.train()
            for index in torch.randperm(n, generator=generator).split(options.batch_size):
                rows = _drop_modalities(train_set.rows(index), options.modality_dropout, generator)
                loss = loss_fn(net(rows), rows.targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += 1
                bar.update(1)
                if steps >= options.steps:
                    break
            if stop_set is None or epoch < options.min_epochs:
                continue
            net.eval()
            with torch.no_grad():
                stop_loss = float(loss_fn(net(stop_set), stop_set.targets))
            if stop_loss < best_loss - 1e-6:
                best_loss, best_state, best_epoch, waited = (
                    stop_loss,
                    copy.deepcopy(net.state_dict()),
                    epoch,
                    0,
                )
            else:
                waited += 1
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return Fitted(
        net,
        epochs=epoch,
        best_epoch=best_epoch or epoch,
        steps=steps,
        stopped_early=waited >= options.patience,
        early_stop_loss=None if stop_set is None else best_loss,
    )
