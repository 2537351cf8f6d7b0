"""`mmdemo finetune video --fusion ...`: every strategy trains, is saved and served through the registry,
classifies clips without sound, and `--fusion all` keeps the best by validation and reports them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmdemo.data import Store, default_store
from mmdemo.finetune.fusion import STRATEGIES
from mmdemo.finetune.fusion.batch import standardisation
from mmdemo.finetune.fusion.loop import LoopOptions
from mmdemo.finetune.fusion.train import Clips, train_heads
from mmdemo.media.video import write_clip
from mmdemo.serving.models import fusion_head
from mmdemo.serving.models.base import ModelInfo
from mmdemo.serving.registry import Registry
from mmdemo.tasks import video_classify as vc
from tests.test_finetune_video import CLASSES, coloured_clip, store_corrected_clip

LITE_FEATURES = {"visual": "ConSE EfficientNet-Lite0 + MiniLM", "audio": "librosa log-mel/MFCC statistics"}
DIMS = {"visual": 384, "audio": 171}  # the lite profile's feature widths
LABELS = ["p0 s0", "p0 s1", "p1 s0", "p1 s1"]  # the picture and the sound each say half of the label
MMDEMO = Path(sys.executable).with_name("mmdemo")


def features(n: int, rng: np.random.Generator, silent_every: int = 0) -> Clips:
    """Clips whose frames follow one of 2 picture kinds and whose sound follows one of 2 sound kinds."""
    pictures = np.random.default_rng(10).normal(size=(2, DIMS["visual"]))
    sounds = np.random.default_rng(11).normal(size=(2, DIMS["audio"]))
    rows, targets = [], []
    for index in range(n):
        label = index % 4
        p, s = divmod(label, 2)
        silent = silent_every and index % silent_every == 0
        rows.append(
            {
                "visual": pictures[p] + 0.5 * rng.normal(size=(3, DIMS["visual"])),
                "audio": None if silent else sounds[s] + 0.5 * rng.normal(size=(3, DIMS["audio"])),
            }
        )
        targets.append(label)
    return Clips(rows, targets)


def save_version(store: Store, head: fusion_head.Head) -> str:
    """A trained head stored as an accepted `video` version, as `mmdemo finetune video` leaves it."""
    version = store.start_model_version(
        "video",
        base_model=LITE_FEATURES["visual"],
        profile="lite",
        parent_version="base",
        models_dir=store.path.parent / "models",
        config={"options": {"fusion": head.strategy}},
        data_hash="test",
    )
    fusion_head.save(Path(version.artifact), head)
    store.finish_model_version(
        "video",
        version.version,
        status="accepted",
        metrics={},
        builder="mmdemo.serving.models.fusion_head:load",
    )
    return version.version


def test_each_strategy_trains_saves_loads_through_the_registry_and_classifies_a_silent_clip(tmp_path):
    rng = np.random.default_rng(0)
    fit, stop, held_out = features(48, rng, silent_every=7), features(16, rng), features(24, rng)
    scaling = standardisation(fit.rows, DIMS)
    info = ModelInfo(name="video fusion head", version="new", profile="lite", source="test")
    trained = train_heads(STRATEGIES, fit, stop, LABELS, DIMS, scaling, LITE_FEATURES, info, LoopOptions())
    assert list(trained) == list(STRATEGIES)
    assert set(trained["ensemble"].head.member_weights) == {"weighted", "pooled", "concat", "attention"}
    assert sum(trained["ensemble"].head.member_weights.values()) == pytest.approx(1.0)

    store = default_store()
    lite = Registry("lite", device="cpu", store=store)
    silent = write_clip(tmp_path / "silent.mp4", [np.full((48, 64, 3), 120, np.uint8)] * 8, 8)
    for strategy, result in trained.items():
        version = save_version(store, result.head)
        notes: list[str] = []
        served = vc.serving_head(lite, list(reversed(LABELS)), notes)  # loaded by the registry's builder
        assert served is not None and notes == []
        assert served.strategy == strategy and served.info.version == version
        assert (Path(store.model_version("video", version).artifact) / "head.json").exists()
        assert not list(Path(store.model_version("video", version).artifact).rglob("*.pkl"))
        # the head read back predicts as the one trained (above chance on held-out clips, both modalities)
        predicted = [int(np.argmax(fusion_head.clip_probabilities(served, r, LABELS))) for r in held_out.rows]
        assert np.mean(np.asarray(predicted) == np.asarray(held_out.targets)) >= 0.75, strategy
        # a clip without sound: a proper distribution that still knows the picture's half of the labels
        picture_only = fusion_head.clip_probabilities(served, {"visual": held_out.rows[3]["visual"]}, LABELS)
        assert np.isfinite(picture_only).all() and picture_only.sum() == pytest.approx(1.0)
        assert picture_only[2:].sum() > picture_only[:2].sum(), strategy  # picture kind 1: "p1 ..."
        # and a real silent clip through the classify path, which names the strategy that served it
        result_ = vc.classify_video(silent, LABELS, n_frames=2, registry=lite, store=store)
        assert result_.model.version == version and result_.audio == []
        assert sum(score for _, score in result_.fused) == pytest.approx(1.0)
        assert any(f"{strategy} fusion" in note for note in result_.notes), result_.notes


def _mmdemo(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MMDEMO), *args], capture_output=True, text=True, timeout=900, env=env)


def test_fusion_all_keeps_the_best_by_validation_and_reports_all(tmp_path, data_dir):
    rng = np.random.default_rng(0)
    store = default_store()
    for label, count in {"a violin": 5, "a tractor": 5, "a penguin": 4}.items():
        for index in range(count):
            clip = coloured_clip(tmp_path / f"{label.split()[-1]}{index}.mp4", label, rng)
            store_corrected_clip(store, clip, label)
    env = {**os.environ, "MMDEMO_DATA_DIR": str(data_dir), "PYTHONPATH": str(Path(__file__).parents[1])}
    args = ["finetune", "video", "--profile", "lite", "--frames", "2", "--fusion", "all", "--json"]
    done = _mmdemo([*args, "--validation-fraction", "0.34"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    version = json.loads(done.stdout)
    metrics, folder = version["metrics"], Path(version["path"])
    assert set(metrics["strategies"]) == set(STRATEGIES)  # metrics.json is written with sorted keys
    by_f1 = {s: r["macro_f1"] for s, r in metrics["strategies"].items()}
    assert metrics["fusion"] == max(STRATEGIES, key=lambda s: (by_f1[s], -STRATEGIES.index(s)))
    assert metrics["after"]["macro_f1"] == pytest.approx(by_f1[metrics["fusion"]])
    assert all(r["parameters"] > 0 for r in metrics["strategies"].values())
    served = json.loads((Path(version["artifact"]) / "head.json").read_text())
    assert served["strategy"] == metrics["fusion"]
    assert json.loads((folder / "config.json").read_text())["options"]["fusion"] == "all"
    report = (folder / "report.md").read_text()
    assert "## Fusion strategies" in report and all(f"| {s}" in report for s in STRATEGIES)

    clip = coloured_clip(tmp_path / "new.mp4", "a tractor", rng)
    listed = ",".join(CLASSES)
    done = _mmdemo(
        ["classify-video", str(clip), "--labels", listed, "--frames", "2", "--profile", "lite"], env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{metrics['fusion']} fusion" in done.stdout and "(version v1)" in done.stdout


def test_an_unknown_strategy_is_one_clear_line(data_dir):
    env = {**os.environ, "MMDEMO_DATA_DIR": str(data_dir), "PYTHONPATH": str(Path(__file__).parents[1])}
    done = _mmdemo(["finetune", "video", "--profile", "lite", "--fusion", "late"], env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "weighted" in done.stderr and "attention" in done.stderr


def test_after_early_stopping_each_strategy_is_trained_afresh_on_all_training_clips():
    rng = np.random.default_rng(1)
    fit, stop = features(40, rng), features(12, rng)
    scaling = standardisation(fit.rows, DIMS)
    info = ModelInfo(name="video fusion head", version="new", profile="lite", source="test")
    options = LoopOptions(steps=60, batch_size=8, min_epochs=2, patience=2)
    trained = train_heads(STRATEGIES, fit, stop, LABELS, DIMS, scaling, LITE_FEATURES, info, options)
    for strategy in ("weighted", "pooled", "concat", "attention"):
        fitted = trained[strategy].fitted
        assert fitted is not None and fitted.best_epoch >= 1
        # as many epochs as early stopping chose, over the fit and the early-stopping clips together
        assert fitted.refit_epochs == fitted.best_epoch
        assert fitted.refit_steps == fitted.best_epoch * -(-(40 + 12) // 8), strategy
        # scored on the early-stopping clips before they were trained on: the ensemble's weights use that
        assert trained[strategy].stop_macro_f1 is not None
    scores = {s: trained[s].stop_macro_f1 for s in trained["ensemble"].head.member_weights}
    total = sum(max(v, 1e-3) for v in scores.values())
    for strategy, weight in trained["ensemble"].head.member_weights.items():
        assert weight == pytest.approx(max(scores[strategy], 1e-3) / total)

    kept = train_heads(
        ["concat"],
        fit,
        stop,
        LABELS,
        DIMS,
        scaling,
        LITE_FEATURES,
        info,
        replace(options, refit_on_all=False),
    )["concat"]
    assert kept.fitted.refit_epochs is None and kept.fitted.refit_steps is None
    without_stop = train_heads(["concat"], fit, None, LABELS, DIMS, scaling, LITE_FEATURES, info, options)
    assert without_stop["concat"].fitted.refit_epochs is None  # nothing held back, nothing to refit with


def test_heads_saved_before_the_interaction_term_still_load():
    """A `concat`/`attention` head saved without the new net options builds the net it was trained as."""
    from mmdemo.finetune.fusion import net_class

    for strategy, option in (("concat", "interaction"), ("attention", "product")):
        old = net_class(strategy)(DIMS, 4)
        new = net_class(strategy)(DIMS, 4, **{option: 16 if option == "interaction" else True})
        assert sum(p.numel() for p in new.parameters()) > sum(p.numel() for p in old.parameters())
        net_class(strategy)(DIMS, 4).load_state_dict(old.state_dict())  # no missing or unexpected keys
