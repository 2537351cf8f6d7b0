"""Creating labeling jobs: where their items come from (a folder, uploads, an index, a query's results),
checking what each task needs (a label set, questions or queries), and looking jobs and items up."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdemo import accounts
from mmdemo.accounts import ADMIN, ANNOTATOR
from mmdemo.data import Job, JobItem, MediaItem, Store, default_store
from mmdemo.labeling import ordering as orders
from mmdemo.media.files import MediaError, is_video_path, keep_file, load_image
from mmdemo.media.images import media_folder
from mmdemo.search import retrieval
from mmdemo.serving.hub import ModelUnavailable
from mmdemo.tasks import table
from mmdemo.tasks.table import Task
from mmdemo.tasks.video_classify import MAX_LABEL_CHARS as MAX_SET_LABEL_CHARS
from mmdemo.tasks.video_classify import MAX_LABELS

if TYPE_CHECKING:
    from mmdemo.search.service import IndexService
    from mmdemo.serving.registry import Registry

MAX_ITEMS = 5000
MAX_OVERLAP = 20
MAX_LABEL_CHARS = 2000
MAX_NAME_CHARS = 100
MAX_ID = 2**63 - 1  # SQLite's largest integer
QUERY_K = 20  # results of a query that become a job's items, unless told otherwise
LOCAL_OPERATOR = "cli"  # who created a job from the command line


class LabelingError(ValueError):
    """A request about jobs or labels that cannot be carried out, with a message for the user."""


def store_or_default(store: Store | None) -> Store:
    return store or default_store()


def task_of(name: str) -> Task:
    try:
        return table.get(name)
    except ValueError as error:
        raise LabelingError(str(error)) from None


JOINERS = {"\u200c", "\u200d"}  # format characters that scripts (Persian, Indic) and emoji need


def visible_text(text: Any) -> str:
    """`text` without control or format characters (terminal escapes, bidi overrides, zero-width spaces;
    the joiners that writing needs are kept), its spacing collapsed: what is stored of labels and names,
    and what is printed of them."""
    kept = "".join(
        " " if char.isspace() else char
        for char in str(text)
        if char.isspace() or char in JOINERS or unicodedata.category(char) not in ("Cc", "Cf", "Cs")
    )
    return re.sub(r"\s+", " ", kept).strip()


def parse_list(text: str | Sequence[str] | None) -> list[str]:
    """Labels or prompts typed one per line (or comma-separated on one line), invisible characters, blanks
    and repeats dropped."""
    if text is None:
        return []
    if isinstance(text, str):
        parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    else:
        parts = list(text)
    return list(dict.fromkeys(cleaned for part in parts if (cleaned := visible_text(part))))


def check_label_set(labels: list[str]) -> list[str]:
    """A job's label set: at most as many labels as the Video tab takes, each as short, no two the same
    but for case ("cat" and "Cat" would split one label's votes)."""
    if len(labels) > MAX_LABELS:
        raise LabelingError(f"{len(labels)} labels is more than the {MAX_LABELS} a job may have")
    if too_long := [label for label in labels if len(label) > MAX_SET_LABEL_CHARS]:
        raise LabelingError(f"label {too_long[0][:30]!r}… is longer than {MAX_SET_LABEL_CHARS} characters")
    seen: dict[str, str] = {}
    for label in labels:
        if (first := seen.setdefault(label.casefold(), label)) != label:
            raise LabelingError(f"labels {first!r} and {label!r} differ only in case: keep one")
    return labels


def record_id(value: Any, what: str) -> int:
    """A job or item number from the browser, the API or the command line (an int, a whole float or
    digits); anything else (NaN, 1e300, "abc") is refused with a message."""
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) and value.is_integer() else None
    else:
        text = str(value).strip()
        number = int(text) if text.isascii() and text.isdigit() else None
    if number is None or not 1 <= number <= MAX_ID:
        article = "an" if what[0] in "aeiou" else "a"
        raise LabelingError(f"{visible_text(value)[:40]!r} is not {article} {what} number")
    return number


def is_item_file(path: Path, task: str) -> bool:
    return table.get(task).accepts(path.suffix)


def folder_files(folder: str | Path, task: str) -> list[Path]:
    spec = task_of(task)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LabelingError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and spec.accepts(p.suffix))
    if not files:
        raise LabelingError(f"{folder}: no {' or '.join(spec.input_kinds)} files in it")
    return files


