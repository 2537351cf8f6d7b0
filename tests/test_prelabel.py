"""`mmdemo jobs prelabel JOB`: the job's pre-fills made in bulk by the real console script, recorded as the
labeling tab records them, and used by the next item without calling a model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmdemo.data import Store
from mmdemo.labeling import queue
from tests.labeling_helpers import add_accounts, make_images, make_job

ROOT = Path(__file__).resolve().parents[1]


def mmdemo(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MMDEMO_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mmdemo.cli", "--profile", "tiny", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def no_model(*_: object) -> int:
    raise AssertionError("the model was called although the item was pre-labeled")


def test_prelabel_records_one_prediction_per_item_and_the_queue_uses_it(tmp_path, data_dir):
    store = Store(data_dir / "mmdemo.db")
    job = make_job(store, make_images(tmp_path / "images", 4), task="caption", overlap=1)
    add_accounts(store, {"ann": "annotator"})

    result = mmdemo("jobs", "prelabel", str(job.id), data=data_dir)
    assert result.returncode == 0, result.stderr
    assert f"job #{job.id}: pre-labeled 4, already pre-labeled 0" in result.stdout

    items = store.job_items(job.id)
    assert all(item.prediction_id is not None for item in items)
    assert len({item.prediction_id for item in items}) == 4
    assert len(store.predictions("caption")) == 4  # one per item, recorded as the tab records them

    view = queue.next_item(job.id, "ann", predictor=no_model, store=store)
    assert view is not None and view.model_name is not None
    assert view.prefill == queue.prefill_value(job, store.prediction(view.item.prediction_id))

    again = mmdemo("jobs", "prelabel", str(job.id), data=data_dir)
    assert again.returncode == 0 and "pre-labeled 0, already pre-labeled 4" in again.stdout
    assert len(store.predictions("caption")) == 4


def test_prelabel_of_an_uncertainty_ordered_job_also_scores_its_items(tmp_path, data_dir):
    store = Store(data_dir / "mmdemo.db")
    job = make_job(store, make_images(tmp_path / "images", 3), task="caption", overlap=1)
    store.set_job_ordering(job.id, "uncertainty")

    result = mmdemo("jobs", "prelabel", str(job.id), data=data_dir)
    assert result.returncode == 0, result.stderr
    assert "pre-labeled 3, already pre-labeled 0, scored 3 for the uncertainty order" in result.stdout
    scores = store.item_scores(job.id, "uncertainty")
    assert len(scores) == 3 and all(0 <= row.score <= 1 for row in scores.values())
    items = store.job_items(job.id)
    assert {store.prediction(item.prediction_id).task for item in items} == {"caption"}  # the pre-fills


def test_prelabel_of_an_unknown_job_is_one_clear_line(data_dir):
    Store(data_dir / "mmdemo.db")
    result = mmdemo("jobs", "prelabel", "999", data=data_dir)
    assert result.returncode == 2
    assert "no job #999" in result.stderr and "Traceback" not in result.stderr
