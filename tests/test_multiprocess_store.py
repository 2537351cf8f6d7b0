"""Eight processes writing to one database file at once, as the app, a CLI command and workers do:
no write may fail with "database is locked", and every acknowledged write must be there afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmdemo.data import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from mmdemo.data.migrations import NAMES, SCHEMA
from tests.conftest import ROOT
from tests.labeling_helpers import add_accounts, make_images, make_job

WORKERS = 8
ROUNDS = 12  # each worker: 12 predictions, 12 corrections, and one submission per item
ITEMS = 12


def _wait_for(paths: list[Path], processes: list[subprocess.Popen], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(path.exists() for path in paths):
        crashed = [p.args for p in processes if p.poll() not in (None, 0)]
        assert not crashed, f"a worker died before it was ready: {crashed}"
        assert time.monotonic() < deadline, "the workers did not start in time"
        time.sleep(0.05)


def test_eight_processes_write_to_one_database_and_every_acknowledged_write_lands(tmp_path):
    db = tmp_path / "shared.db"
    store = Store(db)
    job = make_job(store, make_images(tmp_path / "imgs", ITEMS), overlap=WORKERS)
    users = [f"ann{n}" for n in range(WORKERS)]
    add_accounts(store, dict.fromkeys(users, "annotator"))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{user}" for user in users]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.store_worker",
                str(db),
                str(job.id),
                user,
                str(ROUNDS),
                str(flag),
                str(go),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for user, flag in zip(users, ready, strict=True)
    ]
    try:
        _wait_for(ready, workers, timeout_s=120)
        go.touch()  # all eight start writing at the same moment
        outputs = [worker.communicate(timeout=180) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    reports = {}
    for user, worker, (stdout, stderr) in zip(users, workers, outputs, strict=True):
        assert worker.returncode == 0, f"{user} exited {worker.returncode}: {stderr[-2000:]}"
        reports[user] = json.loads(stdout.strip().splitlines()[-1])

    errors = [f"{user}: {error}" for user, report in reports.items() for error in report["errors"]]
    assert errors == [], f"{len(errors)} writes failed, e.g. {errors[:3]}"

    check = Store(db)
    for user, report in reports.items():
        assert len(report["predictions"]) == len(report["corrections"]) == ROUNDS
        for i, (prediction_id, correction_id) in enumerate(
            zip(report["predictions"], report["corrections"], strict=True)
        ):
            prediction = check.prediction(prediction_id)
            assert prediction is not None and (prediction.user, prediction.output) == (
                user,
                f"{user} says {i}",
            )
            assert [(c.id, c.user, c.output) for c in check.corrections(prediction_id)] == [
                (correction_id, user, f"{user} corrects {i}")
            ]
        assert len(report["submissions"]) == ITEMS  # overlap 8: every annotator labels every item
    submissions = check.submissions(job.id)
    acknowledged = {sid for report in reports.values() for sid in report["submissions"]}
    assert {s.id for s in submissions} == acknowledged and len(submissions) == WORKERS * ITEMS
    assert {(s.item_id, s.user) for s in submissions} == {
        (i.id, u) for i in check.job_items(job.id) for u in users
    }
    assert all(s.value == f"{s.user} labels {s.item_id}" for s in submissions)
    # Every item was pre-filled, and the prediction it names is stored.
    assert all(check.prediction(item.prediction_id) is not None for item in check.job_items(job.id))


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another process's write in progress: a second connection holding SQLite's write lock."""
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO label_sets (name, labels, user, created_at, updated_at) "
        "VALUES ('x', '[]', 'o', 't', 't')"
    )
    return other


def test_a_write_that_reads_first_waits_for_another_process_to_commit(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    other = _hold_write_lock(store.path)
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    # Reads the row first, then writes: a deferred transaction failed here at once ("database is locked").
    store.save_label_set("birds", ["owl"], user="ana")
    assert time.monotonic() - started >= 0.4
    assert store.label_set("birds") == ["owl"] and store.label_set("x") == []
    other.close()


def test_a_write_gives_up_after_the_busy_timeout_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDEMO_DB_BUSY_TIMEOUT_S", "0.3")
    store = Store(tmp_path / "db.sqlite")
    other = _hold_write_lock(store.path)
    started = time.monotonic()
    assert store.label_set_names() == []  # reads go on beside the other write (WAL), not waiting for it
    assert time.monotonic() - started < 0.25
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"locked by another process's write for 0.3 s.*MMDEMO_DB_BUSY_TIMEOUT_S"
    ):
        store.save_label_set("birds", ["owl"])
    assert 0.25 <= time.monotonic() - started < 10
    other.execute("ROLLBACK")
    other.close()
    store.save_label_set("birds", ["owl"])  # nothing was left half-open
    assert store.label_set_names() == ["birds"]


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_the_busy_timeout_setting_is_checked(monkeypatch, value):
    from mmdemo import config

    monkeypatch.setenv("MMDEMO_DB_BUSY_TIMEOUT_S", value)
    with pytest.raises(ValueError, match=r"MMDEMO_DB_BUSY_TIMEOUT_S=.*must be a number of seconds"):
        config.db_busy_timeout_s()
    monkeypatch.setenv("MMDEMO_DB_BUSY_TIMEOUT_S", "")
    assert config.db_busy_timeout_s() == 30


def test_connections_opening_a_new_database_at_once_set_it_up_once(tmp_path):
    """Each thread's Store is its own connection and file-lock handle, as a process's would be."""
    path = tmp_path / "fresh" / "mmdemo.db"
    barrier = threading.Barrier(8)
    errors: list[str] = []

    def open_and_write(n: int) -> None:
        barrier.wait()
        try:
            Store(path).save_label_set(f"set{n}", [f"label{n}"], user=f"user{n}")
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = Store(path)
    assert [step.name for step in SCHEMA.applied(store.db)] == NAMES
    assert store.schema_version == SCHEMA_VERSION and store.db.journal_mode == "wal"
    assert store.label_set_names() == [f"set{n}" for n in range(8)]


def test_every_migration_step_can_run_again(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    with store._write() as db:  # a step re-run (by a process that did not see it applied) changes nothing
        for step in MIGRATIONS:
            step(db)
    assert store.schema_version == SCHEMA_VERSION
    assert sorted(store.db["media"].columns_dict) == sorted(
        Store(tmp_path / "db.sqlite").db["media"].columns_dict
    )
