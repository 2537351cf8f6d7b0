"""Ingestion and pre-labeling on a Ray cluster (`--engine ray`): one local cluster (`ray.init(num_cpus=2)`)
shared by this module, joined by the real console script with `--ray-address` as a user's would be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmdemo.data import Store
from mmdemo.labeling import queue
from mmdemo.services import Services
from tests.labeling_helpers import add_accounts, make_images, make_job

ROOT = Path(__file__).resolve().parents[1]
IMAGES = 48


@pytest.fixture(scope="module")
def cluster() -> str:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = make_images(tmp_path_factory.mktemp("ray-images") / "images", IMAGES)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    return folder


def mmdemo(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MMDEMO_DATA_DIR": str(tmp_path / "data"),
        "MMDEMO_INDEX_DIR": str(tmp_path / "index"),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "mmdemo.cli", "--profile", "tiny", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def test_ray_ingestion_matches_in_process_and_a_rerun_adds_nothing(cluster, images, tmp_path, tiny):
    args = ("index", "add", str(images), "--index", "photos", "--engine", "ray")
    result = mmdemo(*args, "--ray-address", cluster, "--workers", "2", "--batch-size", "8", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"index 'photos': added {IMAGES}, already indexed 0; could not read 1" in result.stdout
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr

    services = Services.create(
        tiny, index_root=tmp_path / "index", store=Store(tmp_path / "data" / "mmdemo.db")
    )
    services.index.ingest([images], "in-process")
    on_ray, local = services.index.load("photos"), services.index.load("in-process")
    assert on_ray.ids == local.ids and len(on_ray) == IMAGES
    cosines = np.sum(on_ray.vectors(on_ray.ids) * local.vectors(local.ids), axis=1)
    assert cosines.min() >= 0.999
    assert all(services.index.store_or_default().media(media_id) for media_id in on_ray.ids)

    again = mmdemo(*args, "--ray-address", cluster, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"added 0, already indexed {IMAGES}" in again.stdout


def test_a_killed_worker_leaves_no_duplicate_and_no_missing_vector(cluster, images, tmp_path, tiny):
    from mmdemo.search import distributed

    services = Services.create(
        tiny, index_root=tmp_path / "index", store=Store(tmp_path / "data" / "mmdemo.db")
    )
    killed: list[int] = []

    def kill_one_worker(shard: distributed.Shard) -> None:
        if not killed:
            killed.append(next(iter(shard.pids)))
            os.kill(killed[0], signal.SIGKILL)

    options = distributed.RayOptions(cluster, workers=2, batch_size=4)
    report = distributed.ingest(services.index, [images], "killed", options=options, on_shard=kill_one_worker)
    assert killed and len(report.added) == IMAGES
    vectors = services.index.load("killed")
    assert len(vectors.ids) == len(set(vectors.ids)) == IMAGES
    norms = np.linalg.norm(vectors.vectors(vectors.ids), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)  # every vector present, none left zero

    rerun = distributed.ingest(services.index, [images], "killed", options=options)
    assert rerun.added == [] and len(rerun.already_indexed) == IMAGES


def test_prelabel_on_ray_records_one_prediction_per_item(cluster, tmp_path):
    store = Store(tmp_path / "data" / "mmdemo.db")
    job = make_job(store, make_images(tmp_path / "job-images", 4), task="caption", overlap=1)
    add_accounts(store, {"ann": "annotator"})
    result = mmdemo(
        "jobs", "prelabel", str(job.id), "--engine", "ray", "--ray-address", cluster, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"job #{job.id}: pre-labeled 4, already pre-labeled 0" in result.stdout
    items = store.job_items(job.id)
    assert all(item.prediction_id is not None for item in items)
    assert len(store.predictions("caption")) == 4

    def no_model(*_: object) -> int:
        raise AssertionError("the model was called although the item was pre-labeled")

    view = queue.next_item(job.id, "ann", predictor=no_model, store=store)
    assert view is not None and view.prefill == queue.prefill_value(
        job, store.prediction(view.item.prediction_id)
    )


def test_the_app_and_the_cli_do_not_import_ray():
    probe = (
        "import sys, contextlib, io\n"
        "import mmdemo.ui.app\n"
        "from mmdemo.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['index', 'add', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('ray' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_the_cli_spells_the_engines_as_the_ray_module_does():
    from mmdemo.cli import index as index_commands
    from mmdemo.search import distributed

    assert index_commands.ENGINES == distributed.ENGINES
