"""Labeled data out of the store in task-ready shapes, for fine-tuning runs and the Hugging Face Hub.

caption: (image, caption) · vqa: (image, question, answer) · video: (clip, label) ·
retrieval: (query, positive, hard_negatives). Reviewed or agreed labels only, unless asked otherwise;
anonymous labels are left out unless asked for. Rows are split into train and validation by item (the
media file, or the query for retrieval) so that no image lands on both sides. Every row carries its
provenance: job, item, annotators, reviewer, how the label was settled, and the model that pre-filled it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo import accounts, labeling
from mmdemo.accounts import ADMIN
from mmdemo.data import Job, Store, default_store

FORMATS = ("jsonl", "parquet", "hf")
SPLITS = ("train", "validation")
MAX_HARD_NEGATIVES = 5
MEDIA_COLUMNS = {"caption": ("image",), "vqa": ("image",), "retrieval": ("positive", "hard_negatives")}


@dataclass
class ExportResult:
    out: Path
    format: str
    rows: dict[str, int]
    pushed_to: str | None = None
    files: list[Path] = field(default_factory=list)


def split_of(key: str, validation_fraction: float) -> str:
    """A stable split from a hash of the item key: the same item is always on the same side."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if bucket < validation_fraction else "train"


def _provenance(job: Job, final: labeling.FinalLabel, store: Store) -> dict[str, Any]:
    prediction = store.prediction(final.item.prediction_id) if final.item.prediction_id else None
    return {
        "job": job.name,
        "item_id": final.item.id,
        "media_id": final.item.media_id,
        "label_source": final.how,
        "annotators": final.annotators,
        "reviewer": final.reviewer or "",
        "model_name": prediction.model_name if prediction else "",
        "model_version": prediction.model_version if prediction else "",
        "model_prediction": labeling.prefill_value(prediction),
    }


