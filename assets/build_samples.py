"""Rebuild assets/images/ from photos that ship inside scikit-image and scikit-learn.

Dev-only: `pip install scikit-image scikit-learn && python assets/build_samples.py`.
The JPEGs are committed, so the app and the tests never need these packages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).parent / "images"


def _rgb(array: np.ndarray) -> Image.Image:
    if array.dtype == bool:
        array = (~array * 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3].astype(np.uint8))


def samples() -> dict[str, Image.Image]:
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    china, flower = (Image.fromarray(a) for a in load_sample_images().images)
    astronaut = _rgb(sk.astronaut())
    hubble = _rgb(sk.hubble_deep_field())
    return {
        "astronaut": astronaut,
        "astronaut_portrait": astronaut.crop((140, 20, 340, 260)),
        "brick_wall": _rgb(sk.brick()),
        "cameraman": _rgb(sk.camera()),
        "cat": _rgb(sk.chelsea()),
        "cell_microscopy": _rgb(sk.cell()),
        "chinese_temple": china,
        "temple_roof": china.crop((0, 0, 320, 240)),
        "clock": _rgb(sk.clock()),
        "coffee": _rgb(sk.coffee()),
        "coins": _rgb(sk.coins()),
        "flower": flower,
        "flower_closeup": flower.crop((160, 80, 480, 320)),
        "grass": _rgb(sk.grass()),
        "gravel": _rgb(sk.gravel()),
        "horse_silhouette": _rgb(sk.horse()),
        "hubble_deep_field": hubble,
        "galaxies_closeup": hubble.crop((300, 300, 600, 560)),
        "immunohistochemistry": _rgb(sk.immunohistochemistry()),
        "microaneurysms": _rgb(sk.microaneurysms()),
        "moon": _rgb(sk.moon()),
        "motorcycle": _rgb(sk.stereo_motorcycle()[0]),
        "printed_page": _rgb(sk.page()),
        "retina": _rgb(sk.retina()).resize((705, 705)),
        "rocket": _rgb(sk.rocket()),
        "text_sign": _rgb(sk.text()),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, image in samples().items():
        image.save(OUT / f"{name}.jpg", quality=90)
        print(f"{name}.jpg {image.size}")


if __name__ == "__main__":
    main()
