"""The public API: the actions a script needs, as plain functions over plain data (dicts and lists).

Each endpoint has hidden input components named like its parameters (so `view_api()` names them, with
the UI's defaults) and one hidden JSON output named for what it returns. Media arrive as files
(`gradio_client.handle_file(path)`) and are checked by mmdemo, as in the CLI, so a bad file gets the same
one-line message as `gr.Error`. The UI's own events are private (`mmdemo.ui.app`); `ENDPOINTS` is the
documented list, `MCP_TOOLS` the endpoints that are also MCP tools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from mmdemo.labeling import queue
from mmdemo.services import Services
from mmdemo.tasks.fusion import AUDIO, DEFAULT_WEIGHTS, VISUAL
from mmdemo.tasks.video_classify import DEFAULT_FRAMES, DEMO_LABELS
from mmdemo.ui import api_predict, api_search, api_work
from mmdemo.ui.api_search import DEFAULT_K, LastSearches, Searching
from mmdemo.ui.common import friendly
from mmdemo.ui.runtime import bind, model_queue

MCP_TOOLS = ("search_text", "search_image", "caption", "ask", "classify_video")


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


def _bound(function: Callable[..., Any], services: object) -> Callable[..., Any]:
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
    last = LastSearches()
    searching = Searching(services, last)
    predictor = queue.ModelPredictor(services)
    trigger = gr.Button(visible=False)
    endpoints = [
        Endpoint(
            "search_text",
            _bound(api_search.search_text, searching),
            [_text("query"), _number("k", DEFAULT_K)],
            [_json("search")],
            "retrieval",
        ),
        Endpoint(
            "search_image",
            _bound(api_search.search_image, searching),
            [_file("image"), _number("k", DEFAULT_K)],
            [_json("search")],
            "retrieval",
        ),
        Endpoint(
            "judge",
            _bound(api_search.judge, last),
            [_number("rank"), _flag("relevant", True)],
            [_json("judgement")],
        ),
        Endpoint(
            "add_images",
            _bound(api_search.add_images, services),
            [_files("images")],
            [_json("report")],
            "retrieval",
        ),
        Endpoint(
            "caption",
            _bound(api_predict.caption, services),
            [_file("image"), *_caption_options()],
            [_json("caption")],
            "captioning",
        ),
        Endpoint(
            "caption_batch",
            _bound(api_predict.caption_batch, services),
            [_files("images"), *_caption_options()],
            [_json("captions")],
            "captioning",
        ),
        Endpoint(
            "ask",
            _bound(api_predict.ask, services),
            [_file("image"), _text("question")],
            [_json("answer")],
            "vqa",
        ),
        Endpoint(
            "classify_video",
            _bound(api_predict.classify_video, services),
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
            api_predict.correct_caption,
            [_number("prediction_id"), _text("caption")],
            [_json("correction")],
        ),
        Endpoint(
            "correct_answer",
            api_predict.correct_answer,
            [_number("prediction_id"), _text("answer")],
            [_json("correction")],
        ),
        Endpoint(
            "correct_video",
            api_predict.correct_video_label,
            [_number("prediction_id"), _text("label")],
            [_json("correction")],
        ),
        Endpoint("labeling_jobs", api_work.labeling_jobs, [], [_json("jobs")]),
        Endpoint(
            "labeling_next",
            _bound(api_work.labeling_next, predictor),
            [_number("job_id")],
            [_json("item")],
            "labeling",
        ),
        Endpoint(
            "labeling_submit",
            _bound(api_work.labeling_submit, predictor),
            [_number("job_id"), _number("item_id"), _text("label")],
            [_json("item")],
            "labeling",
        ),
        Endpoint(
            "labeling_skip",
            _bound(api_work.labeling_skip, predictor),
            [_number("job_id"), _number("item_id")],
            [_json("item")],
            "labeling",
        ),
        Endpoint("status", _bound(api_work.status, services), [], [_json("status")]),
        Endpoint("versions", _bound(api_work.versions, services), [], [_json("versions")]),
        Endpoint(
            "rollback",
            _bound(api_work.rollback, services),
            [_text("task"), _text("to_version", "")],
            [_json("rollback")],
        ),
        Endpoint(
            "export",
            api_work.export_labels,
            [
                _text("task"),
                _text("format", "jsonl"),
                _flag("include_anonymous"),
                _flag("include_unreviewed"),
            ],
            [gr.File(label="archive", visible=False), _json("export")],
        ),
        Endpoint("whoami", api_work.whoami, [], [_json("whoami")]),
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
