from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets" / "images"

# Every test runs offline against throwaway folders; the class-embedding cache is shared by the session.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mmdemo-tests-"))
os.environ["MMDEMO_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf-home")
os.environ["MMDEMO_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.pop("MMDEMO_MODELS_DIR", None)
os.environ.pop("MMDEMO_PROFILE", None)
os.environ.pop("MMDEMO_DEVICE", None)
# Under pytest-xdist the workers already share the cores: one thread each, also in the commands they start,
# keeps two workers from oversubscribing two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(demo):
    """Serve a Gradio Blocks on a free loopback port for the duration of a test."""
    demo.queue().launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield demo.local_url
    finally:
        demo.close()


@contextlib.contextmanager
def process_services(services):
    """Make `services` the process's for a block (what the CLI and the labeling tab look up), then put the
    previous ones back."""
    from mmdemo.services import default_services, use_services

    previous = default_services()
    use_services(services)
    try:
        yield services
    finally:
        use_services(previous)


@pytest.fixture(scope="session")
def tiny():
    from mmdemo.serving.registry import Registry

    return Registry("tiny", device="cpu")


@pytest.fixture(scope="session")
def lite():
    from mmdemo.serving.registry import Registry

    return Registry("lite", device="cpu")


@pytest.fixture(scope="session")
def sample_images():
    from PIL import Image

    return {path.stem: Image.open(path).convert("RGB") for path in sorted(ASSETS.glob("*.jpg"))}
