"""Active learning: held-out accuracy against labels used, for the queue's random, uncertainty and diverse
orders, in one run.

A labelled set from real photos that ship offline (`assets/images/` and scikit-learn's sample photos),
grouped into 8 classes and augmented (random crops, flips, colour jitter) into 60 items per class. Each
seed splits it (stratified) into a pool of 40 and a held-out set of 20 per class. A simulated expert
labels the pool in queue order, a batch at a time; after every batch the task's head is retrained
(logistic regression on the frozen lite-profile embeddings, the features the video head reads) and
scored on the held-out set.
- random: a seeded shuffle;
- uncertainty: the queue's score (`tasks.uncertainty.margin_uncertainty`, 1 − margin of the two best
  label scores), from the zero-shot labels before the first batch, then from the retrained head;
- diverse: the queue's k-center greedy (`labeling.ordering.k_center_greedy`) over the embeddings.

    python bench/active_learning.py                 # 5 seeds, batches of 8: bench/results/active_learning.png
    python bench/active_learning.py --seeds 3 --batch 10
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from mmdemo.cli import format_table
from mmdemo.labeling.ordering import k_center_greedy
from mmdemo.tasks.uncertainty import margin_uncertainty

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "assets" / "images"
# class -> its photos (assets/images stems; "sklearn:NAME" for scikit-learn's sample images)
CLASSES: dict[str, tuple[str, ...]] = {
    "space": ("galaxies_closeup", "hubble_deep_field", "moon"),
    "microscopy": ("cell_microscopy", "immunohistochemistry", "microaneurysms", "retina"),
    "texture": ("brick_wall", "grass", "gravel"),
    "people": ("astronaut", "astronaut_portrait", "cameraman"),
    "building": ("chinese_temple", "temple_roof", "sklearn:china.jpg"),
    "text": ("printed_page", "text_sign"),
    "flower": ("flower", "flower_closeup", "sklearn:flower.jpg"),
    "object": ("cat", "horse_silhouette", "coffee", "clock", "coins", "motorcycle", "rocket"),
}
PROMPTS = {  # the zero-shot label texts the served model scores before any head is trained
    "space": "a photo of space, stars or the moon",
    "microscopy": "a microscope image of cells",
    "texture": "a close-up texture",
    "people": "a photo of a person",
    "building": "a photo of a building or temple",
    "text": "a photo of printed text",
    "flower": "a photo of a flower",
    "object": "a photo of an object or animal",
}
ORDERS = ("random", "uncertainty", "diverse")


def photos() -> dict[str, list[Image.Image]]:
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    by_name = {
        Path(name).name: Image.fromarray(image)
        for name, image in zip(samples.filenames, samples.images, strict=True)
    }
    found: dict[str, list[Image.Image]] = {}
    for label, names in CLASSES.items():
        found[label] = [
            by_name[name.split(":", 1)[1]]
            if name.startswith("sklearn:")
            else Image.open(PHOTOS / f"{name}.jpg")
            for name in names
        ]
        found[label] = [image.convert("RGB") for image in found[label]]
    return found


def augment(image: Image.Image, rng: np.random.Generator, side: int = 224) -> Image.Image:
    """A random crop (15–70 % of the area, aspect 3:4–4:3), a flip, colour jitter, resized to `side`."""
    width, height = image.size
    area = rng.uniform(0.15, 0.7) * width * height
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    w = int(min(width, np.sqrt(area * aspect)))
    h = int(min(height, np.sqrt(area / aspect)))
    left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    out = image.crop((left, top, left + w, top + h)).resize((side, side), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(float(rng.uniform(0.6, 1.4)))
    return out


def dataset(per_class: int, cache: Path, profile: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Embeddings (cached), integer labels, the zero-shot label scores, and the embedder's name."""
    from mmdemo.serving.registry import Registry

    key = hashlib.sha256(f"{sorted(CLASSES.items())}|{per_class}|{profile}|v1".encode()).hexdigest()[:12]
    path = cache / f"active_learning_{key}.npz"
    if path.is_file():
        saved = np.load(path)
        return saved["x"], saved["y"], saved["zero_shot"], str(saved["model"])
    embedder = Registry(profile, device="cpu").get("embed")
    rng = np.random.default_rng(0)
    images, labels = [], []
    for index, sources in enumerate(photos().values()):
        for item in range(per_class):
            images.append(augment(sources[item % len(sources)], rng))
            labels.append(index)
    x = np.concatenate([embedder.encode_images(images[i : i + 32]) for i in range(0, len(images), 32)])
    texts = embedder.encode_texts([PROMPTS[label] for label in CLASSES])
    sims = _unit(x) @ _unit(np.asarray(texts)).T
    zero_shot = _softmax(sims / 0.05)
    model = f"{embedder.info.name} ({profile})"
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=np.asarray(labels), zero_shot=zero_shot, model=model)
    return x, np.asarray(labels), zero_shot, model


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def head():  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))


