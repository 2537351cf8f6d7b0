"""Labeling jobs' final labels as datasets: JSON lines, Parquet, a Hugging Face dataset (and the Hub).

The labels come from the one reader (`data.labels.final_labels`), the rows' shape from the task table
(`tasks.rows`: caption (image, caption), vqa (image, question, answer), video (clip, label), retrieval
(query, positive, hard_negatives)). Reviewed or agreed labels only, unless asked otherwise; anonymous
labels are left out unless asked for. Rows are split into train and validation by item (the media file,
or the query for retrieval) so that no image lands on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo import accounts
from mmdemo.accounts import ADMIN
from mmdemo.data import Store, default_store, labels
from mmdemo.tasks import table

FORMATS = ("jsonl", "parquet", "hf")
SPLITS = ("train", "validation")


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


def export_rows(
    task: str,
    *,
    include_anonymous: bool = False,
    include_unreviewed: bool = False,
    validation_fraction: float = 0.2,
    store: Store | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The rows of every job of `task`, by split, in the task's shape (`tasks.rows`). Media columns hold
    file paths."""
    spec = table.get(task)
    store = store or default_store()
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for job in labels.jobs_of(store, spec.name):
        finals = labels.final_labels(
            job, store, include_anonymous=include_anonymous, include_unreviewed=include_unreviewed
        )
        for key, row in spec.export_rows(job, finals, store):
            rows[split_of(key, validation_fraction)].append(row)
    return rows


def _embed_media(task: str, row: dict[str, Any]) -> dict[str, Any]:
    """Image paths become {bytes, path} so that the Parquet/HF output is self-contained."""

    def image(path: str) -> dict[str, Any]:
        return {"bytes": Path(path).read_bytes(), "path": Path(path).name}

    row = dict(row)
    for column in table.get(task).media_columns:
        value = row[column]
        row[column] = [image(p) for p in value] if isinstance(value, list) else image(value)
    return row


def to_dataset_dict(task: str, rows: dict[str, list[dict[str, Any]]]) -> Any:
    import datasets

    image_columns = table.get(task).media_columns
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
        for split in SPLITS:  # an empty split is written too, with the columns of the other one
            split_dataset = dataset[split] if split in dataset else next(iter(dataset.values())).select([])
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
