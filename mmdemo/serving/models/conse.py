"""The lite profile's cross-modal models, built on an ImageNet classifier and a sentence encoder.

ConSE (Norouzi et al., 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings"): an image's
embedding is the probability-weighted mean of the text embeddings of its top-k ImageNet class names, so
images and free text land in the same sentence-embedding space. The captioner and the VQA model here are
baselines that say only what the class evidence supports.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mmdemo import config
from mmdemo.serving.models.base import Answer, Caption, CaptionOptions, LoadContext, ModelInfo, l2_normalize
from mmdemo.serving.models.efficientnet import ImageNetClassifier
from mmdemo.serving.models.minilm import MiniLMTextEncoder

YES_THRESHOLD = 0.65  # cosine between the asked-about object and a likely class that counts as "present"
SAMPLE_FROM = 5  # sampled captions draw from this many top classes
CANNOT_TELL = "can't tell (the lite baseline only recognises ImageNet objects)"


def class_embeddings(text: MiniLMTextEncoder, classes: Sequence[str], template: str) -> np.ndarray:
    """Text embeddings of every class prompt, cached on disk: 1000 prompts take seconds on a CPU."""
    key = hashlib.sha256("\n".join([text.info.name, template, *classes]).encode()).hexdigest()[:16]
    path = config.cache_dir() / f"class-embeddings-{key}.npy"
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    vectors = text.encode([template.format(name) for name in classes])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    except OSError:
        pass  # a read-only cache only costs speed
    return vectors


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class ConseEmbedder:
    num_parameters = 0  # owns no weights; the classifier and text encoder are counted on their own rows

    def __init__(
        self,
        classifier: ImageNetClassifier,
        text: MiniLMTextEncoder,
        info: ModelInfo,
        top_k: int,
        template: str,
    ) -> None:
        self.classifier = classifier
        self.text = text
        self.info = info
        self.top_k = top_k
        self.dim = text.dim
        self.class_vectors = class_embeddings(text, classifier.classes, template)

    def embed_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        k = min(self.top_k, probabilities.shape[1])
        top = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]  # the top k, in any order
        weights = np.take_along_axis(probabilities, top, axis=1)
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        return l2_normalize(np.einsum("nk,nkd->nd", weights, self.class_vectors[top]))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_probabilities(self.classifier.probabilities(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text.encode(texts)


class ImageNetCaptioner:
    """Captions from the top ImageNet classes: honest about being a baseline."""

    num_parameters = 0

    def __init__(self, classifier: ImageNetClassifier, info: ModelInfo) -> None:
        self.classifier = classifier
        self.info = info

    def caption(self, images: Sequence[Image.Image], options: CaptionOptions | None = None) -> list[Caption]:
        options = options or CaptionOptions()
        captions = []
        rng = np.random.default_rng(options.seed)
        for row in self.classifier.probabilities(images):
            first, second = (
                _pick_two(row, rng, options.temperature)
                if options.strategy == "sample"
                else np.argsort(-row)[:2]
            )
            name = self.classifier.classes[first]
            caption = f"{options.prefix.strip() or 'a photo of'} {_article(name)} {name}"
            if row[first] < 0.5:
                other = self.classifier.classes[second]
                caption += f" or {_article(other)} {other}"
            words = caption.split()
            # the top class's probability stands in for BLIP's mean token log-probability
            logprob = math.log(max(float(row[first]), 1e-12))
            captions.append(Caption(" ".join(words[: max(1, options.max_length)]), logprob))
        return captions


def _pick_two(row: np.ndarray, rng: np.random.Generator, temperature: float = 1.0) -> tuple[int, int]:
    """Sampling in the baseline: two distinct classes drawn from the top ones, each with its probability
    sharpened or flattened by the temperature; the seed makes it reproducible."""
    top = np.argsort(-row)[:SAMPLE_FROM]
    weights = np.power(row[top] + 1e-9, 1.0 / max(temperature, 0.05))
    first, second = rng.choice(top, size=2, replace=False, p=weights / weights.sum())
    return int(first), int(second)


_YES_NO = re.compile(r"^(is|are|does|do|can|was|were|has|have)\b", re.IGNORECASE)
_WHAT = re.compile(
    r"^(what|which)\b.*\b(is|are)\b.*\b(this|that|it|these|those|shown|here|picture|image|photo)\b",
    re.IGNORECASE,
)
_OBJECT = re.compile(
    r"\b(?:an?|the|any|some)\s+([a-z][a-z \-']*?)(?:\s+(?:in|on|at|here|there|visible|shown)\b|\s*\?|\s*$)",
    re.IGNORECASE,
)


class ImageNetEvidenceVQA:
    """Answers "what is this?" and yes/no object questions from ImageNet evidence; admits the rest."""

    num_parameters = 0

    def __init__(self, classifier: ImageNetClassifier, text: MiniLMTextEncoder, info: ModelInfo) -> None:
        self.classifier = classifier
        self.text = text
        self.info = info
        self.class_vectors = class_embeddings(text, classifier.classes, "a photo of a {}")

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], top_k: int = 3) -> list[Answer]:
        probabilities = self.classifier.probabilities(images)
        return [
            self._answer(row, question.strip(), max(1, top_k))
            for row, question in zip(probabilities, questions, strict=True)
        ]

    def _answer(self, row: np.ndarray, question: str, top_k: int) -> Answer:
        order = np.argsort(-row)[: max(top_k, 5)]
        likely = [(self.classifier.classes[i], float(row[i])) for i in order]
        if _YES_NO.match(question) and (match := _OBJECT.search(question)):
            thing = match.group(1).strip()
            query = self.text.encode([f"a photo of a {thing}"])[0]
            similarity = self.class_vectors[order] @ query
            # Present when one of the likely classes is the thing asked about (a "cup" class among the top
            # ones is a yes even beside a confident "espresso"); the more of the mass such classes hold, the
            # surer. Absent: the closer the nearest class came, the less sure.
            matching = similarity >= YES_THRESHOLD
            support = float(row[order][matching].sum())
            if matching.any():
                verdict, confidence = "yes", 0.6 + 0.39 * min(1.0, support / 0.5)
            else:
                verdict, confidence = "no", 0.5 + 0.49 * float(1.0 - similarity.max() / YES_THRESHOLD)
            return Answer(
                verdict, [(verdict, confidence), ("no" if verdict == "yes" else "yes", 1 - confidence)]
            )
        if _WHAT.match(question) or question.lower().rstrip("?") in {"what", "what is it", "what's this"}:
            return Answer(likely[0][0], likely[:top_k])
        return Answer(CANNOT_TELL, [(CANNOT_TELL, 1.0)])  # class names are no answer to other questions


def load_embedder(ctx: LoadContext) -> ConseEmbedder:
    options = ctx.spec.options
    return ConseEmbedder(
        ctx.get("imagenet"), ctx.get("text"), ctx.info, options["top_k"], options["template"]
    )


def load_captioner(ctx: LoadContext) -> ImageNetCaptioner:
    return ImageNetCaptioner(ctx.get("imagenet"), ctx.info)


def load_vqa(ctx: LoadContext) -> ImageNetEvidenceVQA:
    return ImageNetEvidenceVQA(ctx.get("imagenet"), ctx.get("text"), ctx.info)
