"""The Retrieval tab: search the image index by text or by image, judge results, add images."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from mmdemo import accounts
from mmdemo.media.files import MediaError, load_image, write_once
from mmdemo.search import retrieval
from mmdemo.search.retrieval import Result, Search
from mmdemo.search.service import IndexService
from mmdemo.ui.common import current_user, friendly, visitor
from mmdemo.ui.runtime import bind, model_queue, prepare_models

DEFAULT_K = 8
TEXT_EXAMPLES = ["a cup of coffee", "a cat", "a motorcycle", "the moon", "a rocket launch", "a flower"]
IMAGE_EXAMPLES = ["coffee.jpg", "cat.jpg", "rocket.jpg", "flower.jpg"]
PICK_HINT = "Click a result to judge it or to search by it."

THUMBNAIL_SIDE = 384
EMBED_TASK = "embed"
Gallery = list[tuple[Image.Image, str]]


def caption(result: Result, judged: dict[int, bool]) -> str:
    verdict = judged.get(result.rank)
    mark = "" if verdict is None else ("✓ " if verdict else "✗ ")
    # the score first: a long file name is cut at the thumbnail's edge, not the score
    return f"{mark}#{result.rank} {result.score:.3f} · {result.name}"


def thumbnail(path: str) -> Image.Image:
    """A small copy to show: indexed files may live anywhere (a user's folders, `/data` on Spaces), where the
    web server will not serve files from, and full-size photos would be slow to send."""
    try:
        return load_image(path, max_side=THUMBNAIL_SIDE).image
    except MediaError:
        return Image.new("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE), (200, 200, 200))  # moved or deleted since


def gallery_value(found: Search | None, judged: dict[int, bool]) -> Gallery:
    return [(thumbnail(r.path), caption(r, judged)) for r in found.results] if found else []


def describe(found: Search, note: str = "") -> str:
    query = f"“{found.query_text}”" if found.query_text else f"the image {Path(found.query_path or '').name}"
    head = f"{note} " if note else ""
    if not found.results:
        add = "" if found.index_size else " Add images below."
        return f"{head}No results for {query}: {retrieval.why_no_results(found)}{add}"
    return (
        f"{head}**{len(found.results)} results** for {query} · embedder `{found.embedder.name}`"
        f" · index `{found.index_name}` v{found.index_version} · {ranked_by(found)}"
    )


def ranked_by(found: Search) -> str:
    """Which model version ranked the results (judgements record it too)."""
    if found.adapter_version == retrieval.BASE_VERSION:
        return "ranked by the base embeddings"
    return f"ranked by retrieval adapter `{found.adapter_version}`"


def no_pick() -> Any:
    """The "Result #" box before a pick: hidden (a number box cannot show "nothing": it shows 0)."""
    return gr.update(value=None, visible=False)


def _show(found: Search, note: str = "") -> tuple[Any, ...]:
    """Outputs of every search: gallery, summary, the search, no judgements, nothing picked, the hint."""
    return gallery_value(found, {}), describe(found, note), found, {}, no_pick(), PICK_HINT


def _ensure_index(service: IndexService) -> str:
    return service.default_index()[1]


@friendly
def search_by_text(
    service: IndexService,
    query: str,
    k: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> tuple[Any, ...]:
    try:
        retrieval.check_query(query)  # before a first search builds the index
    except ValueError as error:  # nothing typed yet: a hint, not an error painted on every output
        gr.Info(str(error))
        return (gr.skip(),) * 6
    prepare_models(progress, [EMBED_TASK], service.registry)
    note = _ensure_index(service)
    return _show(service.search(text=query, k=int(k)), note)


@friendly
def search_by_image(
    service: IndexService,
    image: str | None,
    k: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> tuple[Any, ...]:
    if not image:
        return (gr.skip(),) * 6  # the image was cleared: keep what is shown
    prepare_models(progress, [EMBED_TASK], service.registry)
    note = _ensure_index(service)
    kept = retrieval.keep_uploads([image])[0]
    return _show(service.search(image=kept, k=int(k)), note)


@friendly
def search_by_result(
    service: IndexService, found: Search | None, rank: float | None, k: float
) -> tuple[Any, ...]:
    result = picked(found, rank)
    return _show(service.search(image=result.path, k=int(k)))


def picked(found: Search | None, rank: float | None) -> Result:
    if found is None or not found.results:
        raise gr.Error("Search first, then click a result.", print_exception=False)
    if not rank:
        raise gr.Error("Click a result first.", print_exception=False)
    for result in found.results:
        if result.rank == int(rank):
            return result
    raise gr.Error(
        f"There is no result #{int(rank)}; pick one of 1–{len(found.results)}.", print_exception=False
    )


@friendly
def picked_image(found: Search | None, rank: float | None) -> str:
    """The picked result's file, copied (same bytes, same name) to the temp folder, which the web server
    may send to another tab: indexed files may live where it may not (`/data` on Spaces)."""
    result = picked(found, rank)
    copy = Path(tempfile.gettempdir()) / "mmdemo-picked" / result.media_id[:16] / result.name
    try:
        return str(write_once(copy, lambda target: shutil.copyfile(result.path, target)))
    except OSError:
        raise MediaError(f"{result.name} was moved or deleted since it was indexed") from None


@dataclass(frozen=True)
class Handoff:
    """What other tabs take from this one: the search shown, the picked rank, and the buttons that send the
    picked image on."""

    found: gr.State
    rank: gr.Number
    caption_this: gr.Button
    ask_about_this: gr.Button


def pick_result(found: Search | None, event: gr.SelectData) -> tuple[Any, str]:
    if found is None or not 0 <= event.index < len(found.results):
        return no_pick(), PICK_HINT
    result = found.results[event.index]
    picked_line = f"Picked **#{result.rank} {result.name}** (score {result.score:.3f})."
    return gr.update(value=result.rank, visible=True), picked_line


@friendly
def judge(
    found: Search | None,
    rank: float | None,
    judged: dict[int, bool],
    relevant: bool,
    request: gr.Request,
) -> tuple[Gallery, dict[int, bool], str]:
    if found is None or not found.results or not rank:  # a normal state: a hint, no error on the page
        gr.Info("Search first, then click a result." if not (found and found.results) else PICK_HINT)
        return gr.skip(), gr.skip(), gr.skip()
    result = picked(found, rank)
    user = visitor(request)
    retrieval.judge(found, result.rank, relevant, user=user)  # type: ignore[arg-type]
    judged = {**judged, result.rank: relevant}
    verdict = "relevant" if relevant else "not relevant"
    return (
        gallery_value(found, judged),
        judged,
        f"Saved: **#{result.rank} {result.name}** is {verdict} (judged by {user}).",
    )


Judged = tuple[Gallery, dict[int, bool], str]


def judge_relevant(
    found: Search | None, rank: float | None, judged: dict[int, bool], request: gr.Request
) -> Judged:
    return judge(found, rank, judged, True, request)


def judge_not_relevant(
    found: Search | None, rank: float | None, judged: dict[int, bool], request: gr.Request
) -> Judged:
    return judge(found, rank, judged, False, request)


@friendly
def add_images(
    service: IndexService,
    files: list[str] | None,
    request: gr.Request,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
) -> str:
    accounts.require_index_write(current_user(request))
    if not files:
        raise gr.Error("Choose one or more images to add.", print_exception=False)
    _ensure_index(service)
    kept = retrieval.keep_uploads(files)
    report = service.ingest(
        kept, progress=lambda done, total: progress((done, total), desc="Embedding images", unit="images")
    )
    size = len(service.open_index())
    message = (
        f"Added {len(report.added)} image(s); already in the index: {len(report.already_indexed)}; "
        f"could not be read: {len(report.failed)}. The index now holds {size} images."
    )
    if report.failed:
        problems = "; ".join(why for _, why in report.failed)
        gr.Warning(f"Could not read: {problems}")
        message += f"\n\n{problems}"
    return message


def build(demo: gr.Blocks, service: IndexService) -> Handoff:
    """The tab, searching `service`'s indexes; returns what other tabs take from it."""
    samples = retrieval.SAMPLES_DIR
    with gr.Tab("Retrieval", id="retrieval"):
        gr.Markdown(
            "Find images by describing them or by showing a similar one. The first search builds an index of "
            "the sample photos. Click a result to say whether it is relevant, or to search by it."
        )
        found = gr.State(None)
        judged = gr.State({})
        with gr.Row():
            with gr.Column(scale=1):
                text = gr.Textbox(label="Describe what you are looking for", placeholder="a cup of coffee")
                text_button = gr.Button("Search by text", variant="primary")
                gr.Examples(
                    [[q] for q in TEXT_EXAMPLES],
                    inputs=[text],
                    label="Try",
                    cache_examples=False,  # examples fill the inputs; no model runs at start-up
                    api_visibility="private",
                )
                image = gr.Image(
                    type="filepath",
                    label="…or search by an image",
                    sources=["upload", "clipboard"],
                    height=220,
                )
                gr.Examples(
                    [[str(samples / name)] for name in IMAGE_EXAMPLES if (samples / name).exists()],
                    inputs=[image],
                    label="Sample images",
                    cache_examples=False,
                    api_visibility="private",
                )
                k = gr.Slider(1, 30, value=DEFAULT_K, step=1, label="Number of results (k)")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="retrieval-summary")
                gallery = gr.Gallery(
                    label="Results",
                    columns=4,
                    height="auto",
                    allow_preview=False,
                    object_fit="cover",
                    elem_id="retrieval-gallery",
                )
                selection = gr.Markdown(PICK_HINT, elem_id="retrieval-selection")
                with gr.Row():
                    rank = gr.Number(
                        label="Result #",
                        precision=0,
                        value=None,
                        min_width=90,
                        scale=0,
                        interactive=False,  # set by a click on a result; hidden until then
                        visible=False,
                        elem_id="retrieval-rank",
                    )
                    relevant = gr.Button("✓ Relevant", size="sm")
                    not_relevant = gr.Button("✗ Not relevant", size="sm")
                    by_result = gr.Button("Search by this image", size="sm")
                with gr.Row():
                    caption_this = gr.Button("Caption this", size="sm")
                    ask_about_this = gr.Button("Ask about this", size="sm")
        with gr.Accordion("Add images to the index", open=False):
            files = gr.File(
                file_count="multiple", file_types=["image"], label="Images", elem_id="retrieval-add-files"
            )
            add = gr.Button("Add to index")
            added = gr.Markdown(elem_id="retrieval-added")

    shown = [gallery, summary, found, judged, rank, selection]

    def unselect() -> gr.Gallery:  # a new result list must not keep the last one's highlighted item
        return gr.Gallery(selected_index=None)

    # The loading text goes on the results, not on every output (it spilled into the small "Result #" box).
    queue = {**model_queue("retrieval"), "show_progress_on": [gallery, summary]}
    by_text = bind(search_by_text, service)
    for event in (
        text_button.click(
            by_text, [text, k], shown, api_name="ui_search_text", api_visibility="private", **queue
        ),
        text.submit(
            by_text, [text, k], shown, api_name="ui_search_text_submit", api_visibility="private", **queue
        ),
        image.change(
            bind(search_by_image, service),
            [image, k],
            shown,
            api_name="ui_search_image",
            api_visibility="private",
            **queue,
        ),
        by_result.click(
            bind(search_by_result, service),
            [found, rank, k],
            shown,
            api_name="ui_search_by_result",
            api_visibility="private",
            **queue,
        ),
    ):
        event.success(unselect, None, gallery, api_name=False, queue=False)
    gallery.select(
        pick_result, [found], [rank, selection], api_name="ui_pick_result", api_visibility="private"
    )
    relevant.click(
        judge_relevant,
        [found, rank, judged],
        [gallery, judged, selection],
        api_name="ui_judge_relevant",
        api_visibility="private",
    )
    not_relevant.click(
        judge_not_relevant,
        [found, rank, judged],
        [gallery, judged, selection],
        api_name="ui_judge_not_relevant",
        api_visibility="private",
    )
    add.click(
        bind(add_images, service),
        [files],
        [added],
        api_name="ui_add_images",
        api_visibility="private",
        **model_queue("retrieval"),
    )
    return Handoff(found=found, rank=rank, caption_this=caption_this, ask_about_this=ask_about_this)
