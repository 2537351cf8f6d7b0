"""Batched captioning against one image at a time, through the adapter, in the same run.

    python bench/caption_batch.py [--profile tiny] [--images 8] [--repeats 3]

Prints the best of `--repeats` wall times for each way; batching should never be slower.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from mmdemo.cli import format_table
from mmdemo.serving.models.base import CaptionOptions
from mmdemo.serving.registry import Registry

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny", choices=("tiny", "lite", "full"))
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(ASSETS.glob("*.jpg"))[: args.images]
    images = [Image.open(path).convert("RGB") for path in paths]
    captioner = Registry(args.profile, device="cpu").get("caption")
    options = CaptionOptions(strategy="beam", num_beams=3, max_length=20)
    captioner.caption(images[:1], options)  # warm up
    batched = best_of(args.repeats, lambda: captioner.caption(images, options))
    single = best_of(args.repeats, lambda: [captioner.caption([image], options) for image in images])
    rows = [
        [
            "one call per image (baseline)",
            len(images),
            f"{single:.3f}",
            f"{single / len(images) * 1000:.1f}",
            "1.00x",
        ],
        [
            "one batched call",
            len(images),
            f"{batched:.3f}",
            f"{batched / len(images) * 1000:.1f}",
            f"{single / batched:.2f}x",
        ],
    ]
    print(f"captioner: {captioner.info.name} ({args.profile}, cpu)")
    print(format_table(["way", "images", "best s", "ms/image", "speed-up"], rows))


if __name__ == "__main__":
    main()
