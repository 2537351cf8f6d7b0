"""`mmdemo finetune video`: a fusion head trained on stored video labels, served by the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdemo.cli import main
from mmdemo.data import Store, default_store
from mmdemo.finetune.data import clip_targets
from mmdemo.media.video import write_clip
from mmdemo.serving import registry
from mmdemo.serving.models import fusion_head
from mmdemo.serving.models.base import ModelInfo
from mmdemo.serving.registry import Registry
from mmdemo.tasks import fusion
from mmdemo.tasks import video_classify as vc
from mmdemo.ui.video import notes_text
from tests.finetune_helpers import isolated_cli  # noqa: F401
from tests.labeling_helpers import make_images, make_job
from tests.video_helpers import SAMPLE_RATE

# Plain colours and pure tones: nothing the lite zero-shot path can name, easy for a trained head.
CLASSES = {
    "a violin": ((200, 40, 40), 330.0),
    "a tractor": ((40, 180, 60), 1200.0),
    "a penguin": ((50, 60, 210), 3500.0),
}
COUNTS = {"a violin": 6, "a tractor": 5, "a penguin": 4}  # imbalanced, as real sessions are
ZERO_SHOT = ModelInfo(name="zero-shot", version="base", profile="lite", source="test")


def coloured_clip(path: Path, label: str, rng: np.random.Generator, seconds: float = 1.0) -> Path:
    colour, hz = CLASSES[label]
    frames = []
    for _ in range(round(seconds * 8)):
        level = np.clip(np.array(colour) + rng.integers(-30, 30, 3), 0, 255)
        pixels = np.broadcast_to(level, (48, 64, 3)) + rng.integers(-20, 20, (48, 64, 3))
        frames.append(np.clip(pixels, 0, 255).astype(np.uint8))
    times = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sound = 0.3 * np.sin(2 * np.pi * hz * rng.uniform(0.9, 1.1) * times) + 0.02 * rng.standard_normal(
        times.size
    )
    return write_clip(path, frames, 8, sound.astype(np.float32), SAMPLE_RATE)


def store_corrected_clip(store: Store, path: Path, label: str, wrong: str = "a violin") -> None:
    """What the Video tab stores: the clip, a prediction, and the user's correction of it."""
    media = store.add_media(path, "video")
    prediction = store.record_prediction(
        "video",
        media_id=media.id,
        input={"labels": list(CLASSES)},
        output={"fused": wrong},
        model=ZERO_SHOT,
        user="ana",
    )
    store.add_correction(prediction.id, {"label": label, "in_label_set": True}, user="ana")


@pytest.fixture
def labelled_clips(tmp_path: Path) -> dict[str, Path]:
    """Corrected clips in the store; returns one fresh clip per class, never stored, to classify."""
    rng = np.random.default_rng(0)
    store = default_store()
    for label, count in COUNTS.items():
        for index in range(count):
            clip = coloured_clip(tmp_path / f"{label.split()[-1]}{index}.mp4", label, rng)
            store_corrected_clip(store, clip, label)
    return {label: coloured_clip(tmp_path / f"new-{label.split()[-1]}.mp4", label, rng) for label in CLASSES}


pytestmark = pytest.mark.usefixtures("isolated_cli")


def test_trained_head_beats_zero_shot_and_is_served_then_rolled_back(labelled_clips, capsys):
    labels = list(CLASSES)
    assert main(["rollback", "video", "--profile", "lite"]) == 2  # nothing trained yet
    assert "nothing to roll back" in capsys.readouterr().err
    served = registry.default_registry()
    before = vc.classify_video(labelled_clips["a tractor"], labels, n_frames=2, registry=served)
    assert before.model.version == "base" and "zero-shot" in notes_text(before)
    capsys.readouterr()  # model libraries print while loading

    args = ["finetune", "video", "--profile", "lite", "--frames", "2", "--validation-fraction", "0.34"]
    assert main([*args, "--json"]) == 0
    version = json.loads(capsys.readouterr().out)
    metrics, folder = version["metrics"], Path(version["path"])
    assert version["status"] == "accepted" and version["builder"] == "mmdemo.serving.models.fusion_head:load"
    assert metrics["validation_examples"] == 5 and metrics["train_examples"] == 10
    # the held-out clips: the head beats the zero-shot classify path on them
    assert metrics["after"]["accuracy"] > metrics["before"]["accuracy"]
    assert metrics["after"]["macro_f1"] > metrics["before"]["macro_f1"]
    assert sum(map(sum, metrics["confusion"]["after"])) == 5
    assert set(metrics["per_class"]["after"]) == set(labels)
    assert sum(metrics["fusion_weights"].values()) == pytest.approx(1.0)
    assert json.loads((folder / "config.json").read_text())["options"] == {"frames": 2, "patience": 10}
    assert (folder / "data_hash.txt").read_text().strip() == version["data_hash"]
    assert "| metric (validation) | before | after | change |" in (folder / "report.md").read_text()
    assert "## Per class" in (folder / "report.md").read_text()
    assert Image.open(folder / "confusion.png").size[0] > 200

    # the same process, the same registry: the new version is used without a restart
    after = vc.classify_video(
        labelled_clips["a tractor"], list(reversed(labels)), n_frames=2, registry=served
    )
    assert registry.default_registry() is served
    assert after.model.version == "v1" and "fine-tuned v1" in notes_text(after)
    assert after.weights == pytest.approx(metrics["fusion_weights"])
    stored = default_store().prediction(after.prediction_id)
    assert stored.model_version == "v1" and stored.params["made_by"]["version"] == "v1"
    clip, listed = str(labelled_clips["a penguin"]), ",".join(labels)
    assert main(["classify-video", clip, "--labels", listed, "--frames", "2", "--profile", "lite"]) == 0
    assert (
        "made by: video fusion head on ConSE EfficientNet-Lite0 + MiniLM (version v1)"
        in capsys.readouterr().out
    )
    # other labels than the head learned: zero-shot, and the note says why
    other = vc.classify_video(labelled_clips["a tractor"], [*labels, "a rocket"], n_frames=2, registry=served)
    assert other.model.version == "base" and any("trained on the labels" in n for n in other.notes)

    assert main(["rollback", "video", "--profile", "lite"]) == 0
    assert capsys.readouterr().out.strip() == "video: now serving base"
    rolled_back = vc.classify_video(labelled_clips["a tractor"], labels, n_frames=2, registry=served)
    assert rolled_back.model.version == "base"
    assert not any("fusion head" in name or "@v1" in name for name in served.loaded_names())


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["finetune", "video", "--profile", "lite"]) == 2
    assert "no video labels yet" in capsys.readouterr().err
    rng = np.random.default_rng(1)
    for index in range(3):
        store_corrected_clip(
            default_store(), coloured_clip(tmp_path / f"v{index}.mp4", "a violin", rng), "a violin"
        )
    assert main(["finetune", "video", "--profile", "lite"]) == 2
    assert "at least two classes" in capsys.readouterr().err
    assert main(["finetune", "video", "--job", "99", "--profile", "lite"]) == 2
    assert "no labeling job #99 of task video" in capsys.readouterr().err
    assert default_store().model_versions() == []


