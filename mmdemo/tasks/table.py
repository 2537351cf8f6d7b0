"""The task table: one `Task` per task a labeling job, an export or a fine-tuning run can be about.

In the spirit of transformers' `SUPPORTED_TASKS`: everything that differs between caption, VQA, video and
retrieval is an attribute or a function here, so the code around it asks the table instead of branching
on the task's name. Cheap to import: the functions import the models' modules only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmdemo.media.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mmdemo.tasks import prefill, rows, uncertainty

if TYPE_CHECKING:
    from mmdemo.data import Job, JobItem, MediaItem, Prediction, Store
    from mmdemo.data.labels import Label
    from mmdemo.services import Services

# (job, item, its media, store, the process's services) -> the id of the prediction recorded for the item
Predictor = Callable[["Job", "JobItem", "MediaItem", "Store", "Services"], int]
# many items in one model call: a prediction id per item, None for one the model cannot read
BatchPredictor = Callable[
    ["Job", Sequence["JobItem"], Sequence["MediaItem"], "Store", "Services"], list[int | None]
]
# (job, its final labels, store) -> (split key, row): the key keeps an item on one side of the split
RowMaker = Callable[["Job", "Sequence[Label]", "Store"], list[tuple[str, dict[str, Any]]]]
IMAGES = frozenset(IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Task:
    name: str
    model_tasks: tuple[str, ...]  # the registry tasks its predictions come from
    predict: Predictor
    prefill: Callable[[Prediction], str]  # a stored prediction -> the label it suggests
    export_rows: RowMaker
    training_examples: Callable[..., Iterable[Any]]  # (store, ...) -> the examples a run trains on
    categorical: bool = False  # labels come from the job's label set (else free text)
    input_kinds: tuple[str, ...] = ("image",)  # media kinds an item may be
    suffixes: frozenset[str] = IMAGES  # file suffixes of those kinds
    prompt: str | None = None  # what each item asks: its key in a prediction's input ("question", "query")
    prompt_plural: str = ""
    default_labels: tuple[str, ...] = ()
    prompt_from_query: bool = False  # a job over a query's results takes the query as its prompt
    media_columns: tuple[str, ...] = ()  # export columns holding image paths (embedded in Parquet/HF)
    # where its labels come from (`data.labels.SOURCES`): a tab's corrections, or relevance judgements
    label_sources: tuple[str, ...] = ("correction", "submission", "review")
    # a stored prediction -> how unsure its model was (0 sure … 1 unsure; None: no score), for the
    # labeling queue's `uncertainty` order
    uncertainty: Callable[[Prediction], float | None] | None = None
    predict_batch: BatchPredictor | None = None  # `predict` for many items at once, where the task can

    def prefill_value(self, prediction: Prediction | None) -> str:
        """The label a prediction suggests; "" without one."""
        return "" if prediction is None else self.prefill(prediction)

    def accepts(self, suffix: str) -> bool:
        return suffix.lower() in self.suffixes

    def prompt_of(self, input_: Any) -> str:
        """The question or query of a stored prediction's input; "" for tasks without one."""
        if self.prompt is None:
            return ""
        if isinstance(input_, str):
            return input_.strip()
        value = input_.get(self.prompt) if isinstance(input_, dict) else None
        return value.strip() if isinstance(value, str) else ""


def _text_targets(store: Store, task: str) -> Iterable[Any]:
    from mmdemo.finetune.data import text_targets

    return text_targets(store, task)


def _clip_targets(store: Store, job_id: int | None = None) -> Iterable[Any]:
    from mmdemo.finetune.data import LabelSelection, clip_targets

    return clip_targets(store, selection=LabelSelection(job_ids=(job_id,) if job_id is not None else None))


def _judged_queries(store: Store) -> Iterable[Any]:
    from mmdemo.finetune.data import relevance_labels
    from mmdemo.finetune.retrieval_adapter import judged_queries

    return judged_queries(relevance_labels(store))


RELEVANCE_LABELS = ("relevant", "not relevant")

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="caption",
            model_tasks=("caption",),
            predict=prefill.predict_caption,
            prefill=prefill.caption_text,
            export_rows=rows.caption_rows,
            training_examples=lambda store: _text_targets(store, "caption"),
            uncertainty=uncertainty.caption,
            predict_batch=prefill.predict_captions,
            media_columns=("image",),
        ),
        Task(
            name="vqa",
            model_tasks=("vqa",),
            predict=prefill.predict_answer,
            prefill=prefill.answer_text,
            export_rows=rows.vqa_rows,
            training_examples=lambda store: _text_targets(store, "vqa"),
            uncertainty=uncertainty.answer,
            predict_batch=prefill.predict_answers,
            prompt="question",
            prompt_plural="questions",
            media_columns=("image",),
        ),
        Task(
            name="video",  # a clip, or a photo standing for a one-frame clip
            model_tasks=("embed", "audio", "video"),  # "video": a trained fusion head
            categorical=True,
            input_kinds=("video", "image"),
            suffixes=frozenset(VIDEO_SUFFIXES) | IMAGES,
            predict=prefill.predict_video_label,
            prefill=prefill.best_video_label,
            export_rows=rows.clip_rows,
            training_examples=_clip_targets,
            uncertainty=uncertainty.video,
        ),
        Task(
            name="retrieval",
            model_tasks=("embed", "retrieval"),  # "retrieval": a trained adapter
            categorical=True,
            predict=prefill.predict_relevance,
            predict_batch=prefill.predict_relevances,
            prefill=prefill.relevance_label,
            export_rows=rows.retrieval_rows,
            training_examples=_judged_queries,
            uncertainty=uncertainty.relevance,
            prompt="query",
            prompt_plural="queries",
            default_labels=RELEVANCE_LABELS,
            prompt_from_query=True,
            label_sources=("judgement", "submission", "review"),
            media_columns=("positive", "hard_negatives"),
        ),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get(name: str | None) -> Task:
    """The task called `name`; a `ValueError` naming the known ones for anything else."""
    task = TASKS.get(str(name or "").strip())
    if task is None:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASK_NAMES)}")
    return task
