"""The run harness every fine-tuning run shares; a run supplies only its examples and a train function.

`run()` seeds everything, hashes the training data, splits off a validation set, reserves the next version
of the task in the store, calls the train function (which saves its model under `context.model_dir` and
reports metrics before and after training on the validation split), writes `config.json`, `metrics.json`
and `report.md` beside the model, and marks the version accepted (served from then on), or rejected when
it did not beat the model it started from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from tqdm.auto import tqdm

from mmdemo import config
from mmdemo.data import ModelVersion, Store
from mmdemo.serving.registry import Registry

Example = TypeVar("Example")


@dataclass
class RunConfig:
    task: str
    steps: int = 200
    batch_size: int = 8
    learning_rate: float = 1e-4
    seed: int = 0
    validation_fraction: float = 0.2
    accept: str = "if_better"  # "if_better" | "always"
    # which labels it reads (`finetune.data.LabelSelection`): None = every job of the task
    job_ids: list[int] | None = None
    include_unreviewed: bool = False
    include_anonymous: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # run-specific settings (LoRA rank, ...)


@dataclass
class RunContext(Generic[Example]):
    """What a train function gets: its data, where to save, and the registry to load the start model."""

    config: RunConfig
    train: list[Example]
    validation: list[Example]
    model_dir: Path
    registry: Registry
    start_version: str

    def progress(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


@dataclass
class TrainResult:
    """Metrics on the validation split before and after training, and how the registry loads the model."""

    before: dict[str, float]
    after: dict[str, float]
    builder: str  # "module:function" that loads `model_dir` (the registry calls it with ctx.path)
    primary_metric: str
    higher_is_better: bool
    details: dict[str, Any] = field(default_factory=dict)

    def improved(self) -> bool:
        before, after = self.before[self.primary_metric], self.after[self.primary_metric]
        return after > before if self.higher_is_better else after < before


@dataclass(frozen=True)
class RunOutcome:
    version: ModelVersion
    report: str
    result: TrainResult


TrainFunction = Callable[[RunContext[Any]], TrainResult]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _canonical(example: Any) -> Any:
    if dataclasses.is_dataclass(example) and not isinstance(example, type):
        return dataclasses.asdict(example)
    return example


def data_hash(examples: Sequence[Any]) -> str:
    """A hash of the training data (order-independent), saved with the version to say what it learned from."""
    lines = sorted(json.dumps(_canonical(e), sort_keys=True, default=str) for e in examples)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def split(
    examples: Sequence[Example],
    fraction: float,
    seed: int,
    group: Callable[[Example], Hashable] | None = None,
) -> tuple[list[Example], list[Example]]:
    """A seeded train/validation split by group (an item, a clip): a group never lands on both sides."""
    keys = list(dict.fromkeys(group(e) if group else i for i, e in enumerate(examples)))
    if len(keys) < 2:
        raise ValueError(f"need at least 2 distinct examples to train and validate; found {len(keys)}")
    random.Random(seed).shuffle(keys)
    held_out = set(keys[: min(len(keys) - 1, max(1, round(len(keys) * fraction)))])
    train, validation = [], []
    for index, example in enumerate(examples):
        (validation if (group(example) if group else index) in held_out else train).append(example)
    return train, validation


def label_origins(examples: Sequence[Any]) -> Counter[str]:
    """How many labels of each origin ("job 2, reviewed", "correction, single") the examples hold: an
    example has an `origin`, or (a judged query) `origins`."""
    counts: Counter[str] = Counter()
    for example in examples:
        counts.update(getattr(example, "origins", None) or [getattr(example, "origin", None) or "unknown"])
    return counts


def report_markdown(
    version: ModelVersion, result: TrainResult, sizes: dict[str, int], origins: Counter[str] | None = None
) -> str:
    rows = [
        f"| {name} | {result.before[name]:.4f} | {result.after[name]:.4f} | "
        f"{result.after[name] - result.before[name]:+.4f} |"
        for name in result.before
        if name in result.after
    ]
    verdict = "accepted (served from now on)" if version.status == "accepted" else version.status
    return "\n".join(
        [
            f"# {version.task} {version.version}",
            "",
            f"- base model: {version.base_model} ({version.profile}), started from {version.parent_version}",
            f"- examples: {sizes['train']} train, {sizes['validation']} validation; data hash "
            f"`{version.data_hash[:16]}`",
            *(
                [f"- labels: {', '.join(f'{n} {what}' for what, n in sorted(origins.items()))}"]
                if origins
                else []
            ),
            f"- status: {verdict}",
            "",
            "| metric (validation) | before | after | change |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def run(
    config_: RunConfig,
    examples: Sequence[Example],
    train: TrainFunction,
    *,
    registry: Registry,
    store: Store,
    base_task: str | None = None,
    group: Callable[[Example], Hashable] | None = None,
    user: str | None = None,
) -> RunOutcome:
    """Train a new version of `config_.task` and register it. `base_task` names the registry task whose
    model the run starts from (default: the run's task)."""
    if config_.accept not in ("if_better", "always"):
        raise ValueError(f"accept must be 'if_better' or 'always', not {config_.accept!r}")
    if config_.steps < 1 or config_.batch_size < 1:
        raise ValueError("steps and batch size must be at least 1")
    if not 0 < config_.validation_fraction < 1:
        raise ValueError("the validation fraction must be between 0 and 1")
    seed_everything(config_.seed)
    train_set, validation_set = split(examples, config_.validation_fraction, config_.seed, group)
    start = registry.serving_spec(base_task or config_.task)
    saved_config = {**dataclasses.asdict(config_), "device": registry.device}
    version = store.start_model_version(
        config_.task,
        base_model=start.name,
        profile=start.profile,
        parent_version=start.version,
        models_dir=config.data_dir() / "models",
        config=saved_config,
        data_hash=data_hash(examples),
        user=user,
    )
    folder = Path(version.path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(saved_config, indent=2, sort_keys=True))
    (folder / "data_hash.txt").write_text(version.data_hash + "\n")
    context = RunContext(config_, train_set, validation_set, Path(version.artifact), registry, start.version)
    try:
        result = train(context)
    except BaseException as error:
        store.finish_model_version(
            config_.task, version.version, status="failed", metrics={"error": str(error)}, user=user
        )
        raise
    status = "accepted" if config_.accept == "always" or result.improved() else "rejected"
    metrics = {"before": result.before, "after": result.after, "primary": result.primary_metric}
    metrics.update(train_examples=len(train_set), validation_examples=len(validation_set), **result.details)
    metrics["label_origins"] = dict(label_origins(examples))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    version = store.finish_model_version(
        config_.task, version.version, status=status, metrics=metrics, builder=result.builder, user=user
    )
    sizes = {"train": len(train_set), "validation": len(validation_set)}
    report = report_markdown(version, result, sizes, label_origins(examples))
    (folder / "report.md").write_text(report)
    return RunOutcome(version, report, result)
