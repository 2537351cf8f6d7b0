"""`mmdemo serve`: the web app."""

from __future__ import annotations

import os
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    port: Annotated[int | None, typer.Option(help="port (default: $PORT or 7860)")] = None,
    share: Annotated[bool, typer.Option("--share", help="also open a public Gradio share link")] = False,
) -> None:
    """Run the web app (same as `python app.py`)."""
    from mmdemo.ui.app import launch

    launch(host=host, port=int(os.environ.get("PORT", "7860")) if port is None else port, share=share)


def register(app: typer.Typer) -> None:
    app.command()(serve)
