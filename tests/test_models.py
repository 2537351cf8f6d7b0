from __future__ import annotations

import numpy as np
import pytest

from mmdemo.serving.models.base import Answer, CaptionOptions


def _unit_rows(vectors: np.ndarray) -> bool:
    return np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_tiny_clip_embeddings_are_normalised_with_the_right_shape(tiny, sample_images):
    embedder = tiny.get("embed")
    images = [sample_images["cat"], sample_images["coffee"], sample_images["rocket"]]
    image_vectors = embedder.encode_images(images)
    text_vectors = embedder.encode_texts(["a cat", "a cup of coffee"])
    assert image_vectors.shape == (3, embedder.dim) and text_vectors.shape == (2, embedder.dim)
    assert image_vectors.dtype == np.float32
    assert _unit_rows(image_vectors) and _unit_rows(text_vectors)
    assert not np.allclose(image_vectors[0], image_vectors[1])
    assert embedder.encode_images([]).shape == (0, embedder.dim)
    assert type(embedder.model).__module__.startswith("open_clip")


def test_tiny_clip_batches_agree_with_single_images(tiny, sample_images):
    embedder = tiny.get("embed")
    images = [sample_images["cat"], sample_images["coffee"]]
    together = embedder.encode_images(images)
    alone = np.concatenate([embedder.encode_images([image]) for image in images])
    assert np.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        CaptionOptions(strategy="beam", num_beams=3, max_length=8),
        CaptionOptions(strategy="sample", top_p=0.9, temperature=0.7, max_length=5, seed=1),
        CaptionOptions(strategy="beam", num_beams=2, max_length=6, prefix="a picture of"),
    ],
)
def test_tiny_blip_captions_are_strings(tiny, sample_images, options):
    captioner = tiny.get("caption")
    assert type(captioner.model).__name__ == "BlipForConditionalGeneration"
    captions = captioner.caption([sample_images["cat"], sample_images["coffee"]], options)
    assert len(captions) == 2 and all(isinstance(c, str) and c for c in captions)
    if options.prefix:
        assert all(c.startswith(options.prefix) for c in captions)


def test_tiny_blip_vqa_answers_with_ranked_scores(tiny, sample_images):
    vqa = tiny.get("vqa")
    assert type(vqa.model).__name__ == "BlipForQuestionAnswering"
    answers = vqa.answer(
        [sample_images["cat"], sample_images["coffee"]], ["what is this?", "is it hot?"], top_k=3
    )
    assert len(answers) == 2
    for answer in answers:
        assert isinstance(answer, Answer) and isinstance(answer.answer, str)
        scores = [score for _, score in answer.top]
        assert answer.top[0][0] == answer.answer
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4


def test_tiny_clap_embeds_audio_and_label_text(tiny):
    audio = tiny.get("audio")
    assert type(audio.model).__name__ == "ClapModel" and audio.zero_shot and audio.sample_rate == 48_000
    t = np.linspace(0, 2, 2 * audio.sample_rate, dtype=np.float32)
    vectors = audio.encode_audio([np.sin(2 * np.pi * 440 * t), np.random.default_rng(0).normal(size=t.size)])
    labels = audio.encode_texts(["a tone", "rain falling", "speech"])
    assert vectors.shape == (2, audio.dim) and labels.shape == (3, audio.dim)
    assert _unit_rows(vectors) and _unit_rows(labels)


def test_lite_retrieval_ranks_the_right_photo_first(lite, sample_images):
    embedder = lite.get("embed")
    names = list(sample_images)
    gallery = embedder.encode_images([sample_images[name] for name in names])
    assert gallery.shape == (len(names), 384) and _unit_rows(gallery)
    for query, expected in [("a cup of coffee", "coffee"), ("a cat", "cat")]:
        scores = gallery @ embedder.encode_texts([query])[0]
        assert names[int(np.argmax(scores))] == expected, query


def test_lite_caption_is_a_labelled_baseline(lite, sample_images):
    captioner = lite.get("caption")
    assert captioner.info.baseline
    coffee, cat = captioner.caption([sample_images["coffee"], sample_images["cat"]])
    assert "espresso" in coffee
    assert "cat" in cat
    prefixed = captioner.caption([sample_images["coffee"]], CaptionOptions(prefix="a picture of"))[0]
    assert prefixed.startswith("a picture of")


def test_lite_vqa_answers_what_its_evidence_supports(lite, sample_images):
    vqa = lite.get("vqa")
    assert vqa.info.baseline
    cat = sample_images["cat"]
    what, yes, no, unknown = vqa.answer(
        [cat] * 4, ["What is this?", "Is there a cat in the picture?", "Is there a motorcycle?", "How many?"]
    )
    assert "cat" in what.answer
    assert yes.answer == "yes" and no.answer == "no"
    assert "can't tell" in unknown.answer


def test_lite_audio_gives_features_without_zero_shot(lite):
    audio = lite.get("audio")
    assert not audio.zero_shot
    t = np.linspace(0, 1, audio.sample_rate, dtype=np.float32)
    low, high = audio.encode_audio([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 3000 * t)])
    assert low.shape == (audio.dim,) and not np.allclose(low, high)
    with pytest.raises(NotImplementedError):
        audio.encode_texts(["a dog"])
