"""The public API: the actions a script needs, as plain functions over plain data (dicts and lists).

Each endpoint has hidden input components named like its parameters (so `view_api()` names them, with
the UI's defaults) and one hidden JSON output named for what it returns. Media arrive as files
(`gradio_client.handle_file(path)`) and are checked by mmdemo, as in the CLI, so a bad file gets the same
one-line message as `gr.Error`. The UI's own events are private (`mmdemo.ui.app`); `ENDPOINTS` is the
documented list, `MCP_TOOLS` the endpoints that are also MCP tools.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo import accounts
from mmdemo.labeling import export, jobs, queue
from mmdemo.labeling.queue import ItemView
from mmdemo.search import retrieval
from mmdemo.search.retrieval import Search
from mmdemo.services import Services
from mmdemo.serving import reporting
from mmdemo.serving.models.base import ModelInfo
from mmdemo.tasks import captioning, table, vqa
from mmdemo.tasks import video_classify as videos
from mmdemo.tasks.fusion import AUDIO, DEFAULT_WEIGHTS, VISUAL
from mmdemo.tasks.video_classify import DEFAULT_FRAMES, DEMO_LABELS
from mmdemo.ui.common import current_user, friendly
from mmdemo.ui.labeling.shared import worker
from mmdemo.ui.runtime import model_queue

DEFAULT_K = 8
MCP_TOOLS = ("search_text", "search_image", "caption", "ask", "classify_video")

# Gradio warns about any public endpoint with a gr.State input; only `judge` has one (the session's last
# search), and it is not an MCP tool.
warnings.filterwarnings("ignore", message="This MCP server includes a tool that has a gr.State input")


def model_dict(model: ModelInfo | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {
        "name": model.name,
        "version": model.version,
        "profile": model.profile,
        "device": model.device,
        "baseline": bool(model.baseline),
    }


def search_dict(found: Search) -> dict[str, Any]:
    return {
        "query": found.query_text,
        "query_image": found.query_path,
        "index": found.index_name,
        "index_version": found.index_version,
        "embedder": found.embedder.name,
        "ranked_by": found.adapter_version,
        "results": [
            {"rank": r.rank, "name": r.name, "score": round(r.score, 6), "media_id": r.media_id}
            for r in found.results
        ],
    }


# -- search ------------------------------------------------------------------------------------------------
def search_text(services: Services, query: str, k: int = DEFAULT_K) -> tuple[dict[str, Any], Search]:
    """Search the default image index by a text description (built from the sample photos on first use).

    Parameters:
        query: what to look for, e.g. "a cup of coffee"
        k: how many results, best first
    Returns:
        {"query", "index", "index_version", "embedder", "ranked_by", "results": [{"rank", "name", "score",
        "media_id"}]}
    """
    retrieval.check_query(query)  # before a first search builds the index
    services.index.default_index()
    found = services.index.search(text=query, k=int(k or DEFAULT_K))
    return search_dict(found), found


def search_image(services: Services, image: str | None, k: int = DEFAULT_K) -> tuple[dict[str, Any], Search]:
    """Search the default image index by an example image: the most similar images first.

    Parameters:
        image: the query image file
        k: how many results, best first
    Returns:
        the same shape as search_text, with "query_image" set
    """
    kept = retrieval.keep_uploads([checked_image(image)])[0]
    services.index.default_index()
    found = services.index.search(image=kept, k=int(k or DEFAULT_K))
    return search_dict(found), found


def judge(found: Search | None, rank: int | None, relevant: bool, request: gr.Request) -> dict[str, Any]:
    """Judge one result of this session's last search as relevant or not (stored for fine-tuning).

    Parameters:
        rank: the result's rank in the last search_text / search_image of this client
        relevant: true for relevant, false for not relevant
    Returns:
        {"rank", "name", "relevant", "user"}
    """
    if found is None or not found.results:
        raise ValueError("search first (search_text or search_image), then judge a result by rank")
    ranks = {r.rank: r for r in found.results}
    if rank is None or int(rank) not in ranks:
        raise ValueError(f"there is no result #{rank}; pick one of 1–{len(found.results)}")
    user = current_user(request)
    retrieval.judge(found, int(rank), bool(relevant), user=user)
    return {"rank": int(rank), "name": ranks[int(rank)].name, "relevant": bool(relevant), "user": user}


def add_images(services: Services, images: list[str] | None) -> dict[str, Any]:
    """Add images to the default index (files already indexed are skipped; unreadable ones are reported).

    Parameters:
        images: the image files to add
    Returns:
        {"added", "already_indexed", "failed": [{"name", "why"}], "size"}
    """
    if not images:
        raise ValueError("no images given: pass one or more image files")
    services.index.default_index()
    report = services.index.ingest(retrieval.keep_uploads(images))
    return {
        "added": [Path(path).name for path in report.added],  # names: server paths are not the caller's
        "already_indexed": [Path(path).name for path in report.already_indexed],
        "failed": [{"name": name, "why": why} for name, why in report.failed],
        "size": len(services.index.open_index()),
    }


# -- captioning and VQA ----------------------------------------------------------------------------------
def checked_image(image: str | None) -> str:
    if not image:
        from mmdemo.media.files import MediaError

        raise MediaError("no image given: pass an image file")
    return image


def caption(
    services: Services,
    image: str | None,
    strategy: str = "beam",
    beams: int = 3,
    max_length: int = 30,
    temperature: float = 1.0,
    prefix: str = "",
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Caption one image; the prediction is stored, so it can be corrected with correct_caption.

    Parameters:
        image: the image file
        strategy: "beam" (the likeliest caption) or "sample" (a different caption each time, seeded)
        beams: number of beams for beam search
        max_length: maximum caption length in tokens
        temperature: sampling temperature
        prefix: text the caption must start with (conditional captioning)
    Returns:
        {"caption", "prediction_id", "model": {...}, "latency_ms", "notes"}
    """
    options, notes = captioning.caption_options(
        strategy=strategy,
        num_beams=int(beams),
        max_length=int(max_length),
        prefix=prefix or "",
        temperature=float(temperature),
    )
    result = captioning.caption_image(image, options, user=current_user(request), registry=services.registry)
    return {
        "caption": result.caption,
        "prediction_id": result.prediction_id,
        "model": model_dict(result.model),
        "latency_ms": round(result.latency_ms, 1),
        "notes": [*notes, *result.notes],
    }


