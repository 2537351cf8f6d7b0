"""Image embedding throughput: the registry's batched path against a naive one-image-at-a-time loop.

Same model (the active profile's `embed` adapter, loaded once through the registry), same images, same run.
The batched path is what ingestion uses (`mmdemo.search.retrieval.BATCH_SIZE` images per call).

    python bench/embed.py                   # lite profile, the sample photos repeated to 64 images
    python bench/embed.py --profile tiny --images 128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from mmdemo.cli import format_table
from mmdemo.media.files import load_image
from mmdemo.search.retrieval import BATCH_SIZE, SAMPLES_DIR
from mmdemo.serving.models.base import batched
from mmdemo.serving.registry import Registry


def timed(function, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="lite")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs of each path")
    args = parser.parse_args()

    import torch

    photos = [load_image(path).image for path in sorted(SAMPLES_DIR.glob("*.jpg"))]
    images = [photos[i % len(photos)] for i in range(args.images)]
    started = time.perf_counter()
    embedder = Registry(args.profile, device="cpu").get("embed")
    load_seconds = time.perf_counter() - started
    embedder.encode_images(images[:2])  # warm-up

    def naive() -> None:
        for image in images:
            embedder.encode_images([image])

    def batched_path() -> None:
        for batch in batched(images, args.batch_size):
            embedder.encode_images(batch)

    naive_s = timed(naive, args.repeats)
    batched_s = timed(batched_path, args.repeats)
    print(
        f"model: {embedder.info.name} ({args.profile}), loaded in {load_seconds:.1f} s; "
        f"{len(images)} images; torch threads: {torch.get_num_threads()}; best of {args.repeats}"
    )
    rows = [
        ["one at a time (baseline)", 1, f"{naive_s:.2f}", f"{len(images) / naive_s:.1f}", "1.00×"],
        [
            "registry, batched",
            args.batch_size,
            f"{batched_s:.2f}",
            f"{len(images) / batched_s:.1f}",
            f"{naive_s / batched_s:.2f}×",
        ],
    ]
    print(format_table(["path", "batch", "seconds", "images/s", "speed-up"], rows))


if __name__ == "__main__":
    main()
