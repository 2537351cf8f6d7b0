from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdemo.data import Store
from mmdemo.finetune.runs import RunConfig, RunContext, TrainResult, data_hash, run, split
from mmdemo.serving.registry import Registry
from tests.test_versions import _tables

EXAMPLES = [{"clip": f"clip{i // 2}", "label": "dog" if i % 3 else "cat"} for i in range(10)]


def fake_train(after_loss: float):
    def train(context: RunContext) -> TrainResult:
        context.model_dir.mkdir(parents=True)
        (context.model_dir / "weights.txt").write_text(str(len(context.train)))
        with context.progress(context.config.steps, "fake") as bar:
            bar.update(context.config.steps)
        return TrainResult(
            before={"loss": 1.0, "accuracy": 0.5},
            after={"loss": after_loss, "accuracy": 0.75},
            builder="tests.test_versions:build",
            primary_metric="loss",
            higher_is_better=False,
        )

    return train


@pytest.fixture
def store(data_dir: Path) -> Store:
    return Store(data_dir / "mmdemo.db")


def test_split_keeps_each_group_on_one_side_and_is_seeded():
    train, validation = split(EXAMPLES, 0.4, seed=3, group=lambda e: e["clip"])
    assert {e["clip"] for e in train}.isdisjoint({e["clip"] for e in validation})
    assert len(validation) == 4 and len(train) + len(validation) == len(EXAMPLES)
    assert split(EXAMPLES, 0.4, seed=3, group=lambda e: e["clip"]) == (train, validation)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        split(EXAMPLES[:2], 0.5, seed=0, group=lambda e: e["clip"])


def test_data_hash_ignores_order_and_sees_any_change():
    assert data_hash(EXAMPLES) == data_hash(list(reversed(EXAMPLES)))
    changed = [*EXAMPLES[:-1], {**EXAMPLES[-1], "label": "bird"}]
    assert data_hash(changed) != data_hash(EXAMPLES)


def test_a_run_with_only_a_train_function_becomes_the_served_version(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    outcome = run(
        RunConfig("caption", steps=3), EXAMPLES, fake_train(0.5), registry=registry, store=store, user="ana"
    )
    assert outcome.version.status == "accepted" and outcome.version.builder == "tests.test_versions:build"
    folder = Path(outcome.version.path)
    assert json.loads((folder / "metrics.json").read_text())["after"] == {"loss": 0.5, "accuracy": 0.75}
    assert "| accuracy | 0.5000 | 0.7500 | +0.2500 |" in (folder / "report.md").read_text()
    assert registry.get("caption").path == folder / "model"


def test_a_run_that_does_not_improve_is_rejected_and_not_served(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    outcome = run(RunConfig("caption", steps=1), EXAMPLES, fake_train(1.5), registry=registry, store=store)
    assert outcome.version.status == "rejected" and "status: rejected" in outcome.report
    assert registry.get("caption").info.version == "base"
    forced = run(
        RunConfig("caption", steps=1, accept="always"),
        EXAMPLES,
        fake_train(1.5),
        registry=registry,
        store=store,
    )
    assert forced.version.version == "v2" and registry.get("caption").info.version == "v2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "at least 1"),
        ({"batch_size": 0}, "at least 1"),
        ({"validation_fraction": 1.0}, "between"),
    ],
)
def test_bad_settings_are_refused_before_a_version_is_made(store, change, message):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    with pytest.raises(ValueError, match=message):
        run(RunConfig("caption", **change), EXAMPLES, fake_train(0.5), registry=registry, store=store)
    assert store.model_versions() == []


def test_a_failing_run_is_recorded_as_failed_and_not_served(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)

    def broken(context: RunContext) -> TrainResult:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        run(RunConfig("caption"), EXAMPLES, broken, registry=registry, store=store)
    (version,) = store.model_versions("caption")
    assert version.status == "failed" and version.metrics == {"error": "out of memory"}
    assert registry.get("caption").info.version == "base"
