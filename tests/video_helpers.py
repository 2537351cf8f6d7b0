"""Clips made in the tests with PyAV: frames whose grey level encodes their index, plus a sine tone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mmdemo.media.video import write_clip

TONE_HZ = 440.0
SAMPLE_RATE = 22_050


def tone(seconds: float, hz: float = TONE_HZ, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(round(seconds * sample_rate)) / sample_rate)).astype(
        np.float32
    )


def grey_frames(count: int, size: tuple[int, int] = (64, 48), step: int = 5) -> list[np.ndarray]:
    """Frame i is grey level i*step, with a red band down its left edge (to see rotation)."""
    frames = []
    for index in range(count):
        pixels = np.full((size[1], size[0], 3), (index * step) % 256, np.uint8)
        pixels[:, :10] = (255, 0, 0)
        frames.append(pixels)
    return frames


def grey_level(image: Image.Image) -> int:
    """The grey level of a frame away from its red band."""
    pixels = np.asarray(image.convert("RGB"))
    return int(np.median(pixels[:, pixels.shape[1] // 2 :, 1]))


def photo_frames(photo: Image.Image, count: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """A slow pan across a photo: real motion, same subject throughout."""
    base = np.asarray(photo.convert("RGB").resize((size[0] + count, size[1])))
    return [base[:, index : index + size[0]] for index in range(count)]


def clip_with_tone(path: Path, seconds: float = 5.0, fps: int = 10, **options) -> Path:
    return write_clip(path, grey_frames(round(seconds * fps)), fps, tone(seconds), SAMPLE_RATE, **options)
