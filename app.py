"""Entry point for `python app.py` and for Hugging Face Spaces (which runs this file)."""

import os

from mmdemo.services import default_services
from mmdemo.ui.app import build_app, serve

services = default_services()  # the services of this process, created once
demo = build_app(services)

if __name__ == "__main__":
    serve(  # models warm up in the background once the page is served
        demo,
        services,
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", os.environ.get("PORT", "7860"))),
    )