def export_rows(
    task: str,
    *,
    include_anonymous: bool = False,
    include_unreviewed: bool = False,
    validation_fraction: float = 0.2,
    store: Store | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The rows of every job of `task`, by split. Media columns hold file paths."""
    if task not in labeling.TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(labeling.TASKS)}")
    store = store or default_store()
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for job in store.jobs(task):
        finals = labeling.final_labels(
            job, include_anonymous=include_anonymous, include_unreviewed=include_unreviewed, store=store
        )
        if task == "retrieval":
            for key, row in _retrieval_rows(job, finals, store):
                rows[split_of(key, validation_fraction)].append(row)
            continue
        for final in finals:
            path = store.media(final.item.media_id).path  # type: ignore[union-attr]
            row = {**_task_shape(task, path, final), **_provenance(job, final, store)}
            rows[split_of(final.item.media_id, validation_fraction)].append(row)
    return rows


def _task_shape(task: str, path: str, final: labeling.FinalLabel) -> dict[str, Any]:
    if task == "caption":
        return {"image": path, "caption": final.value}
    if task == "vqa":
        return {"image": path, "question": final.item.prompt, "answer": final.value}
    return {"clip": path, "label": final.value}


def _retrieval_rows(
    job: Job, finals: Sequence[labeling.FinalLabel], store: Store
) -> list[tuple[str, dict[str, Any]]]:
    """One row per (query, relevant image); hard negatives are the images judged not relevant that the
    model scored highest for the same query."""
    positive_label, negative_label = job.labels[0], job.labels[1]
    by_query: dict[str, list[labeling.FinalLabel]] = {}
    for final in finals:
        by_query.setdefault(final.item.prompt, []).append(final)
    result = []
    for query, judged in by_query.items():
        negatives = [f for f in judged if f.value == negative_label]
        negatives.sort(key=lambda f: -_model_score(f, store))
        negative_paths = [store.media(f.item.media_id).path for f in negatives[:MAX_HARD_NEGATIVES]]  # type: ignore[union-attr]
        for final in judged:
            if final.value != positive_label:
                continue
            row = {
                "query": query,
                "positive": store.media(final.item.media_id).path,  # type: ignore[union-attr]
                "hard_negatives": negative_paths,
                **_provenance(job, final, store),
            }
            result.append((query, row))
    return result


def _model_score(final: labeling.FinalLabel, store: Store) -> float:
    prediction = store.prediction(final.item.prediction_id) if final.item.prediction_id else None
    output = prediction.output if prediction else None
    return float(output.get("score", 0.0)) if isinstance(output, dict) else 0.0


def _embed_media(task: str, row: dict[str, Any]) -> dict[str, Any]:
    """Image paths become {bytes, path} so that the Parquet/HF output is self-contained."""

    def image(path: str) -> dict[str, Any]:
        return {"bytes": Path(path).read_bytes(), "path": Path(path).name}

    row = dict(row)
    for column in MEDIA_COLUMNS.get(task, ()):
        value = row[column]
        row[column] = [image(p) for p in value] if isinstance(value, list) else image(value)
    return row


def to_dataset_dict(task: str, rows: dict[str, list[dict[str, Any]]]) -> Any:
    import datasets

    image_columns = MEDIA_COLUMNS.get(task, ())
    splits = {}
    for split, split_rows in rows.items():
        if not split_rows:  # an empty split cannot be saved or loaded back; leave it out
            continue
        dataset = datasets.Dataset.from_list([_embed_media(task, row) for row in split_rows])
        for column in image_columns:
            if column in dataset.column_names:
                feature = datasets.Image() if column != "hard_negatives" else datasets.List(datasets.Image())
                dataset = dataset.cast_column(column, feature)
        splits[split] = dataset
    return datasets.DatasetDict(splits)


def export(
    task: str,
    fmt: str,
    out: str | Path,
    *,
    user: str | None = None,
    include_anonymous: bool = False,
    include_unreviewed: bool = False,
    validation_fraction: float = 0.2,
    push_to_hub: str | None = None,
    store: Store | None = None,
) -> ExportResult:
    """Write `out/` as train/validation files. `user` is checked for the admin role (the CLI passes None:
    whoever runs it on the server already holds the database file)."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError("the validation fraction must be at least 0 and below 1")
    token = os.environ.get("HF_TOKEN")
    if push_to_hub and not token:
        raise ValueError("--push-to-hub needs a Hugging Face token in HF_TOKEN")
    rows = export_rows(
        task,
        include_anonymous=include_anonymous,
        include_unreviewed=include_unreviewed,
        validation_fraction=validation_fraction,
        store=store,
    )
    if not any(rows.values()):
        raise ValueError(
            f"no {task} labels to export yet (reviewed or agreed ones; see --include-unreviewed)"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out=out, format=fmt, rows={split: len(r) for split, r in rows.items()})
    if fmt == "jsonl":
        for split, split_rows in rows.items():
            path = out / f"{split}.jsonl"
            with path.open("w") as handle:
                for row in split_rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            result.files.append(path)
    dataset = to_dataset_dict(task, rows) if fmt != "jsonl" or push_to_hub else None
    if fmt == "parquet":
        for split, split_dataset in dataset.items():
            path = out / f"{split}.parquet"
            split_dataset.to_parquet(str(path))
            result.files.append(path)
    elif fmt == "hf":
        dataset.save_to_disk(str(out))
        result.files.append(out)
    if push_to_hub:
        dataset.push_to_hub(push_to_hub, token=token, private=True)
        result.pushed_to = push_to_hub
    return result


def export_archive(task: str, fmt: str, user: str, **options: Any) -> tuple[Path, ExportResult]:
    """Export as `export()` does, into one zip file to download from the browser (admins only)."""
    accounts.require_role(user, ADMIN, store=options.get("store"))
    folder = Path(tempfile.mkdtemp(prefix="mmdemo-export-"))
    result = export(task, fmt, folder / f"mmdemo-{task}-{fmt}", user=user, **options)
    archive = shutil.make_archive(str(folder / f"mmdemo-{task}-{fmt}"), "zip", root_dir=result.out)
    return Path(archive), result