def scores_of(model, x: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Label scores over every class (a class the head has not seen yet scores 0)."""
    full = np.zeros((len(x), n_classes))
    full[:, classes] = model.predict_proba(x)
    return full


def curve(
    order: str,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    zs_pool: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    zs_test: np.ndarray,
    batch: int,
    seed: int,
) -> list[float]:
    """Held-out accuracy after each batch of labels (index 0: zero-shot, before any label)."""
    from sklearn.metrics import accuracy_score

    n_classes = zs_pool.shape[1]
    labeled: list[int] = []
    accuracy = [accuracy_score(y_test, zs_test.argmax(axis=1))]
    fixed = (
        list(np.random.default_rng(seed).permutation(len(y_pool)))
        if order == "random"
        else k_center_greedy(x_pool)
        if order == "diverse"
        else None
    )
    pool_scores = zs_pool
    while len(labeled) < len(y_pool):
        if fixed is not None:
            chosen = fixed[len(labeled) : len(labeled) + batch]
        else:  # the queue: highest stored uncertainty first, by position on a tie
            left = np.setdiff1d(np.arange(len(y_pool)), labeled)
            unsure = np.array([margin_uncertainty(list(pool_scores[i])) for i in left])
            chosen = list(left[np.argsort(-unsure, kind="stable")[:batch]])
        labeled.extend(int(i) for i in chosen)
        classes = np.unique(y_pool[labeled])
        if len(classes) < 2:  # one class seen: the head cannot train yet, the zero-shot model serves
            accuracy.append(accuracy[-1])
            continue
        model = head().fit(x_pool[labeled], y_pool[labeled])
        accuracy.append(accuracy_score(y_test, model.predict(x_test)))
        pool_scores = scores_of(model, x_pool, classes, n_classes)
    return accuracy


def labels_to_reach(mean: np.ndarray, target: float, batch: int, pool: int) -> int:
    reached = np.flatnonzero(mean >= target - 1e-9)
    return min(int(reached[0]) * batch, pool) if len(reached) else pool


def plot(sizes: list[int], curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for order, runs in curves.items():
        mean, std = runs.mean(axis=0), runs.std(axis=0)
        ax.plot(sizes, mean, label=order, marker=".")
        ax.fill_between(sizes, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("labels used")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="lite")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="labels per batch (a retrain after each)")
    parser.add_argument("--per-class", type=int, default=60, help="augmented items per class (⅓ held out)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the PNG goes")
    parser.add_argument("--cache", type=Path, default=None, help="embeddings cache (default: mmdemo's cache)")
    args = parser.parse_args()
    from sklearn.model_selection import train_test_split

    started = time.perf_counter()
    from mmdemo import config

    x, y, zero_shot, model = dataset(args.per_class, args.cache or config.cache_dir() / "bench", args.profile)
    embedded_s = time.perf_counter() - started
    curves: dict[str, list[list[float]]] = {order: [] for order in ORDERS}
    for seed in range(args.seeds):
        pool, test = train_test_split(np.arange(len(y)), test_size=1 / 3, stratify=y, random_state=seed)
        for order in ORDERS:
            curves[order].append(
                curve(
                    order,
                    x[pool],
                    y[pool],
                    zero_shot[pool],
                    x[test],
                    y[test],
                    zero_shot[test],
                    args.batch,
                    seed,
                )
            )
    runs = {order: np.asarray(values) for order, values in curves.items()}
    pool_size = len(pool)
    sizes = [min(i * args.batch, pool_size) for i in range(runs["random"].shape[1])]
    means = {order: r.mean(axis=0) for order, r in runs.items()}
    final = float(means["random"][-1])
    needed = {order: labels_to_reach(means[order], final, args.batch, pool_size) for order in ORDERS}

    print(
        f"{len(CLASSES)} classes × {args.per_class} items ({pool_size} pool, {len(y) - pool_size} held out), "
        f"features: {model}, {x.shape[1]}-d; head: logistic regression; batch {args.batch}; "
        f"{args.seeds} seeds; features in {embedded_s:.0f} s ({_threads()} torch threads), "
        f"total {time.perf_counter() - started:.0f} s"
    )
    marks = sorted({s for s in sizes if s % (args.batch * 3) == 0 or s in (8, 16, 24)} | {pool_size})
    rows = [
        [
            str(s),
            *(f"{means[o][sizes.index(s)]:.3f} ± {runs[o][:, sizes.index(s)].std():.3f}" for o in ORDERS),
        ]
        for s in marks
        if s in sizes
    ]
    print(format_table(["labels", *(f"{o} (mean ± sd)" for o in ORDERS)], rows))
    print(
        format_table(
            ["order", f"labels to reach {final:.3f}", "% of random's"],
            [[o, str(needed[o]), f"{100 * needed[o] / max(needed['random'], 1):.0f}%"] for o in ORDERS],
        )
    )
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "active_learning.png"
    plot(sizes, runs, png, f"{len(CLASSES)} classes, {args.seeds} seeds, batches of {args.batch} ({model})")
    print(f"learning curve: {png}")
    share = round(100 * needed["uncertainty"] / max(needed["random"], 1))
    print(f"uncertainty needs {share}% of the labels random order needs to reach its final accuracy")


if __name__ == "__main__":
    main()
