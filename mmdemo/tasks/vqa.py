"""Visual question answering as plain functions: check the input, answer, record, correct, and recall."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdemo import accounts
from mmdemo.data import ANONYMOUS, Store, default_store
from mmdemo.media.files import ImageSource
from mmdemo.media.images import media_id_of, remember_image
from mmdemo.serving.models.base import ModelInfo
from mmdemo.serving.registry import Registry
from mmdemo.tasks.captioning import model_label
from mmdemo.tasks.corrections import CONFIRMED, corrected_text, prediction_to_correct

TASK = "vqa"
MAX_QUESTION_CHARS = 300  # VQA questions are one sentence; BLIP reads at most 64 tokens of it anyway
MAX_ANSWER_CHARS = 500
TOP_K = 5
MAX_TOP_K = 10
HISTORY_COLUMNS = ("#", "question", "model answer", "corrected answer", "asked at")


class QuestionError(ValueError):
    """A question that cannot be asked (empty), with a message for the person who typed it."""


@dataclass
class AnswerResult:
    question: str  # as asked, after trimming and truncation
    answer: str
    top: list[tuple[str, float]]
    model: ModelInfo
    latency_ms: float
    prediction_id: int
    media_id: str
    notes: list[str] = field(default_factory=list)

    @property
    def model_label(self) -> str:
        return model_label(self.model)


def clean_question(question: str | None) -> tuple[str, list[str]]:
    """The question with whitespace collapsed, cut at a word boundary within `MAX_QUESTION_CHARS` (a note
    says so)."""
    text = " ".join((question or "").split())
    if not text:
        raise QuestionError("the question is empty: type a question about the image")
    if len(text) > MAX_QUESTION_CHARS:
        cut = text[: MAX_QUESTION_CHARS + 1].rsplit(" ", 1)[0] if " " in text[:MAX_QUESTION_CHARS] else ""
        cut = (cut or text[:MAX_QUESTION_CHARS]).rstrip()
        return cut, [f"the question was {len(text)} characters; only its first {len(cut)} were asked"]
    return text, []


def ask_questions(
    source: ImageSource | None,
    questions: Sequence[str],
    *,
    user: str | None = None,
    top_k: int = TOP_K,
    registry: Registry,
    store: Store | None = None,
) -> list[AnswerResult]:
    """Answer several questions about one image in one batched model call; each answer is recorded."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top-k must be between 1 and {MAX_TOP_K}, not {top_k}")
    store = store or default_store()
    item = remember_image(source, store)  # the image first: without one, the question does not matter
    cleaned = [clean_question(question) for question in questions]
    if not cleaned:
        raise QuestionError("no question given: type a question about the image")
    answerer = registry.get(TASK)
    started = time.perf_counter()
    answers = answerer.answer([item.image] * len(cleaned), [text for text, _ in cleaned], top_k=top_k)
    latency_ms = (time.perf_counter() - started) * 1000
    results = []
    for (text, question_notes), answer in zip(cleaned, answers, strict=True):
        top = [(label, float(score)) for label, score in answer.top]
        notes = [*item.notes, *question_notes]
        prediction = store.record_prediction(
            TASK,
            media_id=item.media.id,
            input={"name": item.name, "question": text, "notes": notes},
            output={"answer": answer.answer, "top": top},
            model=answerer.info,
            params={"top_k": top_k, "batch_size": len(cleaned)},
            latency_ms=latency_ms / len(cleaned),
            user=user,
        )
        results.append(
            AnswerResult(
                question=text,
                answer=answer.answer,
                top=top,
                model=answerer.info,
                latency_ms=latency_ms,
                prediction_id=prediction.id,
                media_id=item.media.id,
                notes=notes,
            )
        )
    return results


def ask(
    source: ImageSource | None,
    question: str | None,
    *,
    user: str | None = None,
    top_k: int = TOP_K,
    registry: Registry,
    store: Store | None = None,
) -> AnswerResult:
    return ask_questions(source, [question or ""], user=user, top_k=top_k, registry=registry, store=store)[0]


def correct_answer(
    prediction_id: int | None, answer: str, *, user: str | None = None, store: Store | None = None
) -> int:
    """Append a corrected answer to a VQA prediction `user` made (or a reviewer); returns the correction's
    id."""
    store = store or default_store()
    prediction = prediction_to_correct(store, prediction_id, TASK, "ask a question first", user)
    answer = corrected_text(answer, "answer", MAX_ANSWER_CHARS)
    note = CONFIRMED if answer == prediction.output["answer"] else None
    return store.add_correction(prediction.id, {"answer": answer}, user=user, note=note).id


def question_history(
    source: ImageSource | None = None,
    *,
    media_id: str | None = None,
    user: str | None = None,
    store: Store | None = None,
) -> list[list[Any]]:
    """`user`'s earlier questions about an image (by source or media id), newest first, with latest
    corrections. Reviewers and admins see everyone's."""
    store = store or default_store()
    media_id = media_id or media_id_of(source)
    if media_id is None:
        return []
    user = user or ANONYMOUS
    asker = None if accounts.sees_everything(user, store=store) else user
    rows = []
    for prediction in store.predictions_for_media(media_id, TASK, user=asker):
        correction = store.latest_correction(prediction.id)
        rows.append(
            [
                prediction.id,
                prediction.input["question"],
                prediction.output["answer"],
                correction.output["answer"] if correction else "",
                prediction.created_at[:19].replace("T", " "),
            ]
        )
    return rows[::-1]