def create_job(
    user: str | None,
    name: str,
    task: str,
    files: Sequence[str | Path],
    *,
    labels: Sequence[str] = (),
    prompts: Sequence[str] = (),
    overlap: int = 1,
    source: str = "",
    copy_files: bool = False,
    ordering: str | None = orders.POSITION,
    store: Store | None = None,
    registry: Registry | None = None,
) -> Job:
    """A new job over `files`. VQA and retrieval items are (file, question/query) pairs. `ordering` is
    the queue's order (`ordering.ORDERS`; None or blank: the task's default, uncertainty where a model
    scores the task; `position`: the items' creation order).

    `copy_files` keeps a copy under the data folder (uploads from the browser live in a temp folder).
    A diverse order embeds the items with `registry`'s embedder (None: the process's registry).
    `user` None is the operator at the command line, who holds the database file anyway."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    store = store_or_default(store)
    name = visible_text(name)
    if not name:
        raise LabelingError("give the job a name")
    if len(name) > MAX_NAME_CHARS:
        raise LabelingError(f"a job name may have at most {MAX_NAME_CHARS} characters")
    spec = task_of(task)
    if not 1 <= int(overlap) <= MAX_OVERLAP:
        raise LabelingError(f"overlap must be between 1 and {MAX_OVERLAP}")
    order = _order_of(spec.name, ordering)
    labels, prompts = check_label_set(parse_list(labels) or list(spec.default_labels)), parse_list(prompts)
    if spec.categorical and len(labels) < 2:
        raise LabelingError(f"a {spec.name} job needs at least two labels")
    if spec.prompt is not None and not prompts:
        raise LabelingError(f"a {spec.name} job needs {spec.prompt_plural}")
    paths = [Path(f) for f in files if spec.accepts(Path(f).suffix)]
    if not paths:
        raise LabelingError(f"no usable files: give {' or '.join(spec.input_kinds)} files")
    per_file = len(prompts) if spec.prompt is not None else 1
    if len(paths) * per_file > MAX_ITEMS:  # before any file is read, hashed or copied
        raise LabelingError(f"{len(paths) * per_file} items is over the {MAX_ITEMS} a job may have; split it")
    media = [_register(path, store, copy_files) for path in paths]
    if spec.prompt is not None:
        items = [(m.id, prompt) for prompt in prompts for m in media]
    else:
        items = [(m.id, "") for m in media]
    job = store.create_job(
        name,
        spec.name,
        items=items,
        labels=labels,
        prompts=prompts,
        overlap=int(overlap),
        source=source,
        created_by=user or LOCAL_OPERATOR,
        ordering=order,
    )
    _prepare_order(job, store, registry)
    return job


def _order_of(task: str, ordering: str | None) -> str:
    try:
        return orders.check_order(task, ordering)
    except orders.OrderError as error:
        raise LabelingError(str(error)) from None


def _prepare_order(job: Job, store: Store, registry: Registry | None) -> None:
    try:
        orders.prepare(job, store, registry=registry)
    except (ModelUnavailable, MediaError) as error:
        raise LabelingError(f"the {job.ordering} order needs the embedder: {error}") from None


def set_order(
    user: str | None,
    job_id: int | str | None,
    ordering: str,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
) -> Job:
    """Change a job's queue order (admins; `user` None: the CLI). Items already handed out stay with their
    annotators; the rest come in the new order."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    job = store.set_job_ordering(job.id, _order_of(job.task, ordering))
    _prepare_order(job, store, registry)
    return job


@dataclass(frozen=True)
class ItemSource:
    """A job's item files and what the job records as their source."""

    files: list[Path]
    source: str
    query: str | None = None  # the text query whose results these are