def caption_batch(
    services: Services,
    images: list[str] | None,
    strategy: str = "beam",
    beams: int = 3,
    max_length: int = 30,
    temperature: float = 1.0,
    prefix: str = "",
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Caption several images in one batched model call; unreadable files are skipped with a message.

    Parameters:
        images: the image files
        strategy: "beam" or "sample"
        beams: number of beams for beam search
        max_length: maximum caption length in tokens
        temperature: sampling temperature
        prefix: text each caption must start with
    Returns:
        {"captions": [{"name", "caption", "prediction_id"}], "skipped", "model": {...}, "notes"}
    """
    options, notes = captioning.caption_options(
        strategy=strategy,
        num_beams=int(beams),
        max_length=int(max_length),
        prefix=prefix or "",
        temperature=float(temperature),
    )
    results, skipped = captioning.caption_images(
        [str(path) for path in images or []],
        options,
        user=current_user(request),
        skip_bad=True,
        registry=services.registry,
    )
    return {
        "captions": [
            {"name": r.name, "caption": r.caption, "prediction_id": r.prediction_id} for r in results
        ],
        "skipped": skipped,
        "model": model_dict(results[0].model),
        "notes": [*notes, *(f"{r.name}: {note}" for r in results for note in r.notes)],
    }


def ask(
    services: Services, image: str | None, question: str, request: gr.Request | None = None
) -> dict[str, Any]:
    """Answer a question about an image (visual question answering); the prediction is stored.

    Parameters:
        image: the image file
        question: the question, e.g. "Is there a cat?"
    Returns:
        {"question", "answer", "top": [{"answer", "score"}], "prediction_id", "model": {...}, "notes"}
    """
    result = vqa.ask(image, question, user=current_user(request), registry=services.registry)
    return {
        "question": result.question,
        "answer": result.answer,
        "top": [{"answer": answer, "score": round(score, 6)} for answer, score in result.top],
        "prediction_id": result.prediction_id,
        "model": model_dict(result.model),
        "latency_ms": round(result.latency_ms, 1),
        "notes": result.notes,
    }


# -- video -------------------------------------------------------------------------------------------------
def classify_video(
    services: Services,
    clip: str | None,
    labels: str = "\n".join(DEMO_LABELS),
    label_set: str = "",
    visual_weight: float = DEFAULT_WEIGHTS[VISUAL],
    audio_weight: float = DEFAULT_WEIGHTS[AUDIO],
    frames: int = DEFAULT_FRAMES,
    request: gr.Request | None = None,
) -> dict[str, Any]:
    """Classify a video clip (or a photo, as a one-frame clip) against labels, from its frames and sound.

    Parameters:
        clip: the video file
        labels: the labels, one per line or comma-separated (ignored when label_set is given)
        label_set: the name of a saved label set to use instead of labels
        visual_weight: the weight of the frames' scores (0 leaves them out)
        audio_weight: the weight of the sound's scores (0 leaves it out)
        frames: how many frames to sample
    Returns:
        {"fused": [{"label", "score"}], "visual": [...], "audio": [...], "prediction_id", "timestamps",
        "weights", "model": {...}, "notes"}
    """
    names = videos.load_label_set(label_set) if (label_set or "").strip() else videos.labels_from_text(labels)
    result = videos.classify_video(
        clip,
        names,
        {VISUAL: float(visual_weight), AUDIO: float(audio_weight)},
        n_frames=int(frames or DEFAULT_FRAMES),
        user=current_user(request),
        registry=services.registry,
    )
    return {
        **result.as_json(),
        "prediction_id": result.prediction_id,
        "timestamps": result.timestamps,
        "weights": result.weights,
        "model": model_dict(result.model),
        "notes": result.notes,
    }


# -- corrections -------------------------------------------------------------------------------------------
def correct_caption(prediction_id: int | None, caption: str, request: gr.Request) -> dict[str, Any]:
    """Store the corrected caption of a caption prediction.

    Parameters:
        prediction_id: the prediction_id that caption returned
        caption: the right caption
    Returns:
        {"correction_id", "prediction_id"}
    """
    correction_id = captioning.correct_caption(prediction_id, caption, user=current_user(request))
    return {"correction_id": correction_id, "prediction_id": prediction_id}


def correct_answer(prediction_id: int | None, answer: str, request: gr.Request) -> dict[str, Any]:
    """Store the corrected answer of a VQA prediction.

    Parameters:
        prediction_id: the prediction_id that ask returned
        answer: the right answer
    Returns:
        {"correction_id", "prediction_id"}
    """
    correction_id = vqa.correct_answer(prediction_id, answer, user=current_user(request))
    return {"correction_id": correction_id, "prediction_id": prediction_id}


def correct_video_label(prediction_id: int | None, label: str, request: gr.Request) -> dict[str, Any]:
    """Store the right label of a video classification (one of its labels, or a new one).

    Parameters:
        prediction_id: the prediction_id that classify_video returned
        label: the right label
    Returns:
        {"correction_id", "prediction_id", "label", "in_label_set"}
    """
    correction = videos.correct_video(prediction_id, label, current_user(request))
    return {
        "correction_id": correction.id,
        "prediction_id": correction.prediction_id,
        "label": correction.output["label"],
        "in_label_set": correction.output["in_label_set"],
    }


# -- labeling ----------------------------------------------------------------------------------------------
def item_dict(view: ItemView | None) -> dict[str, Any]:
    if view is None:
        return {"done": True, "item_id": None}
    spec = table.get(view.job.task)
    return {
        "done": False,
        "job_id": view.job.id,
        "task": view.job.task,
        "item_id": view.item.id,
        "file": view.media.path.rsplit("/", 1)[-1],
        "prompt": view.item.prompt,
        "labels": view.job.labels if spec.categorical else [],
        "prefill": view.prefill,
        "model": view.model_name,
        "your_label": view.own_label,
        "progress": {
            "done_by_you": view.progress.done_by_you,
            "skipped_by_you": view.progress.skipped_by_you,
            "total_items": view.progress.total_items,
            "complete_items": view.progress.complete_items,
        },
    }


def labeling_jobs(request: gr.Request) -> list[dict[str, Any]]:
    """The labeling jobs you may work on.

    Returns:
        [{"job_id", "name", "task", "overlap", "items"}]
    """
    user = worker(request)
    if not accounts.has_role(user, accounts.ANNOTATOR):
        return []
    return [
        {"job_id": j.id, "name": j.name, "task": j.task, "overlap": j.overlap, "items": jobs.item_count(j)}
        for j in jobs.jobs(user)
    ]


def labeling_next(job_id: int | None, request: gr.Request) -> dict[str, Any]:
    """Your next item of a labeling job, with the model's label pre-filled ({"done": true} when none is left).

    Parameters:
        job_id: the job, from labeling_jobs
    Returns:
        {"done", "job_id", "task", "item_id", "file", "prompt", "labels", "prefill", "model", "your_label",
        "progress"}
    """
    return item_dict(queue.next_item(job_id, worker(request), predictor=queue.predict))


def labeling_submit(
    job_id: int | None, item_id: int | None, label: str, request: gr.Request
) -> dict[str, Any]:
    """Submit your label for an item; returns your next item.

    Parameters:
        job_id: the job
        item_id: the item, from labeling_next
        label: your label (one of the job's labels for label-set tasks)
    Returns:
        the next item, as labeling_next returns it
    """
    user = worker(request)
    queue.submit(job_id, item_id, user, label)
    return item_dict(queue.next_item(job_id, user, predictor=queue.predict))


def labeling_skip(job_id: int | None, item_id: int | None, request: gr.Request) -> dict[str, Any]:
    """Skip an item for now (it comes back once new items run out); returns your next item.

    Parameters:
        job_id: the job
        item_id: the item to skip
    Returns:
        the next item, as labeling_next returns it
    """
    user = worker(request)
    queue.skip(job_id, item_id, user)
    return item_dict(queue.next_item(job_id, user, predictor=queue.predict))


# -- models and export -------------------------------------------------------------------------------------
def status(services: Services) -> dict[str, Any]:
    """Which model serves each task, where it comes from, and whether it is loaded.

    Returns:
        {"profile", "device", "models": [{column: value}]}
    """
    rows = reporting.status_rows(services.registry.status())
    return {
        "profile": services.registry.profile,
        "device": str(services.registry.device),
        "models": [dict(zip(reporting.STATUS_COLUMNS, row, strict=True)) for row in rows],
    }


def versions(services: Services) -> list[dict[str, Any]]:
    """The fine-tuned model versions of every task, newest first, and which one is served.

    Returns:
        [{"task", "version", "status", "serving", "base model", "profile", "from", "metrics", "by",
        "created"}]
    """
    rows = reporting.version_rows(services.registry, services.registry.versions())
    return [dict(zip(reporting.VERSION_COLUMNS, row, strict=True)) for row in rows]


def rollback(services: Services, task: str, to_version: str = "", request: gr.Request | None = None) -> dict:
    """Stop serving a task's newest fine-tuned version (admins only once accounts exist).

    Parameters:
        task: the task, e.g. "caption"
        to_version: the version to serve instead ("v2", "base"); empty: the one before the newest
    Returns:
        {"task", "serving", "user"}
    """
    user = current_user(request)
    accounts.require_roll_back(user)
    if not (task or "").strip():
        raise jobs.LabelingError("name the task to roll back")
    serving = services.registry.rollback(task.strip(), (to_version or "").strip() or None, user=user)
    return {"task": task.strip(), "serving": serving, "user": user}


def export_labels(
    task: str,
    format: str = "jsonl",
    include_anonymous: bool = False,
    include_unreviewed: bool = False,
    request: gr.Request | None = None,
) -> tuple[str, dict[str, Any]]:
    """Export a task's final labels as a zip of train/validation files (admins only).

    Parameters:
        task: caption, vqa, video or retrieval
        format: jsonl, parquet or hf
        include_anonymous: include labels of visitors who were not signed in
        include_unreviewed: include undecided items (majority label)
    Returns:
        the zip file, and {"task", "format", "rows": {"train", "validation"}}
    """
    archive, result = export.export_archive(
        task,
        format,
        current_user(request),
        include_anonymous=include_anonymous,
        include_unreviewed=include_unreviewed,
    )
    return str(archive), {"task": task, "format": format, "rows": result.rows}


def whoami(request: gr.Request) -> dict[str, Any]:
    """Who the API sees you as: your user name and role ("anonymous" without an account).

    Returns:
        {"user", "role"}
    """
    user = current_user(request)
    return {"user": user, "role": None if accounts.is_anonymous(user) else accounts.role_of(user)}


# -- wiring ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    name: str
    fn: Callable[..., Any]
    inputs: list[Any]
    outputs: list[Any]
    model: str | None = None  # the tab whose model queue it joins


PLAIN_PATH = (
    "{name}: a plain path string is not a file; send the file with gradio_client.handle_file(path) "
    "(or a URL through MCP)"
)


def media_file(name: str, *, multiple: bool = False) -> gr.File:
    """A hidden file input that answers a plain path string (which names a file on the caller's machine, not
    the server's) with a clear message, where `gr.File` fails in validation before any handler runs. The
    instance is adapted, not subclassed: Gradio writes a `.pyi` stub beside every module defining one."""
    component = gr.File(
        label=name, type="filepath", file_count="multiple" if multiple else "single", visible=False
    )
    file_model, preprocess = component.data_model, component.preprocess
    component.data_model = None  # validated below instead
    schema = file_model.model_json_schema()
    schema["additional_description"] = schema.pop("description", None)

    def checked(payload: Any) -> Any:
        if payload is None:
            return None
        if any(
            not isinstance(value, dict) for value in (payload if isinstance(payload, list) else [payload])
        ):
            raise gr.Error(PLAIN_PATH.format(name=name), print_exception=False)
        return preprocess(file_model.model_validate(payload, context={"validate_meta": True}))

    component.api_info = lambda: schema  # type: ignore[method-assign]
    component.preprocess = checked  # type: ignore[method-assign]
    return component


def _file(name: str) -> gr.File:
    return media_file(name)


def _files(name: str) -> gr.File:
    return media_file(name, multiple=True)


def _text(name: str, value: str | None = None) -> gr.Textbox:
    return gr.Textbox(label=name, value=value, visible=False)


def _number(name: str, value: float | None = None, *, integer: bool = True) -> gr.Number:
    return gr.Number(label=name, value=value, precision=0 if integer else None, visible=False)


def _flag(name: str, value: bool = False) -> gr.Checkbox:
    return gr.Checkbox(label=name, value=value, visible=False)


def _json(name: str) -> gr.JSON:
    return gr.JSON(label=name, visible=False)


def _bound(function: Callable[..., Any], services: Services) -> Callable[..., Any]:
    from mmdemo.ui.runtime import bind

    return bind(function, services)


def _not_a_tool(function: Callable[..., Any]) -> Callable[..., Any]:
    """Listed in the API but not as an MCP tool (Gradio lists only functions whose `_mcp_type` is "tool")."""
    function._mcp_type = "api-only"  # type: ignore[attr-defined]
    return function


def _caption_options() -> list[Any]:
    return [
        _text("strategy", "beam"),
        _number("beams", 3),
        _number("max_length", 30),
        _number("temperature", 1.0, integer=False),
        _text("prefix", ""),
    ]


def build(services: Services) -> list[str]:
    """The public endpoints, inside the app's Blocks; returns their names, in order."""
    found = gr.State(None)
    trigger = gr.Button(visible=False)
    endpoints = [
        Endpoint(
            "search_text",
            _bound(search_text, services),
            [_text("query"), _number("k", DEFAULT_K)],
            [_json("search"), found],
            "retrieval",
        ),
        Endpoint(
            "search_image",
            _bound(search_image, services),
            [_file("image"), _number("k", DEFAULT_K)],
            [_json("search"), found],
            "retrieval",
        ),
        Endpoint("judge", judge, [found, _number("rank"), _flag("relevant", True)], [_json("judgement")]),
        Endpoint(
            "add_images", _bound(add_images, services), [_files("images")], [_json("report")], "retrieval"
        ),
        Endpoint(
            "caption",
            _bound(caption, services),
            [_file("image"), *_caption_options()],
            [_json("caption")],
            "captioning",
        ),
        Endpoint(
            "caption_batch",
            _bound(caption_batch, services),
            [_files("images"), *_caption_options()],
            [_json("captions")],
            "captioning",
        ),
        Endpoint("ask", _bound(ask, services), [_file("image"), _text("question")], [_json("answer")], "vqa"),
        Endpoint(
            "classify_video",
            _bound(classify_video, services),
            [
                _file("clip"),
                _text("labels", "\n".join(DEMO_LABELS)),
                _text("label_set", ""),
                _number("visual_weight", DEFAULT_WEIGHTS[VISUAL], integer=False),
                _number("audio_weight", DEFAULT_WEIGHTS[AUDIO], integer=False),
                _number("frames", DEFAULT_FRAMES),
            ],
            [_json("classification")],
            "video",
        ),
        Endpoint(
            "correct_caption",
            correct_caption,
            [_number("prediction_id"), _text("caption")],
            [_json("correction")],
        ),
        Endpoint(
            "correct_answer",
            correct_answer,
            [_number("prediction_id"), _text("answer")],
            [_json("correction")],
        ),
        Endpoint(
            "correct_video",
            correct_video_label,
            [_number("prediction_id"), _text("label")],
            [_json("correction")],
        ),
        Endpoint("labeling_jobs", labeling_jobs, [], [_json("jobs")]),
        Endpoint("labeling_next", labeling_next, [_number("job_id")], [_json("item")], "labeling"),
        Endpoint(
            "labeling_submit",
            labeling_submit,
            [_number("job_id"), _number("item_id"), _text("label")],
            [_json("item")],
            "labeling",
        ),
        Endpoint(
            "labeling_skip",
            labeling_skip,
            [_number("job_id"), _number("item_id")],
            [_json("item")],
            "labeling",
        ),
        Endpoint("status", _bound(status, services), [], [_json("status")]),
        Endpoint("versions", _bound(versions, services), [], [_json("versions")]),
        Endpoint(
            "rollback",
            _bound(rollback, services),
            [_text("task"), _text("to_version", "")],
            [_json("rollback")],
        ),
        Endpoint(
            "export",
            export_labels,
            [
                _text("task"),
                _text("format", "jsonl"),
                _flag("include_anonymous"),
                _flag("include_unreviewed"),
            ],
            [gr.File(label="archive", visible=False), _json("export")],
        ),
        Endpoint("whoami", whoami, [], [_json("whoami")]),
    ]
    for endpoint in endpoints:
        fn = friendly(endpoint.fn)
        if endpoint.name not in MCP_TOOLS:
            _not_a_tool(fn)
        trigger.click(
            fn,
            endpoint.inputs,
            endpoint.outputs,
            api_name=endpoint.name,
            show_progress="hidden",
            **(model_queue(endpoint.model) if endpoint.model else {}),
        )
    return [endpoint.name for endpoint in endpoints]


ENDPOINTS = (
    "search_text",
    "search_image",
    "judge",
    "add_images",
    "caption",
    "caption_batch",
    "ask",
    "classify_video",
    "correct_caption",
    "correct_answer",
    "correct_video",
    "labeling_jobs",
    "labeling_next",
    "labeling_submit",
    "labeling_skip",
    "status",
    "versions",
    "rollback",
    "export",
    "whoami",
)
