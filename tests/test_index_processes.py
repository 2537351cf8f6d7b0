"""Index writes from two processes at once: the app's ingestion and the `mmdemo index add` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image

from mmdemo.data import Store
from mmdemo.media.files import file_hash
from mmdemo.search import index
from tests.conftest import ROOT

# The app's function (`IndexService.ingest`, as the Retrieval tab's "Add images" calls it) in a process of its
# own. Its embedder holds its second batch until the test says the other process is done, so both writers
# are mid-run on the same index at once.
APP_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mmdemo.services import Services
    from mmdemo.serving.registry import Registry

    folder, started, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    registry = Registry("tiny", device="cpu")
    services = Services.create(registry)
    real = registry.get("embed")

    class HeldEmbedder:
        info, dim, calls = real.info, real.dim, 0

        def encode_images(self, images):
            self.calls += 1
            if self.calls == 2:
                started.write_text("mid-run")
                deadline = time.monotonic() + 300
                while not go.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            return real.encode_images(images)

        def encode_texts(self, texts):
            return real.encode_texts(texts)

    report = services.index.ingest([folder], "shared", embedder=HeldEmbedder(), batch_size=3)
    print(len(report.added))
    """
)


def _images(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        shade = (seed * 97 + i * 13) % 256
        path = folder / f"img-{seed}-{i}.png"
        Image.new("RGB", (32 + i, 24 + seed), (shade, (i * 7) % 256, seed * 40 % 256)).save(path)
        paths.append(path)
    return paths


def test_the_app_and_the_cli_adding_to_one_index_at_once_both_land(tmp_path, data_dir):
    app_set, cli_set = _images(tmp_path / "app", 9, 1), _images(tmp_path / "cli", 8, 2)
    started, go = tmp_path / "app-started", tmp_path / "go"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MMDEMO_PROFILE": "tiny",
        "MMDEMO_DEVICE": "cpu",
        "MMDEMO_INDEX_DIR": str(tmp_path / "index"),
        "MMDEMO_DATA_DIR": str(data_dir),
    }
    app = subprocess.Popen(
        [sys.executable, "-c", APP_WRITER, str(tmp_path / "app"), str(started), str(go)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not started.exists() and app.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), app.communicate(timeout=30)
        mmdemo = shutil.which("mmdemo", path=str(Path(sys.executable).parent)) or "mmdemo"
        cli = subprocess.run(
            [mmdemo, "index", "add", str(tmp_path / "cli"), "--index", "shared", "--batch-size", "2"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert cli.returncode == 0, cli.stderr
    finally:
        go.write_text("go")
        out, err = app.communicate(timeout=300)
    assert app.returncode == 0, err
    assert out.split()[-1] == str(len(app_set))

    saved = index.VectorIndex.load("shared", tmp_path / "index")
    expected = {file_hash(path) for path in app_set + cli_set}
    assert set(saved.ids) == expected and len(saved.ids) == len(expected)  # both sets, each image once
    store = Store(data_dir / "mmdemo.db")
    assert all(store.media(media_id) is not None for media_id in saved.ids)  # ids and store agree
