"""Image embedding throughput: the registry's batched path against a naive one-image-at-a-time loop.

Same model, same images, same run; the paths take turns (`--repeats` rounds, each one's fastest run kept),
so a shared machine's slower spells fall on all of them alike. The batched path is what ingestion uses
(`BATCH_SIZE` images per call); "before" rows re-run the previous preprocessing (torchvision transforms
image by image, NCHW) on the same model, so the table shows what the vectorised preprocessing and
channels_last bought. With `--int8` (the
default for `tiny` and `--arch`) the model is also quantised as `MMDEMO_QUANTIZE=int8` does it and the int8
embeddings are compared with the fp32 ones (cosine, per image).

    python bench/embed.py                       # lite profile, the sample photos repeated to 64 images
    python bench/embed.py --profile tiny --images 128
    python bench/embed.py --arch ViT-B-32       # open_clip architecture with random weights (full's FLOPs)

The last line reads `batched speed-up: X.XX×`.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import numpy as np

from mmdemo.cli.common import format_table
from mmdemo.media.files import load_image
from mmdemo.search.retrieval import BATCH_SIZE, SAMPLES_DIR
from mmdemo.serving.models.base import ModelInfo, batched
from mmdemo.serving.quantize import quantize_int8
from mmdemo.serving.registry import Registry


def best_of(functions: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """The fastest of `repeats` runs of each function, the functions taking turns, so a slower spell of a
    shared machine falls on all of them alike."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def random_openclip(arch: str) -> Any:
    import open_clip
    import torch

    from mmdemo.serving.models.openclip import OpenClipEmbedder

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    info = ModelInfo(name=f"open_clip {arch} (random weights)", version="bench", profile="bench", source="")
    return OpenClipEmbedder(model, preprocess, open_clip.get_tokenizer(arch), info, torch.float32)


def int8_copy(embedder: Any) -> Any:
    """The embedder with its torch models quantised the way the registry does for MMDEMO_QUANTIZE=int8."""
    quantized = copy.deepcopy(embedder)
    done = quantize_int8(quantized)
    for part in ("classifier", "text"):  # ConSE: its classifier and text encoder are models of their own
        if hasattr(quantized, part):
            done = quantize_int8(getattr(quantized, part)) or done
    if not done:
        raise SystemExit(f"{embedder.info.name} has no Linear layers to quantise")
    return quantized


def float32_copy(embedder: Any) -> Any | None:
    """The embedder with its image classifier back in float32, where the registry chose bfloat16
    (`MMDEMO_CPU_BF16`: CPUs with native bf16); None where it runs in float32 already."""
    import torch

    classifier = getattr(embedder, "classifier", None)
    if classifier is None or classifier.dtype == torch.float32:
        return None
    copied = copy.copy(embedder)
    copied.classifier = copy.copy(classifier)
    copied.classifier.model = copy.deepcopy(classifier.model).float()
    copied.classifier.dtype = torch.float32
    return copied


def embedder_dtype(embedder: Any) -> str:
    classifier = getattr(embedder, "classifier", None)
    return str(getattr(classifier, "dtype", getattr(embedder, "dtype", "float32"))).replace("torch.", "")


