"""How classifying a clip scales with its length, at a fixed number of sampled frames.

Generates low-resolution clips of 10 s, 60 s and 600 s (25 fps, a keyframe every 2 s as phones and
streaming encoders write them, with a tone as sound), then times, for each:
  - sampling: `mmdemo.media.video.sample_clip` (one seek per frame and per sound window),
  - classify: `classify_video` end to end (models already loaded), not stored,
  - baseline: decoding every frame from start to end, the naive way.
Sampling should stay nearly flat with length; the baseline grows with it.

    python bench/video.py [--frames 8] [--profile lite] [--lengths 10 60 600]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from mmdemo.media.video import sample_clip, write_clip
from mmdemo.serving.registry import Registry
from mmdemo.tasks.video_classify import DEMO_LABELS, classify_video

FPS = 25
SIZE = (160, 120)
SAMPLE_RATE = 22_050


def decode_every_frame(path: Path) -> int:
    """The naive way, and the baseline: decode a clip's video from start to end."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def make_clip(path: Path, seconds: int) -> Path:
    rng = np.random.default_rng(seconds)
    base = rng.integers(0, 255, (SIZE[1], SIZE[0] * 2, 3), dtype=np.uint8)
    frames = [
        np.ascontiguousarray(base[:, i % SIZE[0] : i % SIZE[0] + SIZE[0]]) for i in range(seconds * FPS)
    ]
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return write_clip(path, frames, FPS, tone, SAMPLE_RATE, gop=2 * FPS)


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) if repeats > 1 else statistics.fmean(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--profile", default="lite", choices=["lite", "tiny", "full"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 60, 600])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    registry = Registry(args.profile, device="cpu")
    audio_rate = int(registry.get("audio").sample_rate)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        clips = {}
        for seconds in args.lengths:
            started = time.perf_counter()
            clips[seconds] = make_clip(Path(folder) / f"clip-{seconds}s.mp4", seconds)
            print(f"made a {seconds} s clip in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        classify_video(
            clips[args.lengths[0]], DEMO_LABELS, n_frames=args.frames, registry=registry, record=False
        )
        for seconds, path in clips.items():
            sampling = best_of(args.repeats, lambda p=path: sample_clip(p, args.frames, audio_rate))
            classify = best_of(
                args.repeats,
                lambda p=path: classify_video(
                    p, DEMO_LABELS, n_frames=args.frames, registry=registry, record=False
                ),
            )
            baseline = best_of(args.repeats, lambda p=path: decode_every_frame(p))
            rows.append((seconds, path.stat().st_size / 1024**2, sampling, classify, baseline))

    print(
        f"\nprofile {args.profile}, {args.frames} frames + {args.frames} sound windows per clip, "
        f"{SIZE[0]}x{SIZE[1]} @ {FPS} fps, keyframe every 2 s; best of {args.repeats}\n"
    )
    header = ("clip", "MB", "sample (seek) s", "classify s", "baseline: decode all s", "baseline ÷ sample")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for seconds, size, sampling, classify, baseline in rows:
        print(
            f"{seconds} s | {size:.1f} | {sampling:.3f} | {classify:.3f} | {baseline:.3f} | "
            f"{baseline / sampling:.1f}x"
        )
    first, last = rows[0], rows[-1]
    print(
        f"\n{last[0] // first[0]}x longer clip: sampling took {last[2] / first[2]:.2f}x as long, "
        f"the decode-everything baseline {last[4] / first[4]:.1f}x"
    )


if __name__ == "__main__":
    main()
