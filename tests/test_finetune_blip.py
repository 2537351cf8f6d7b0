from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmdemo.cli import main
from mmdemo.data import Store
from mmdemo.finetune import blip_lora
from mmdemo.finetune.data import text_targets
from mmdemo.finetune.runs import RunConfig
from mmdemo.serving.registry import Registry
from tests.conftest import ASSETS
from tests.finetune_helpers import (
    ANSWERS,
    CAPTIONS,
    TINY_MODEL,
    isolated_cli,  # noqa: F401 (a fixture, used by name)
    store_answer_corrections,
    store_caption_corrections,
)

pytestmark = pytest.mark.usefixtures("isolated_cli")


@pytest.fixture
def store(data_dir: Path) -> Store:
    return Store(data_dir / "mmdemo.db")


def test_training_pairs_are_the_latest_corrections(store, tmp_path):
    store_caption_corrections(store)
    store.save_user("bo", "reviewer", password_hash=None, source="local")  # a reviewer's correction counts
    first = store.predictions("caption")[0]
    store.add_correction(first.id, "a ginger cat asleep on a sofa", user="bo")
    store.record_prediction(
        "caption", media_id=first.media_id, input={}, output="never corrected", model=TINY_MODEL
    )
    gone = store.add_media(tmp_path / "gone.jpg", "image", data=b"image file since deleted")
    orphan = store.record_prediction("caption", media_id=gone.id, input={}, output="x", model=TINY_MODEL)
    store.add_correction(orphan.id, "a picture nobody can load", user="bo")
    pairs = {pair.prediction_id: pair for pair in text_targets(store, "caption")}
    assert len(pairs) == len(CAPTIONS)
    assert pairs[first.id].target == "a ginger cat asleep on a sofa" and pairs[first.id].prompt == ""


def test_caption_lora_run_loads_back_through_the_registry(store, sample_images):
    store_caption_corrections(store)
    registry = Registry("tiny", device="cpu", store=store)
    base = registry.get("caption")
    config = RunConfig("caption", steps=6, batch_size=4, learning_rate=1e-2, accept="always")
    outcome = blip_lora.finetune(config, registry=registry, store=store, user="ana")

    version = outcome.version
    assert (version.version, version.status, version.user) == ("v1", "accepted", "ana")
    folder = Path(version.path)
    assert folder.parent.parent == store.path.parent / "models"
    saved = json.loads((folder / "config.json").read_text())
    assert saved["steps"] == 6 and saved["seed"] == 0
    assert (folder / "data_hash.txt").read_text().strip() == version.data_hash
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train_examples"] + metrics["validation_examples"] == len(CAPTIONS)
    assert set(metrics["before"]) == set(metrics["after"]) == {"loss", "exact_match"}
    assert metrics["after"]["loss"] < metrics["before"]["loss"]  # validation captions share words
    assert "| loss |" in outcome.report and "| exact_match |" in outcome.report

    served = registry.get("caption")
    assert served is not base and served.info.version == "v1" and served.info.source == version.artifact
    base_weights = dict(base.model.named_parameters())
    changed = [name for name, p in served.model.named_parameters() if not torch.equal(p, base_weights[name])]
    assert changed and all("query" in name or "value" in name for name in changed)
    captions = served.caption([sample_images["cat"]])
    assert len(captions) == 1 and isinstance(captions[0], str)


def test_vqa_run_from_the_cli_and_versions_listing(store, capsys):
    store_answer_corrections(store)
    argv = ["finetune", "vqa", "--profile", "tiny", "--steps", "3", "--batch-size", "4", "--json"]
    assert main([*argv, "--accept-always"]) == 0
    version = json.loads(capsys.readouterr().out)
    assert version["task"] == "vqa" and version["status"] == "accepted" and version["version"] == "v1"
    assert version["metrics"]["train_examples"] + version["metrics"]["validation_examples"] == len(ANSWERS)
    assert Path(version["artifact"], "model.safetensors").is_file()

    registry = Registry("tiny", device="cpu", store=store)
    answerer = registry.get("vqa")
    assert answerer.info.version == "v1"
    answers = answerer.answer([Image.open(ASSETS / "cat.jpg").convert("RGB")], ["what animal is this?"], 2)
    assert answers[0].answer == answers[0].top[0][0]

    assert main(["versions", "--task", "vqa", "--json", "--profile", "tiny"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["status"]) for v in listed] == [("v1", "accepted")]


def test_too_few_corrections_is_a_clear_cli_error(store, capsys):
    assert main(["finetune", "caption", "--profile", "tiny", "--steps", "1"]) == 2
    assert "need at least 2 corrected caption predictions" in capsys.readouterr().err
    assert store.model_versions() == []


def test_lite_baseline_cannot_be_fine_tuned(store, capsys):
    store_caption_corrections(store)
    assert main(["finetune", "caption", "--profile", "lite", "--steps", "1"]) == 2
    assert "needs a BLIP model" in capsys.readouterr().err
    assert store.model_versions() == []
