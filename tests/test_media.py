from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from mmdemo.media.files import MAX_DECODE_PIXELS, MAX_SIDE, MediaError, load_image


def test_rgb_from_every_kind_of_source(tmp_path, sample_images):
    path = tmp_path / "cat.png"
    sample_images["cat"].convert("RGBA").save(path)
    for source in (
        path,
        str(path),
        path.read_bytes(),
        sample_images["cat"],
        np.asarray(sample_images["cat"]),
    ):
        loaded = load_image(source)
        assert loaded.image.mode == "RGB" and loaded.image.size == (451, 300) and not loaded.notes


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).image.size == (20, 40)


def test_huge_image_is_downscaled_with_a_note():
    loaded = load_image(Image.new("RGB", (5000, 2500)), max_side=1000)
    assert loaded.image.size == (1000, 500)
    assert "downscaled" in loaded.notes[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image at all", "not an image"),
    ],
)
def test_bad_files_get_clear_messages(tmp_path, content, message):
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        load_image(path)


def test_truncated_image_is_reported_as_corrupt(tmp_path, sample_images):
    buffer = io.BytesIO()
    sample_images["coffee"].save(buffer, format="JPEG")
    path = tmp_path / "broken.jpg"
    path.write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(MediaError, match=r"broken\.jpg"):
        load_image(path)


def test_missing_file_and_no_image(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(MediaError, match="no image"):
        load_image(None)
    with pytest.raises(MediaError, match="cannot read"):
        load_image(3.14)  # type: ignore[arg-type]


def test_a_large_image_under_the_limit_loads_and_one_over_it_is_named(tmp_path):
    # 9,500 × 9,500 = 90.25 MP: over Pillow's default warning size, under mmdemo's documented 100 MP.
    allowed = tmp_path / "allowed.png"
    Image.new("1", (9500, 9500)).save(allowed)
    loaded = load_image(allowed)
    assert max(loaded.image.size) == MAX_SIDE and "downscaled" in loaded.notes[0]
    over = tmp_path / "over.png"
    Image.new("1", (10_001, 10_000)).save(over)
    with pytest.raises(MediaError, match=r"over\.png: 10001×10000 pixels is over the 100 megapixel limit"):
        load_image(over)


def test_the_pixel_guard_is_one_process_setting_not_a_warnings_filter():
    before = list(warnings.filters)
    load_image(io.BytesIO(_png(8, 8)).getvalue())
    assert Image.MAX_IMAGE_PIXELS == MAX_DECODE_PIXELS and warnings.filters == before


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()
