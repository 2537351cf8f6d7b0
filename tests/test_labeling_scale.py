"""The labeling queue at scale: next and submit cost the same at 1k and 19k labels (counted in SQLite's
virtual-machine steps, not timed), and a pre-fill is made once per item however many open it at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

from mmdemo.data import Job, Store
from mmdemo.labeling import queue
from tests.conftest import ROOT
from tests.labeling_helpers import add_accounts, fake_predictor, make_images, make_job
from tests.prefill_worker import slow_predictor

ITEMS = 1000
OVERLAP = 20  # the most a job may ask for


class StepCounter:
    """SQLite virtual-machine steps run on a store's connection while counting (in units of 100)."""

    def __init__(self, store: Store) -> None:
        self.steps = 0
        store.db.conn.set_progress_handler(self._tick, 100)

    def _tick(self) -> int:
        self.steps += 1
        return 0


def big_job(store: Store, items: int) -> Job:
    """A caption job over `items` media records (their files are never read by the queue)."""
    media = [
        store.add_media(f"item{i}.png", "image", data=f"item {i}".encode(), width=1, height=1)
        for i in range(items)
    ]
    return store.create_job(
        "big",
        "caption",
        items=[(m.id, "") for m in media],
        labels=[],
        prompts=[],
        overlap=OVERLAP,
        source="",
        created_by="root",
    )


def _queue_steps(tmp_path, labels: int) -> int:
    """Steps for a newcomer's next item, submit and next item, in a job holding `labels` labels."""
    store = Store(tmp_path / f"scale-{labels}.db")
    users = labels // ITEMS
    job = big_job(store, ITEMS)
    items = [item.id for item in store.job_items(job.id)]
    store.add_labels_bulk(job.id, [(item, f"bulk{u}", "a label") for u in range(users) for item in items])
    add_accounts(store, {"newcomer": "annotator"})
    assert queue.progress(job, "newcomer", store=store).complete_items == 0
    counter = StepCounter(store)
    view = queue.next_item(job.id, "newcomer", store=store)
    queue.submit(job.id, view.item.id, "newcomer", "mine", store=store)
    after = queue.next_item(job.id, "newcomer", store=store)
    assert after.progress.done_by_you == 1 and after.progress.total_items == ITEMS
    return counter.steps


def test_next_and_submit_cost_the_same_at_1k_and_19k_labels(tmp_path):
    small, large = _queue_steps(tmp_path, 1_000), _queue_steps(tmp_path, 19_000)
    assert large <= 1.5 * small + 20, f"{small} vs {large} hundred steps: cost grows with the labels"


def test_a_prefill_is_made_once_for_every_concurrent_opener(tmp_path):
    db = tmp_path / "prefill.db"
    store = Store(db)
    threads_n, processes_n = 8, 3
    job = make_job(store, make_images(tmp_path / "imgs", 1), overlap=threads_n + processes_n)
    users = [f"t{n}" for n in range(threads_n)] + [f"p{n}" for n in range(processes_n)]
    add_accounts(store, dict.fromkeys(users, "annotator"))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{user}" for user in users[threads_n:]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.prefill_worker", str(db), str(job.id), user, str(flag), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for user, flag in zip(users[threads_n:], ready, strict=True)
    ]
    shown: dict[str, str] = {}
    errors: list[BaseException] = []

    def open_item(user: str) -> None:
        try:
            while not go.exists():
                time.sleep(0.01)
            shown[user] = queue.next_item(job.id, user, predictor=slow_predictor, store=Store(db)).prefill
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=open_item, args=(user,)) for user in users[:threads_n]]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        outputs = [worker.communicate(timeout=120) for worker in workers]
        for thread in threads:
            thread.join(timeout=120)
    finally:
        go.touch()
        for worker in workers:
            worker.kill()
    assert errors == []
    for user, worker, (stdout, stderr) in zip(users[threads_n:], workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-2000:]
        shown[user] = stdout.strip()
    assert len(store.predictions("caption")) == 1
    assert set(shown) == set(users) and set(shown.values()) == {"prediction for img000.png"}


def test_a_prefill_that_fails_is_not_retried_by_every_waiter(tmp_path, monkeypatch):
    store = Store(tmp_path / "failing.db")
    job = make_job(store, make_images(tmp_path / "imgs", 1), overlap=3)
    add_accounts(store, {"a": "annotator", "b": "annotator"})
    calls = []

    def failing(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        raise ValueError("no model for this")

    assert queue.next_item(job.id, "a", predictor=failing, store=store).model_name is None
    assert queue.next_item(job.id, "b", predictor=failing, store=store).model_name is None
    assert len(calls) == 1
    # Once the failed try is stale, a later opener tries again.
    monkeypatch.setattr(queue, "PREFILL_STALE", timedelta(seconds=-1))
    add_accounts(store, {"c": "annotator"})
    assert queue.next_item(job.id, "c", predictor=fake_predictor, store=store).model_name == "fake captioner"
