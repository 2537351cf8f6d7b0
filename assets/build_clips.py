"""Rebuild assets/videos/: short clips with sound, from the sample photos plus real sounds.

Each clip pans and zooms across one photo in assets/images/ (so there is real motion) and carries a
sound: a recording from Debian's freedesktop sound theme, or speech synthesised by espeak-ng.
Dev-only: `apt-get install sound-theme-freedesktop espeak-ng && python assets/build_clips.py`.
The MP4 files are committed, so the app and the tests never need these packages.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from PIL import Image

from mmdemo.media.video import write_clip

ROOT = Path(__file__).parent
IMAGES = ROOT / "images"
OUT = ROOT / "videos"
SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
SIZE = (320, 240)
FPS = 15
SAMPLE_RATE = 22_050


@dataclass(frozen=True)
class Clip:
    name: str
    image: str
    seconds: float
    start_box: tuple[float, float, float, float]  # left, top, right, bottom as fractions of the photo
    end_box: tuple[float, float, float, float]
    sound_file: str | None = None  # a file of the freedesktop theme
    speech: str | None = None  # or words for espeak-ng


WHOLE = (0.0, 0.0, 1.0, 1.0)
CLIPS = [
    Clip("coffee", "coffee.jpg", 5, WHOLE, (0.2, 0.15, 0.8, 0.75), speech="Fresh coffee, ready to drink."),
    Clip("clock", "clock.jpg", 5, (0.25, 0.25, 0.75, 0.75), WHOLE, sound_file="alarm-clock-elapsed.oga"),
    Clip(
        "rocket",
        "rocket.jpg",
        5,
        (0.3, 0.5, 0.7, 1.0),
        (0.1, 0, 0.9, 0.8),
        speech="Three. Two. One. Lift off!",
    ),
    Clip("camera", "cameraman.jpg", 4, WHOLE, (0.15, 0.05, 0.75, 0.65), sound_file="camera-shutter.oga"),
]


def ken_burns(photo: Image.Image, clip: Clip) -> list[np.ndarray]:
    """Frames that move the crop box from `start_box` to `end_box` (kept at the output aspect ratio)."""
    count = round(clip.seconds * FPS)
    aspect = SIZE[0] / SIZE[1]
    frames = []
    for index in range(count):
        t = index / max(1, count - 1)
        eased = t * t * (3 - 2 * t)
        box = [a + (b - a) * eased for a, b in zip(clip.start_box, clip.end_box, strict=True)]
        left, top, right, bottom = (
            box[0] * photo.width,
            box[1] * photo.height,
            box[2] * photo.width,
            box[3] * photo.height,
        )
        width, height = right - left, bottom - top
        if width / height > aspect:  # too wide: narrow around the centre
            centre, width = (left + right) / 2, height * aspect
            left, right = centre - width / 2, centre + width / 2
        else:
            centre, height = (top + bottom) / 2, width / aspect
            top, bottom = centre - height / 2, centre + height / 2
        frame = photo.resize(SIZE, Image.Resampling.BILINEAR, box=(left, top, right, bottom))
        frames.append(np.asarray(frame))
    return frames


def sound_for(clip: Clip) -> np.ndarray:
    if clip.sound_file:
        samples, _ = librosa.load(SOUNDS / clip.sound_file, sr=SAMPLE_RATE, mono=True)
    else:
        with tempfile.TemporaryDirectory() as folder:
            wav = Path(folder) / "speech.wav"
            subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), clip.speech or ""], check=True)
            samples, _ = librosa.load(wav, sr=SAMPLE_RATE, mono=True)
    length = round(clip.seconds * SAMPLE_RATE)
    start = round(0.3 * SAMPLE_RATE)  # a moment of quiet first
    track = np.zeros(length, np.float32)
    take = samples[: length - start]
    track[start : start + take.size] = take
    return 0.8 * track / max(1e-6, float(np.abs(track).max()))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for clip in CLIPS:
        photo = Image.open(IMAGES / clip.image).convert("RGB")
        path = write_clip(OUT / f"{clip.name}.mp4", ken_burns(photo, clip), FPS, sound_for(clip), SAMPLE_RATE)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
