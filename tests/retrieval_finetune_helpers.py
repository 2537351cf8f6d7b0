"""A synthetic judged world for retrieval-adapter tests: an embedder whose text side points at the wrong
concept (so the base ranking is poor), images on disk, an index and judgements made through the real APIs.

Each concept c has an image direction u_c. Its images embed near u_c; a query naming concept c embeds near
u_{c+1} (plus one random direction per filler word). Judgements of queries carry the true concepts, so an
adapter can learn the mapping, and held-out phrasings (unseen filler words) test that it generalises.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
from PIL import Image

from mmdemo.search import retrieval
from mmdemo.search.service import IndexService
from mmdemo.serving.models.base import LoadContext, ModelSpec, l2_normalize
from mmdemo.serving.registry import Registry

DIM = 32
CONCEPTS = ("apple", "boat", "cloud", "drum", "eagle", "fern")
PER_CONCEPT = 5
DISTRACTORS = 10
TRAIN_FILLERS = ("photo of", "picture of", "image showing", "snapshot of a")
HELD_OUT_FILLERS = ("drawing with",)
INDEX = "synthetic"
DISTRACTOR = 250  # the pixel value of images of no concept


def _direction(seed: str) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16))
    return l2_normalize(rng.standard_normal(DIM))


def concept_direction(concept: int) -> np.ndarray:
    return _direction(f"concept {concept % len(CONCEPTS)}")


class SyntheticEmbedder:
    dim = DIM
    num_parameters = 0

    def __init__(self, ctx: LoadContext) -> None:
        self.info = ctx.info

    def encode_images(self, images) -> np.ndarray:
        rows = []
        for image in images:
            concept, instance, _ = image.convert("RGB").getpixel((0, 0))
            noise = _direction(f"image {concept} {instance}")
            base = np.zeros(DIM) if concept == DISTRACTOR else concept_direction(concept)
            rows.append(base + 0.6 * noise)
        return l2_normalize(np.stack(rows))

    def encode_texts(self, texts) -> np.ndarray:
        rows = []
        for text in texts:
            vector = np.zeros(DIM)
            for word in text.split():
                known = word in CONCEPTS
                vector += concept_direction(CONCEPTS.index(word) + 1) if known else 0.5 * _direction(word)
            rows.append(vector)
        return l2_normalize(np.stack(rows))


def load_synthetic(ctx: LoadContext) -> SyntheticEmbedder:
    return SyntheticEmbedder(ctx)


def synthetic_registry(**options) -> Registry:
    spec = ModelSpec(
        name="synthetic embedder",
        task="embed",
        family="synthetic",
        profile="synthetic",
        source="tests",
        source_kind="code",
        builder="tests.retrieval_finetune_helpers:load_synthetic",
    )
    return Registry("synthetic", device="cpu", tables={"synthetic": {"embed": spec}}, **options)


def write_images(folder: Path) -> dict[str, set[str]]:
    """Images of every concept and some distractors; returns concept -> file names."""
    folder.mkdir(parents=True, exist_ok=True)
    by_concept: dict[str, set[str]] = {concept: set() for concept in CONCEPTS}
    cells = [(c, i) for c in range(len(CONCEPTS)) for i in range(PER_CONCEPT)]
    for concept, instance in [*cells, *((DISTRACTOR, i) for i in range(DISTRACTORS))]:
        name = f"{concept:03d}-{instance:02d}.png"
        Image.new("RGB", (16, 16), (concept, instance, 7)).save(folder / name)
        if concept != DISTRACTOR:
            by_concept[CONCEPTS[concept]].add(name)
    return by_concept


def queries(fillers: tuple[str, ...]) -> list[tuple[str, str]]:
    """(query text, concept) for every concept and filler."""
    return [(f"{filler} {concept}", concept) for concept, filler in itertools.product(CONCEPTS, fillers)]


def judge_like_a_user(
    service: IndexService,
    text: str,
    relevant_names: set[str],
    hard_negatives: int = 5,
    index: str = INDEX,
    user: str = "ana",
) -> None:
    """Search the whole index, mark every relevant result (by file name) and the top irrelevant ones."""
    found = service.search(text=text, k=100, name=index)
    irrelevant = 0
    for result in found.results:
        relevant = Path(result.path).name in relevant_names
        if relevant or irrelevant < hard_negatives:
            retrieval.judge(found, result.rank, relevant, user=user)
            irrelevant += not relevant


def recall_at_5(
    service: IndexService, pairs: list[tuple[str, str]], by_concept: dict[str, set[str]]
) -> tuple[float, set[str]]:
    """Mean recall@5 of real searches of (query, concept) pairs, and the adapter versions that ranked."""
    scores, versions = [], set()
    for text, concept in pairs:
        found = service.search(text=text, k=5, name=INDEX)
        versions.add(found.adapter_version)
        names = {Path(result.path).name for result in found.results}
        scores.append(len(names & by_concept[concept]) / PER_CONCEPT)
    return float(np.mean(scores)), versions