def items_from(
    user: str | None,
    task: str,
    *,
    folder: str | Path | None = None,
    files: Sequence[str | Path] = (),
    index_name: str | None = None,
    query: str | None = None,
    k: int = QUERY_K,
    store: Store | None = None,
    indexes: IndexService | None = None,
) -> ItemSource:
    """Items from exactly one of: a folder, files (uploads), every item of an index, or the top-`k` results
    of a text query (searching `index_name`, else the default index, in `indexes`: the process's index
    service, needed for these two). Admins only (`user` None: the CLI)."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    task_of(task)
    folder = str(folder or "").strip() or None
    index_name = (index_name or "").strip() or None
    query = (query or "").strip() or None
    given = [
        what for what, value in (("a folder", folder), ("files", list(files)), ("a query", query)) if value
    ]
    if index_name and not query:
        given.append("an index")
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise LabelingError(f"take the items from one of: a folder, uploaded files, an index, a query{got}")
    if folder:
        return ItemSource(folder_files(folder, task), folder)
    if files:
        return ItemSource([Path(f) for f in files], "upload")
    name = index_name or retrieval.DEFAULT_INDEX
    if indexes is None:
        raise TypeError("items from an index or a query need the index service (`indexes=`)")
    if query is None:
        paths = indexes.indexed_paths(name, store=store)
        if not paths:
            raise LabelingError(f"index {name!r} holds no items")
        return ItemSource([Path(p) for p in paths], f"index {name}")
    if not 1 <= int(k) <= MAX_ITEMS:
        raise LabelingError(f"take between 1 and {MAX_ITEMS} results of the query, not {k}")
    found = indexes.search(text=query, k=int(k), name=name, store=store)
    if not found.results:
        raise LabelingError(f"the query {query!r} found nothing in index {name!r}")
    paths = [Path(result.path) for result in found.results]
    return ItemSource(paths, f"query {query!r}: top {len(paths)} of index {name}", query=query)


def create_job_from(
    user: str | None,
    name: str,
    task: str,
    items: ItemSource,
    *,
    labels: Sequence[str] | str = (),
    prompts: Sequence[str] | str = (),
    overlap: int = 1,
    ordering: str | None = orders.POSITION,
    store: Store | None = None,
    registry: Registry | None = None,
) -> Job:
    """A job over items from `items_from`. A retrieval job over a query's results judges each result
    against that query, which becomes the items' prompt."""
    prompts = parse_list(prompts)
    if items.query is not None and task_of(task).prompt_from_query:
        if prompts and prompts != [items.query]:
            raise LabelingError(
                "a retrieval job over a query's results judges them against that query: leave the queries out"
            )
        prompts = [items.query]
    return create_job(
        user,
        name,
        task,
        items.files,
        labels=parse_list(labels),
        prompts=prompts,
        overlap=overlap,
        source=items.source,
        copy_files=items.source == "upload",
        ordering=ordering,
        store=store,
        registry=registry,
    )


def _register(path: Path, store: Store, copy_files: bool) -> MediaItem:
    if not path.is_file():
        raise MediaError(f"{path.name}: file not found")
    kind = "video" if is_video_path(path) else "image"
    if kind == "image":
        load_image(path)  # refuse corrupt images before they reach a queue
    if copy_files:
        path = keep_file(path, media_folder(store))
    return store.add_media(path, kind)


def item_count(job: Job, *, store: Store | None = None) -> int:
    return len(store_or_default(store).job_items(job.id))


def jobs(user: str, *, store: Store | None = None) -> list[Job]:
    accounts.require_role(user, ANNOTATOR, store=store)
    return store_or_default(store).jobs()


def job(job_id: int | str | None, user: str, *, store: Store | None = None) -> Job:
    accounts.require_role(user, ANNOTATOR, store=store)
    return get_job(job_id, store_or_default(store))


def get_job(job_id: int | str | None, store: Store) -> Job:
    """The job `job_id`, with no role check (the caller made it)."""
    if job_id in (None, ""):
        raise LabelingError("pick a job first")
    job = store.job(record_id(job_id, "job"))
    if job is None:
        raise LabelingError(f"no job #{job_id}")
    return job


def get_item(job: Job, item_id: int | str | None, store: Store) -> JobItem:
    if item_id in (None, ""):
        raise LabelingError("no item open: press Next item")
    number = record_id(item_id, "item")
    item = store.job_item(number)
    if item is None or item.job_id != job.id:
        raise LabelingError(f"no item #{number} in job {job.name!r}")
    return item


def clean_label(job: Job, value: Any) -> str:
    """A submitted or decided label with its spacing collapsed; one of the label set for label tasks."""
    text = visible_text(value or "")
    if not text:
        raise LabelingError("the label is empty: accept the suggestion or type one")
    if table.get(job.task).categorical:
        by_case = {label.casefold(): label for label in job.labels}
        if text.casefold() not in by_case:
            raise LabelingError(f"{text!r} is not one of this job's labels: {', '.join(job.labels)}")
        text = by_case[text.casefold()]
    if len(text) > MAX_LABEL_CHARS:
        raise LabelingError(f"the label is over {MAX_LABEL_CHARS} characters")
    return text
