"""Assembles the Gradio app from one module per tab. Importing this loads no model."""

from __future__ import annotations

import gradio as gr

from mmdemo import __version__, accounts
from mmdemo.ui import captioning, labeling, retrieval, status, video, vqa

TITLE = "mmdemo"
INTRO = (
    f"# mmdemo <small>v{__version__}</small>\n"
    "Multimodal demo and annotation studio: search images by text or image, caption them, ask questions "
    "about them, classify video clips, and correct any prediction — corrections become training data."
)


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        labeling.build_header(demo)
        with gr.Tabs():
            retrieval.build(demo)
            captioning.build(demo)
            vqa.build(demo)
            video.build(demo)
            labeling.build(demo)
            status.build(demo)
    return demo


def launch_options() -> dict[str, object]:
    """Sign-in with local accounts once any exist (`mmdemo users add`); an open demo otherwise."""
    return {"auth": accounts.gradio_auth(), "auth_message": "Sign in with your mmdemo account."}


def launch(host: str = "0.0.0.0", port: int = 7860, share: bool = False) -> None:
    build_app().queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, share=share, **launch_options()
    )