def legacy_encode(embedder: Any) -> Callable[[Sequence[Any]], Any] | None:
    """The previous batched path (torchvision transforms per image, NCHW), where the adapter had one."""
    import torch
    from torchvision import transforms

    classifier = getattr(embedder, "classifier", None)
    if classifier is None:
        return None
    steps = [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
    preprocess = transforms.Compose([*steps, transforms.Normalize([0.5] * 3, [0.5] * 3)])
    model = copy.deepcopy(classifier.model).float().to(memory_format=torch.contiguous_format)

    @torch.inference_mode()
    def encode(images: Sequence[Any]) -> Any:
        pixels = torch.stack([preprocess(image) for image in images])
        return embedder.embed_probabilities(model(pixels).float().softmax(-1).numpy())

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="lite")
    parser.add_argument("--arch", help="an open_clip architecture with random weights, e.g. ViT-B-32")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=5, help="best of N runs of each path")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, help="also time an int8 copy")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    photos = [load_image(path).image for path in sorted(SAMPLES_DIR.glob("*.jpg"))]
    images = [photos[i % len(photos)] for i in range(args.images)]
    started = time.perf_counter()
    embedder = random_openclip(args.arch) if args.arch else Registry(args.profile, device="cpu").get("embed")
    load_seconds = time.perf_counter() - started
    embedder.encode_images(images[:2])  # warm-up
    with_int8 = args.int8 if args.int8 is not None else bool(args.arch or args.profile == "tiny")
    print(
        f"model: {embedder.info.name} ({args.arch or args.profile}), loaded in {load_seconds:.1f} s; "
        f"{len(images)} images; torch threads: {torch.get_num_threads()}; best of {args.repeats}"
    )

    def run_batched(encode: Callable[[Sequence[Any]], Any]) -> Callable[[], None]:
        return lambda: [encode(batch) for batch in batched(images, args.batch_size)] and None

    if with_int8:
        quantized = int8_copy(embedder)
        quantized.encode_images(images[:2])
        timed = {"fp32": run_batched(embedder.encode_images), "int8": run_batched(quantized.encode_images)}
        fp32_s, int8_s = best_of(timed, args.repeats).values()
        reference, approximate = embedder.encode_images(images), quantized.encode_images(images)
        cosine = np.sum(reference * approximate, axis=1)
        rows = [
            [
                "fp32 (baseline)",
                args.batch_size,
                f"{fp32_s:.2f}",
                f"{len(images) / fp32_s:.1f}",
                "1.00×",
                "1.0000",
            ],
            [
                "int8 dynamic (MMDEMO_QUANTIZE=int8)",
                args.batch_size,
                f"{int8_s:.2f}",
                f"{len(images) / int8_s:.1f}",
                f"{fp32_s / int8_s:.2f}×",
                f"{cosine.mean():.4f} (min {cosine.min():.4f})",
            ],
        ]
        print(format_table(["precision", "batch", "seconds", "images/s", "speed-up", "cosine vs fp32"], rows))
        print()

    paths: dict[str, Callable[[], Any]] = {
        "naive": lambda: [embedder.encode_images([image]) for image in images] and None
    }
    if (legacy := legacy_encode(embedder)) is not None:
        legacy(images[:2])
        paths["legacy"] = run_batched(legacy)
    if (float32 := float32_copy(embedder)) is not None:
        float32.encode_images(images[:2])
        paths["float32"] = run_batched(float32.encode_images)
    paths["batched"] = run_batched(embedder.encode_images)
    seconds = best_of(paths, args.repeats)
    naive_s, batched_s = seconds["naive"], seconds["batched"]
    labels = {
        "naive": ("one at a time (baseline)", 1),
        "legacy": ("batched, per-image torchvision preprocessing (before)", args.batch_size),
        "float32": ("registry, batched, float32 (MMDEMO_CPU_BF16=0)", args.batch_size),
        "batched": (f"registry, batched, {embedder_dtype(embedder)}", args.batch_size),
    }
    rows = [
        [*labels[name], f"{took:.2f}", f"{len(images) / took:.1f}", f"{naive_s / took:.2f}×"]
        for name, took in seconds.items()
    ]
    print(format_table(["path", "batch", "seconds", "images/s", "speed-up"], rows))
    if float32 is not None:
        cosine = np.sum(embedder.encode_images(images) * float32.encode_images(images), axis=1)
        agreement = f"{cosine.mean():.4f} (min {cosine.min():.4f})"
        print(f"{embedder_dtype(embedder)} embeddings' cosine to float32: {agreement}")
    print(f"batched speed-up: {naive_s / batched_s:.2f}×")


if __name__ == "__main__":
    main()
