"""Loading user media: images now, video and audio beside it.

Every failure is a `MediaError` with a clear message."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES = 50 * 1024**2
MAX_DECODE_PIXELS = 100_000_000  # refuse decompression bombs before decoding
MAX_SIDE = 2048  # larger images are downscaled, with a note
EXIF_ORIENTATION = 0x0112
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".ogv", ".mpg", ".mpeg", ".3gp"}

ImageSource = str | Path | bytes | Image.Image | np.ndarray

# Pillow's own guard, set once for the process: it warns past this many pixels and refuses past twice as
# many, at open time. mmdemo refuses past MAX_DECODE_PIXELS itself, after reading only the header.
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS


class MediaError(ValueError):
    """Input that cannot be used, with a message meant for the person who gave it."""


@dataclass
class LoadedImage:
    image: Image.Image
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_once(target: Path, write: Callable[[Path], object]) -> Path:
    """Write `target` unless it exists, through a temporary name: a concurrent request, or a crash halfway,
    never leaves half a file under the real name."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        write(partial)
        os.replace(partial, target)
    return target


def keep_file(path: str | Path, folder: Path) -> Path:
    """A copy of a user's file (uploads are temporary) at `folder/<content hash>/<its name>`, made once:
    the same content under the same name is the same copy, and it keeps the name the user knows."""
    path = Path(path)
    return write_once(folder / file_hash(path)[:16] / path.name, lambda target: shutil.copyfile(path, target))


def check_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> Path:
    """The path, once it is known to be an existing, non-empty file no larger than `max_bytes`."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path.name}: file not found")
    if path.is_dir():
        raise MediaError(f"{path.name}: is a folder, not a file")
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"{path.name}: the file is empty")
    if size > max_bytes:
        raise MediaError(
            f"{path.name}: {size / 1024**2:.0f} MB is over the {max_bytes / 1024**2:.0f} MB limit"
        )
    return path


def read_bytes(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    return check_file(path, max_bytes).read_bytes()


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_DECODE_PIXELS:
            raise MediaError(_too_many_pixels(name, image.width, image.height))
        image.load()
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaError(f"{name}: over the {MAX_DECODE_PIXELS // 1_000_000} megapixel limit") from None
    except UnidentifiedImageError:
        raise MediaError(f"{name}: not an image, or an image format that cannot be read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(f"{name}: the image is corrupt or truncated ({error})") from None
    return image


def _too_many_pixels(name: str, width: int, height: int) -> str:
    return f"{name}: {width}×{height} pixels is over the {MAX_DECODE_PIXELS // 1_000_000} megapixel limit"


def to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and flatten any alpha channel onto white (an upright RGB image as it is)."""
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(source: ImageSource | None, max_side: int = MAX_SIDE) -> LoadedImage:
    """Any image the UI, CLI or a test hands us, as an RGB PIL image no larger than `max_side`."""
    if source is None:
        raise MediaError("no image given: upload one, or pick an example")
    path = None
    if isinstance(source, Image.Image):
        image, name = source, "image"
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise MediaError(f"image array has shape {source.shape}; expected height × width (× channels)")
        image, name = Image.fromarray(np.asarray(source).astype(np.uint8)), "image"
    elif isinstance(source, bytes):
        if not source:
            raise MediaError("the uploaded file is empty")
        image, name = _decode(source, "upload"), "upload"
    elif isinstance(source, str | Path):
        path = Path(source)
        image, name = _decode(read_bytes(path), path.name), path.name
    else:
        raise MediaError(f"cannot read an image from a {type(source).__name__}")
    image = to_rgb(image)
    notes = []
    if max(image.size) > max_side:
        original = image.size
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        notes.append(f"{name} was {original[0]}×{original[1]}; downscaled to {image.width}×{image.height}")
    return LoadedImage(image=image, notes=notes, path=path)


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
