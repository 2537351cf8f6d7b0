"""The one training loop every strategy shares: class-weighted cross-entropy, AdamW on mini-batches,
modality dropout (so "missing" tokens are learned and silent clips work), and early stopping on a part of
the training clips held back (the validation clips the report scores play no part in it). Once early
stopping has chosen the number of epochs, `refit` trains a fresh net for that many epochs on all the
training clips (the held-back ones too), so no clip is spent only on deciding when to stop."""

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
    # After early stopping: a fresh net trained on the fit and early-stopping clips together for the
    # best epoch count (the held-back clips then also train); False keeps the early-stopped net.
    refit_on_all: bool = True


@dataclass
class Fitted:
    net: torch.nn.Module
    epochs: int
    best_epoch: int
    steps: int
    stopped_early: bool
    early_stop_loss: float | None
    refit_epochs: int | None = None  # epochs of the refit on all training clips (None: no refit)
    refit_steps: int | None = None


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


def _epoch(
    net: torch.nn.Module,
    train_set: Batch,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    options: LoopOptions,
    bar: Any,
    max_steps: int,
) -> int:
    """One pass over `train_set` in shuffled mini-batches (at most `max_steps`); the steps it took."""
    net.train()
    steps = 0
    for index in torch.randperm(len(train_set), generator=generator).split(options.batch_size):
        rows = _drop_modalities(train_set.rows(index), options.modality_dropout, generator)
        loss = loss_fn(net(rows), rows.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        bar.update(1)
        if steps >= max_steps:
            break
    return steps


def _optimiser(net: torch.nn.Module, options: LoopOptions) -> torch.optim.Optimizer:
    return torch.optim.AdamW(net.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)


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
    optimizer = _optimiser(net, options)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    generator = torch.Generator().manual_seed(options.seed)
    best_loss, best_state, best_epoch, waited, steps, epoch = float("inf"), None, 0, 0, 0, 0
    with progress(options.steps, desc) as bar:
        while steps < options.steps and waited < options.patience:
            epoch += 1
            steps += _epoch(
                net, train_set, loss_fn, optimizer, generator, options, bar, options.steps - steps
            )
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


def refit(
    net: torch.nn.Module,
    train_set: Batch,
    weights: torch.Tensor,
    epochs: int,
    options: LoopOptions,
    progress: Progress,
    desc: str,
) -> int:
    """Train the fresh `net` for exactly `epochs` epochs on `train_set` (no early stopping, no step cap:
    the epoch count was chosen by `fit`); the steps it took."""
    torch.manual_seed(options.seed)
    optimizer = _optimiser(net, options)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    generator = torch.Generator().manual_seed(options.seed)
    per_epoch = -(-len(train_set) // options.batch_size)
    steps = 0
    with progress(epochs * per_epoch, desc) as bar:
        for _ in range(epochs):
            steps += _epoch(net, train_set, loss_fn, optimizer, generator, options, bar, per_epoch)
    net.eval()
    return steps
