"""Eight processes writing to one database file at once, as the app, a CLI command and workers do:
no write may fail with "database is locked", and every acknowledged write must be there afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mmdemo.data import Store
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
