"""Fusion strategies side by side on three clip sets made from real offline media.

Pictures: the sample photos in `assets/images/` and scikit-learn's `load_sample_images()`, in four kinds
(space, microscopy, ground textures, temples); each clip is 4 random crops of one photo. Sounds: Debian's
`sound-theme-freedesktop` (recorded voices, chimes, ringing, mechanical clicks) and `espeak-ng` speech,
looped to 2 s with a noise floor, in four kinds; each clip has 4 sound windows of 0.5 s. Sets (4 classes):

  visual         the label is the picture's kind; the sound is noise
  complementary  picture kind ∈ 2 groups × sound kind ∈ 2 groups: each narrows to 2 classes, together to 1
  interaction    label = (picture kind + sound kind) mod 4: each modality alone is at chance; balanced,
                 so each class's 4 (picture kind, sound kind) combinations have the same number of clips

Features come from the lite profile's frozen encoders (ConSE over EfficientNet-Lite0 for frames, librosa for
sound), encoded once per set and cached; then, for each seed, the clips are split as `mmdemo finetune
video` splits them (validation by clip, early stopping on a quarter of the training clips, then a fresh
net trained on all training clips for the epochs early stopping chose) and every strategy trains with the
app's defaults on the same split; torch runs on one thread (`--threads`). The zero-shot baseline is the
classify path's weighted fusion with default weights (in lite only the frames can score labels zero-shot).

    apt-get install -y sound-theme-freedesktop espeak-ng
    python bench/fusion.py [--clips-per-class 64] [--seeds 0 1 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
PHOTOS = {
    "space": ["galaxies_closeup", "hubble_deep_field", "moon"],
    "microscopy": ["cell_microscopy", "immunohistochemistry", "microaneurysms", "retina"],
    "texture": ["brick_wall", "grass", "gravel"],
    "temple": ["chinese_temple", "temple_roof", "sklearn:china.jpg"],
}
SOUND_KINDS = {
    "speech": ["audio-channel-front-left", "audio-channel-rear-right", "audio-channel-side-left", "espeak"],
    "chime": ["bell", "complete", "message-new-instant", "service-login", "service-logout"],
    "ringing": [
        "alarm-clock-elapsed",
        "phone-incoming-call",
        "phone-outgoing-calling",
        "phone-outgoing-busy",
    ],
    "mechanical": ["camera-shutter", "screen-capture", "trash-empty", "power-plug", "device-added"],
}
PHRASES = ["the meeting starts at nine", "please close the door", "where is the station", "good morning"]
RATE, SECONDS, STEPS = 22_050, 2.0, 4
SETS = ("visual", "complementary", "interaction")
CACHE_VERSION = "v2"  # v2: the interaction set balanced over its combinations
LABELS = {
    "visual": ["a galaxy in space", "cells under a microscope", "a brick wall, grass or gravel", "a temple"],
    "complementary": [
        "a space or microscope image with voices or chimes",
        "a space or microscope image with ringing or clicks",
        "a wall or temple with voices or chimes",
        "a wall or temple with ringing or clicks",
    ],
    "interaction": ["combination A", "combination B", "combination C", "combination D"],
}


# -- media ------------------------------------------------------------------------------------------
def photos() -> dict[str, list]:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    named = {
        Path(f).name: Image.fromarray(img) for f, img in zip(samples.filenames, samples.images, strict=True)
    }
    return {
        kind: [
            named[n[8:]]
            if n.startswith("sklearn:")
            else Image.open(ROOT / "assets/images" / f"{n}.jpg").convert("RGB")
            for n in names
        ]
        for kind, names in PHOTOS.items()
    }


def sounds(folder: Path) -> dict[str, list[np.ndarray]]:
    import librosa

    loaded: dict[str, list[np.ndarray]] = {}
    for kind, names in SOUND_KINDS.items():
        loaded[kind] = []
        for name in names:
            if name == "espeak":
                for index, phrase in enumerate(PHRASES):
                    wav = folder / f"speech{index}.wav"
                    voice = ["en", "en+f3", "en-us", "en+m3"][index]
                    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), phrase], check=True)
                    loaded[kind].append(librosa.load(wav, sr=RATE)[0])
            else:
                loaded[kind].append(librosa.load(SOUNDS / f"{name}.oga", sr=RATE)[0])
    return loaded


def crops(photo, rng: np.random.Generator) -> list:
    from PIL import ImageEnhance, ImageOps

    width, height = photo.size
    frames = []
    for _ in range(STEPS):
        share = rng.uniform(0.5, 0.9)
        w, h = int(width * share), int(height * share)
        left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
        frame = photo.crop((left, top, left + w, top + h)).resize((224, 224))
        frame = ImageOps.mirror(frame) if rng.random() < 0.5 else frame
        frames.append(ImageEnhance.Brightness(frame).enhance(rng.uniform(0.8, 1.2)))
    return frames


def soundtrack(sound: np.ndarray | None, rng: np.random.Generator) -> list[np.ndarray]:
    """2 s: the sound looped with random gaps (or, for None, noise alone), cut into 4 windows."""
    length = int(SECONDS * RATE)
    track = np.zeros(0, np.float32)
    while sound is not None and track.size < length:
        gap = np.zeros(int(rng.uniform(0.02, 0.25) * RATE), np.float32)
        track = np.concatenate([track, gap, sound * rng.uniform(0.5, 1.0)])
    track = np.pad(track[:length], (0, max(0, length - track.size)))
    noise_level = rng.uniform(0.05, 0.3) if sound is None else 0.005
    track = track + noise_level * rng.standard_normal(length).astype(np.float32)
    return list(track.reshape(STEPS, -1))


def clip_kinds(clip_set: str, label: int, index: int, rng: np.random.Generator) -> tuple[int, int | None]:
    """(picture kind, sound kind or None for noise) of clip `index` of class `label`. The interaction set is
    balanced: a class's clips cycle through its 4 (picture kind, sound kind) combinations, so each one has
    the same number of clips (with a random kind per clip some had 3, others 9)."""
    if clip_set == "visual":
        return label, None
    if clip_set == "complementary":  # label = 2 × picture group + sound group
        return 2 * (label // 2) + int(rng.integers(2)), 2 * (label % 2) + int(rng.integers(2))
    picture = index % 4
    return picture, (label - picture) % 4


def encode_set(clip_set: str, per_class: int, registry, media) -> dict[str, np.ndarray]:
    pictures, audio = media
    rng = np.random.default_rng(SETS.index(clip_set))
    kinds_p, kinds_s = list(pictures), list(audio)
    frames, windows, targets = [], [], []
    for label in range(4):
        for index in range(per_class):
            p, s = clip_kinds(clip_set, label, index, rng)
            photo_list = pictures[kinds_p[p]]
            frames += crops(photo_list[rng.integers(len(photo_list))], rng)
            sound = None if s is None else audio[kinds_s[s]][rng.integers(len(audio[kinds_s[s]]))]
            windows += soundtrack(sound, rng)
            targets.append(label)
    visual = np.asarray(registry.get("embed").encode_images(frames), np.float32)
    sound_rows = np.asarray(registry.get("audio").encode_audio(windows), np.float32)
    n = len(targets)
    return {
        "visual": visual.reshape(n, STEPS, -1),
        "audio": sound_rows.reshape(n, STEPS, -1),
        "targets": np.asarray(targets),
    }


def cached_sets(per_class: int, registry, cache: Path) -> dict[str, dict[str, np.ndarray]]:
    cache.mkdir(parents=True, exist_ok=True)
    out, media = {}, None
    for clip_set in SETS:
        model = registry.serving_spec("embed").name.replace(" ", "_")
        path = cache / f"{clip_set}-{per_class}-{CACHE_VERSION}-{model}.npz"
        if not path.exists():
            if media is None:
                with tempfile.TemporaryDirectory() as tmp:
                    media = (photos(), sounds(Path(tmp)))
            np.savez(path, **encode_set(clip_set, per_class, registry, media))
        with np.load(path, allow_pickle=False) as arrays:
            out[clip_set] = {k: arrays[k] for k in arrays.files}
    return out


# -- one seed ---------------------------------------------------------------------------------------
def evaluate(clip_set: str, data: dict[str, np.ndarray], seed: int, registry) -> dict[str, dict[str, float]]:
    from sklearn.metrics import f1_score

    from mmdemo.finetune.fusion import STRATEGIES
    from mmdemo.finetune.fusion.batch import dims_of, standardisation
    from mmdemo.finetune.fusion.loop import LoopOptions
    from mmdemo.finetune.fusion.train import Clips, train_heads
    from mmdemo.finetune.runs import seed_everything, split
    from mmdemo.finetune.video_head import EncodedClip, predict_head, predict_zero_shot
    from mmdemo.serving.models.base import ModelInfo
    from mmdemo.tasks.video_classify import ClipFeatures

    labels = LABELS[clip_set]
    seed_everything(seed)
    n = len(data["targets"])
    times = [0.25 + 0.5 * i for i in range(STEPS)]
    clips = [
        EncodedClip(None, ClipFeatures(data["visual"][i], times, data["audio"][i], times))  # type: ignore[arg-type]
        for i in range(n)
    ]
    index = list(range(n))
    train_index, validation_index = split(index, 0.2, seed)  # by clip, as the run harness splits
    fit_index, stop_index = split(train_index, 0.25, seed)
    subset = lambda ids: Clips([clips[i].rows() for i in ids], [int(data["targets"][i]) for i in ids])  # noqa: E731
    dims = dims_of([clips[i].rows() for i in train_index], ("visual", "audio"))
    scaling = standardisation([clips[i].rows() for i in train_index], dims)
    info = ModelInfo(name="bench head", version="bench", profile="lite", source="bench")
    trained = train_heads(
        STRATEGIES,
        subset(fit_index),
        subset(stop_index),
        labels,
        dims,
        scaling,
        {},
        info,
        LoopOptions(seed=seed),
    )
    truth = [int(data["targets"][i]) for i in validation_index]
    validation = [clips[i] for i in validation_index]
    results = {}

    def score(predicted: list[int]) -> dict[str, float]:
        return {
            "accuracy": float(np.mean(np.asarray(predicted) == np.asarray(truth))),
            "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        }

    for strategy, run in trained.items():
        results[strategy] = score(predict_head(validation, labels, run.head))
        results[strategy] |= {"seconds": run.seconds, "parameters": run.parameters}
        if run.fitted is not None:
            results[strategy] |= {
                "best_epoch": run.fitted.best_epoch,
                "refit_epochs": run.fitted.refit_epochs,
            }
        if run.head.fusion_weights:
            results[strategy]["fusion_weights"] = run.head.fusion_weights
        if strategy == "ensemble":
            results[strategy]["member_weights"] = run.head.member_weights  # type: ignore[union-attr]
    results["zero-shot"] = score(predict_zero_shot(validation, labels, registry)) | {
        "seconds": 0.0,
        "parameters": 0,
    }
    return results


# -- report -----------------------------------------------------------------------------------------
def table(all_results: dict[str, list[dict[str, dict]]]) -> list[str]:
    lines = [
        "| set | strategy | accuracy (mean ± sd) | macro-F1 (mean ± sd) | train s (median) | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for clip_set, seeds in all_results.items():
        for strategy in seeds[0]:
            acc = [s[strategy]["accuracy"] for s in seeds]
            f1 = [s[strategy]["macro_f1"] for s in seeds]
            secs = float(np.median([s[strategy]["seconds"] for s in seeds]))
            lines.append(
                f"| {clip_set} | {strategy} | {np.mean(acc):.2f} ± {np.std(acc):.2f} | "
                f"{np.mean(f1):.2f} ± {np.std(f1):.2f} | {secs:.2f} | {seeds[0][strategy]['parameters']} |"
            )
    return lines


def ensemble_lines(all_results: dict[str, list[dict[str, dict]]]) -> list[str]:
    """Which members the ensemble averaged, and with what weights (mean over seeds)."""
    lines = []
    for clip_set, seeds in all_results.items():
        members = seeds[0]["ensemble"]["member_weights"]
        weights = ", ".join(
            f"{m} {np.mean([s['ensemble']['member_weights'][m] for s in seeds]):.2f}" for m in members
        )
        lines.append(f"- {clip_set}: ensemble of {', '.join(members)}; weights (mean over seeds) {weights}")
    return lines


def chart(all_results: dict[str, list[dict[str, dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(next(iter(all_results.values()))[0])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(strategies)
    for k, strategy in enumerate(strategies):
        means = [np.mean([s[strategy]["macro_f1"] for s in seeds]) for seeds in all_results.values()]
        spread = [np.std([s[strategy]["macro_f1"] for s in seeds]) for seeds in all_results.values()]
        x = np.arange(len(all_results)) + (k - (len(strategies) - 1) / 2) * width
        ax.bar(x, means, width, yerr=spread, capsize=2, label=strategy)
    ax.axhline(0.25, color="grey", linestyle=":", linewidth=1, label="chance (4 classes)")
    ax.set_xticks(np.arange(len(all_results)), list(all_results))
    ax.set_ylabel("validation macro-F1 (mean ± sd over seeds)")
    ax.set_ylim(0, 1.3)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(ncols=4, fontsize=8, loc="upper center")
    ax.set_title("mmdemo fusion strategies (lite features, real offline media)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-class", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/mmdemo/bench-fusion")
    args = parser.parse_args()
    if not SOUNDS.is_dir():
        print(
            "needs Debian's sound-theme-freedesktop (and espeak-ng): apt-get install -y ...", file=sys.stderr
        )
        return 2
    import torch

    torch.set_num_threads(args.threads)  # 2 shared cores: one thread each is faster than contention
    os.environ.setdefault("MMDEMO_DATA_DIR", tempfile.mkdtemp(prefix="mmdemo-bench-"))
    from mmdemo.serving.registry import Registry

    registry = Registry("lite", device="cpu")
    started = time.perf_counter()
    sets = cached_sets(args.clips_per_class, registry, args.cache)
    encoded_s = time.perf_counter() - started
    all_results = {s: [evaluate(s, data, seed, registry) for seed in args.seeds] for s, data in sets.items()}
    total_s = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    lines = table(all_results)
    print(
        f"{args.clips_per_class} clips per class × 4 classes per set; seeds {args.seeds}; torch threads "
        f"{torch.get_num_threads()}; features {encoded_s:.0f} s (cached after the first run), "
        f"total {total_s:.0f} s"
    )
    print("\n".join(lines))
    members = ensemble_lines(all_results)
    print("\n".join(members))
    (args.out / "fusion.md").write_text("\n".join([*lines, "", *members]) + "\n")
    (args.out / "fusion.json").write_text(json.dumps(all_results, indent=1))
    chart(all_results, args.out / "fusion.png")
    print(f"chart: {args.out / 'fusion.png'}")
    interaction = all_results["interaction"]
    mean_f1 = {
        s: float(np.mean([r[s]["macro_f1"] for r in interaction])) for s in interaction[0] if s != "zero-shot"
    }
    best = max(mean_f1, key=mean_f1.__getitem__)
    print(f"interaction set: best {best} macro-F1 {mean_f1[best]:.2f} vs weighted {mean_f1['weighted']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
