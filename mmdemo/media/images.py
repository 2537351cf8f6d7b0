"""Images a user hands a model: checked, loaded, and remembered in the store as media.

Uploads live in temporary folders (Gradio's cache, a CLI user's downloads), so the bytes are kept beside
the database under their content hash: a stored prediction or correction can always find its image again.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mmdemo.data import MediaItem, Store
from mmdemo.media.files import (
    ImageSource,
    MediaError,
    content_hash,
    file_hash,
    keep_file,
    load_image,
    write_once,
)

MEDIA_FOLDER = "media"


@dataclass
class ImageInput:
    image: Image.Image  # RGB, downscaled to what the models take
    media: MediaItem
    name: str  # what to call it in messages and outputs (the file name, or "image")
    path: Path | None = None  # the file it was read from, if any
    notes: list[str] = field(default_factory=list)


def media_folder(store: Store) -> Path:
    return store.path.parent / MEDIA_FOLDER


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def remember_image(source: ImageSource | None, store: Store) -> ImageInput:
    """Load `source` (path, bytes, PIL image or array) and record it as media; raises `MediaError`."""
    loaded = load_image(source)
    if loaded.path is not None:
        kept = keep_file(loaded.path, media_folder(store))
        name = loaded.path.name
        media = store.add_media(
            kept, "image", width=loaded.image.width, height=loaded.image.height, name=name
        )
    else:
        data = _png_bytes(loaded.image)
        kept = write_once(
            media_folder(store) / f"{content_hash(data)}.png", lambda target: target.write_bytes(data)
        )
        name = "image"
        media = store.add_media(
            kept, "image", data=data, width=loaded.image.width, height=loaded.image.height
        )
    return ImageInput(image=loaded.image, media=media, name=name, path=loaded.path, notes=list(loaded.notes))


def remember_images(
    sources: Sequence[ImageSource], store: Store, *, skip_bad: bool = False
) -> tuple[list[ImageInput], list[str]]:
    """Every usable image, and a message per unusable one (`skip_bad`), else the first error raises."""
    if not sources:
        raise MediaError("no image given: upload one, or pick an example")
    inputs: list[ImageInput] = []
    problems: list[str] = []
    for source in sources:
        try:
            inputs.append(remember_image(source, store))
        except MediaError as error:
            if not skip_bad:
                raise
            problems.append(str(error))
    if not inputs:
        raise MediaError("no usable image: " + "; ".join(problems))
    return inputs, problems


def media_id_of(source: ImageSource | None) -> str | None:
    """The media id `remember_image` gives (or gave) this source, without storing it; None if unusable."""
    if isinstance(source, str | Path) and Path(source).is_file():
        return file_hash(source)
    try:
        loaded = load_image(source)
    except MediaError:
        return None
    return file_hash(loaded.path) if loaded.path is not None else content_hash(_png_bytes(loaded.image))
