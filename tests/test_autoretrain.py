"""Auto-retrain: a job starts a background fine-tuning run after every N newly settled labels, once per
threshold even with several processes labeling, and the CLI and Admin form set it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from mmdemo.data import Store
from mmdemo.finetune import worker
from mmdemo.labeling import autoretrain, queue, review
from mmdemo.labeling.jobs import LabelingError
from tests.labeling_helpers import add_accounts, fake_predictor, make_images, make_job
from tests.test_prelabel import mmdemo

ROOT = Path(__file__).resolve().parents[1]


def label_next(job_id: int, user: str, value: str, store: Store) -> None:
    view = queue.next_item(job_id, user, predictor=fake_predictor, store=store)
    assert view is not None, f"{user} has nothing left to label"
    queue.submit(job_id, view.item.id, user, value, store=store)


def stop(run: worker.RunStatus) -> None:
    """End a started run (its training is covered by test_training_worker); the worker leads its group."""
    deadline = time.monotonic() + 60
    while run.pid is None and time.monotonic() < deadline:  # the worker records its pid once it runs
        time.sleep(0.2)
        run = worker.status(run.task)
    os.killpg(run.pid, signal.SIGTERM)
    assert not worker.wait(run.task, timeout=30).active


def test_a_run_starts_after_every_n_settled_labels_and_once_while_one_trains(tmp_path, data_dir):
    store = Store(data_dir / "mmdemo.db")
    job = make_job(store, make_images(tmp_path / "images", 6), task="caption", overlap=2)
    add_accounts(store, {"ann": "annotator", "bob": "annotator", "rev": "reviewer"})
    job = autoretrain.set_auto_retrain("root", job.id, 2, profile="tiny", store=store)
    assert (job.retrain_every, job.retrain_profile, job.retrained_at) == (2, "tiny", 0)

    # Overlap 2: one annotator's labels settle nothing; a disagreement settles nothing until reviewed.
    for value in ("a cat", "a dog", "a bird"):
        label_next(job.id, "ann", value, store)
    label_next(job.id, "bob", "a cat", store)  # item 1 agreed: 1 settled
    label_next(job.id, "bob", "a fish", store)  # item 2 disagrees: still 1
    assert worker.status("caption") is None

    second = store.job_items(job.id)[1]
    review.decide(job.id, second.id, "rev", "a fish", store=store)  # 2 settled: the run starts
    run = worker.status("caption")
    assert run is not None and run.active
    assert run.user == autoretrain.run_owner(job) == f"auto-retrain (job #{job.id})"
    assert run.request["job_ids"] == [job.id] and run.request["profile"] == "tiny"
    assert store.job(job.id).retrained_at == 2
    try:
        label_next(job.id, "bob", "a bird", store)  # 3 settled: not due (2 since the last run)
        assert len(worker.runs("caption")) == 1
        # Due again at 4, but the task is training: the next label after it ends starts the next run.
        label_next(job.id, "ann", "a cow", store)
        label_next(job.id, "bob", "a cow", store)
        assert len(worker.runs("caption")) == 1 and store.job(job.id).retrained_at == 2
    finally:
        stop(run)
    label_next(job.id, "ann", "a hen", store)  # item 5, one label: still 4 settled, now due and free
    assert len(worker.runs("caption")) == 2 and store.job(job.id).retrained_at == 4
    stop(worker.status("caption"))


def test_only_one_of_several_processes_claims_a_threshold(data_dir, tmp_path):
    store = Store(data_dir / "mmdemo.db")
    job = make_job(store, make_images(tmp_path / "images", 2), task="caption", overlap=1)
    other_process = Store(data_dir / "mmdemo.db")
    assert store.claim_retrain(job.id, seen=0, settled=5)
    assert not other_process.claim_retrain(job.id, seen=0, settled=5)  # it read 0 before the first claim
    assert other_process.job(job.id).retrained_at == 5


def test_auto_retrain_is_admin_only_and_checked(data_dir, tmp_path):
    store = Store(data_dir / "mmdemo.db")
    job = make_job(store, make_images(tmp_path / "images", 2), task="caption", overlap=1)
    add_accounts(store, {"ann": "annotator"})
    with pytest.raises(Exception, match="needs the admin role"):
        autoretrain.set_auto_retrain("ann", job.id, 5, profile="tiny", store=store)
    for bad in (-1, "many", 10**9, 2.5, None, float("inf")):
        with pytest.raises(LabelingError, match="auto-retrain"):
            autoretrain.set_auto_retrain("root", job.id, bad, profile="tiny", store=store)
    assert autoretrain.set_auto_retrain("root", job.id, 0, profile=None, store=store).retrain_every == 0


def test_the_cli_sets_lists_and_turns_off_auto_retrain(tmp_path, data_dir):
    folder = make_images(tmp_path / "images", 3)
    made = mmdemo(
        "jobs", "create", "--name", "q", "--task", "caption", "--folder", str(folder), "--retrain-every", "3",
        data=data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "a fine-tuning run after every 3 settled labels (tiny profile)" in made.stdout
    listed = mmdemo("jobs", "list", data=data_dir)
    assert "retrain" in listed.stdout.splitlines()[0] and "every 3" in listed.stdout
    off = mmdemo("jobs", "retrain", "1", "0", data=data_dir)
    assert off.returncode == 0 and "job #1 'q': auto-retrain off" in off.stdout
    bad = mmdemo("jobs", "retrain", "1", "200000", data=data_dir)
    assert bad.returncode == 2 and "mmdemo: auto-retrain every 1 to 100,000 settled labels" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = mmdemo("jobs", "retrain", "9", "5", data=data_dir)
    assert missing.returncode == 2 and "no job #9" in missing.stderr
