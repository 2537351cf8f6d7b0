"""Stored corrections for fine-tuning tests, written through the store API as the app would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmdemo.data import Store
from mmdemo.serving.models.base import ModelInfo
from tests.conftest import ASSETS, process_services

TINY_MODEL = ModelInfo(name="tiny BLIP", version="base", profile="tiny", source="random init (built in code)")

CAPTIONS = {
    "cat": "a cat on a sofa",
    "coffee": "a cup of coffee on a table",
    "clock": "a clock on a wall",
    "flower": "a red flower in a garden",
    "moon": "the moon in a dark sky",
    "horse_silhouette": "a horse in a field",
}

ANSWERS = {
    ("cat", "what animal is this?"): "cat",
    ("cat", "what color is the animal?"): "orange",
    ("coffee", "what is in the cup?"): "coffee",
    ("clock", "what is this?"): "clock",
    ("flower", "what color is the flower?"): "red",
    ("moon", "is it night?"): "yes",
}


def store_caption_corrections(store: Store) -> None:
    for stem, caption in CAPTIONS.items():
        media = store.add_media(ASSETS / f"{stem}.jpg", "image")
        prediction = store.record_prediction(
            "caption",
            media_id=media.id,
            input={"prefix": ""},
            output="noise words",
            model=TINY_MODEL,
            user="ana",  # who captioned the image corrects it
        )
        store.add_correction(prediction.id, caption, user="ana")


def store_answer_corrections(store: Store) -> None:
    for (stem, question), answer in ANSWERS.items():
        media = store.add_media(ASSETS / f"{stem}.jpg", "image")
        prediction = store.record_prediction(
            "vqa",
            media_id=media.id,
            input={"question": question},
            output={"answer": "no", "top": [["no", 1.0]]},
            model=TINY_MODEL,
            user="ana",
        )
        store.add_correction(prediction.id, {"answer": answer}, user="ana")


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`main(["--profile", ...])` sets MMDEMO_PROFILE and the process registry; undo both after the test."""
    monkeypatch.delenv("MMDEMO_PROFILE", raising=False)
    with process_services(None):  # the CLI builds its own from the flag
        yield