def test_a_jobs_reviewed_labels_join_the_corrections_and_win_for_the_same_clip(tmp_path):
    from mmdemo.labeling import review

    store, rng = default_store(), np.random.default_rng(2)
    folder = tmp_path / "job"
    folder.mkdir()
    corrected = coloured_clip(tmp_path / "corrected.mp4", "a violin", rng)
    store_corrected_clip(store, corrected, "a violin")
    (folder / "same-clip.mp4").write_bytes(corrected.read_bytes())  # the corrected clip is in the job too
    coloured_clip(folder / "unsettled.mp4", "a tractor", rng)
    job = make_job(store, folder, task="video", labels=tuple(CLASSES), overlap=2)
    corrected_media = store.add_media(corrected, "video").id
    (item,) = [i for i in store.job_items(job.id) if i.media_id == corrected_media]
    review.decide(job.id, item.id, "root", "a penguin", store=store)

    assert [(t.media_id, t.label, t.source) for t in clip_targets(store, job.id)] == [
        (corrected_media, "a penguin", f"job {job.id}, reviewed")  # the unsettled item is left out
    ]
    assert [(t.label, t.clip_path) for t in clip_targets(store)] == [("a violin", str(corrected))]
    images = make_job(store, make_images(tmp_path / "images", 2), task="caption", name="captions")
    with pytest.raises(ValueError, match=f"no labeling job #{images.id} of task video"):
        clip_targets(store, images.id)


def save_head_version(store: Store, labels: list[str], feature_models: dict[str, str], dim: int = 4) -> str:
    """A random head stored as an accepted `video` version, as a run would leave it, without training."""
    rng = np.random.default_rng(3)
    version = store.start_model_version(
        "video",
        base_model="ConSE EfficientNet-Lite0 + MiniLM",
        profile="lite",
        parent_version="base",
        models_dir=store.path.parent / "models",
        config={},
        data_hash="abc",
    )
    branches = {
        m: fusion_head.Branch(
            rng.normal(size=(len(labels), dim)), rng.normal(size=len(labels)), np.zeros(dim), np.ones(dim)
        )
        for m in feature_models
    }
    weights = {m: 1 / len(feature_models) for m in feature_models}
    fusion_head.save(
        Path(version.artifact), fusion_head.FusionHead(ZERO_SHOT, labels, branches, weights, feature_models)
    )
    store.finish_model_version(
        "video",
        version.version,
        status="accepted",
        metrics={},
        builder="mmdemo.serving.models.fusion_head:load",
    )
    return version.version


def test_a_head_is_used_only_for_its_labels_and_its_feature_models():
    store = default_store()
    lite = Registry("lite", device="cpu", store=store)
    save_head_version(store, ["a", "b"], {"visual": "ConSE EfficientNet-Lite0 + MiniLM"})
    notes: list[str] = []
    head = vc.serving_head(lite, ["b", "a"], notes)
    assert head is not None and head.info.version == "v1" and notes == []
    assert vc.serving_head(lite, ["a", "b", "c"], notes) is None and "trained on the labels a, b" in notes[0]
    save_head_version(store, ["a", "b"], {"audio": "CLAP htsat unfused"})
    notes.clear()
    assert vc.serving_head(lite, ["a", "b"], notes) is None
    assert "reads CLAP htsat unfused features but librosa" in notes[0]


def test_scoring_each_step_ranks_as_the_pooled_features_the_head_was_trained_on():
    rng = np.random.default_rng(4)
    labels = ["x", "y", "z"]
    branch = fusion_head.Branch(
        rng.normal(size=(3, 5)), rng.normal(size=3), rng.normal(size=5), rng.uniform(0.5, 2, 5)
    )
    head = fusion_head.FusionHead(ZERO_SHOT, labels, {"visual": branch}, {"visual": 1.0}, {"visual": "e"})
    rows = rng.normal(size=(6, 5))
    features = vc.ClipFeatures(rows, list(range(6)), None, [])
    scores = vc.head_scores(head, features, ["z", "x", "y"])
    pooled = fusion.log_softmax(branch.logits(rows.mean(axis=0, keepdims=True))[0])
    assert scores["audio"] is None
    assert np.allclose(scores["visual"].overall, pooled[[2, 0, 1]])
