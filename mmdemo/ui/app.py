"""Assembles the Gradio app from one module per tab. Importing this loads no model."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from mmdemo import __version__, accounts, config, warmup
from mmdemo.search.retrieval import Search
from mmdemo.services import Services, default_services
from mmdemo.ui import api, captioning, labeling, retrieval, runtime, status, video, vqa

CHEAP_CONCURRENCY = 4  # database reads and corrections: short, and never queued behind a model call

TITLE = "mmdemo"
INTRO = (
    f"# mmdemo <small>v{__version__}</small>\n"
    "Multimodal demo and annotation studio: search images by text or image, caption them, ask questions "
    "about them, classify video clips, and correct any prediction — corrections become training data."
)


def build_app(services: Services | None = None) -> gr.Blocks:
    """The app over `services` (the process's when None), with its queue set up: model events are limited per
    tab (`mmdemo.ui.runtime.model_queue`); other events run up to `CHEAP_CONCURRENCY` at once each."""
    services = services if services is not None else default_services()
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        warming = gr.Markdown(visible=False)  # "warming up …" while the background warm-up runs
        timer = gr.Timer(2.0)  # stops once the warm-up is over
        demo.load(runtime.warmup_status, None, [warming, timer], queue=False, api_visibility="private")
        timer.tick(runtime.warmup_status, None, [warming, timer], queue=False, api_visibility="private")
        labeling.build_header(demo)
        with gr.Tabs() as tabs:
            found = retrieval.build(demo, services.index)
            caption_image = captioning.build(demo, services.registry)
            vqa_image = vqa.build(demo, services.registry)
            video.build(demo, services.registry)
            labeling.build(demo, services)
            status.build(demo, services.registry)
        send_picked_result(found, caption_image, vqa_image, tabs)
        api.build(services)  # the public API: plain functions over plain data; the events above are private
    return demo.queue(default_concurrency_limit=CHEAP_CONCURRENCY)


def send_picked_result(
    found: retrieval.Handoff, caption_image: gr.Image, vqa_image: gr.Image, tabs: gr.Tabs
) -> None:
    """Retrieval's "Caption this" / "Ask about this": the picked result goes into that tab's image input
    and that tab opens."""

    def sender(tab_id: str) -> Callable[[Search | None, float | None], tuple[str, gr.Tabs]]:
        def send(searched: Search | None, rank: float | None) -> tuple[str, gr.Tabs]:
            return retrieval.picked_image(searched, rank), gr.Tabs(selected=tab_id)

        return send

    picked = [found.found, found.rank]
    found.caption_this.click(
        sender("captioning"),
        picked,
        [caption_image, tabs],
        api_name="ui_caption_this",
        api_visibility="private",
    )
    found.ask_about_this.click(
        sender("vqa"), picked, [vqa_image, tabs], api_name="ui_ask_about_this", api_visibility="private"
    )


def launch_options() -> dict[str, object]:
    """Sign-in with local accounts once any exist (`mmdemo users add`); an open demo otherwise. The MCP
    server (`/gradio_api/mcp/`) is on unless `MMDEMO_MCP=0`."""
    return {
        "auth": accounts.gradio_auth(),
        "auth_message": "Sign in with your mmdemo account.",
        "mcp_server": config.mcp_server(),
    }


def serve(demo: gr.Blocks, services: Services, **options: object) -> None:
    """Serve `demo`, then warm its first models up in the background (the page never waits for them)."""
    demo.launch(prevent_thread_lock=True, **launch_options(), **options)  # type: ignore[arg-type]
    warmup.start_warmup(services)
    demo.block_thread()


def launch(host: str = "0.0.0.0", port: int = 7860, share: bool = False) -> None:
    services = default_services()
    serve(build_app(services), services, server_name=host, server_port=port, share=share)
