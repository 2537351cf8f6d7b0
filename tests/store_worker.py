"""One process of `test_multiprocess_store`: predictions, corrections of them, and a labeling queue, all
against one database file shared with seven other such processes.

Run as `python -m tests.store_worker DB JOB_ID USER ROUNDS READY_FILE GO_FILE`; waits for GO_FILE so that
every worker starts writing at once, then prints one JSON object: the ids of every acknowledged write, and
every error as a line of text."""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from mmdemo.data import Store
from mmdemo.labeling import queue
from tests.labeling_helpers import FAKE_MODEL, fake_predictor


def main(db: str, job_id: int, user: str, rounds: int, ready: Path, go: Path) -> dict:
    done: dict = {"predictions": [], "corrections": [], "submissions": [], "errors": []}
    store = Store(db)
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    for i in range(rounds):
        try:
            media = store.add_media(
                f"{user}-{i}.png", "image", data=f"{user}/{i}".encode(), width=1, height=1
            )
            prediction = store.record_prediction(
                "caption", media_id=media.id, input={}, output=f"{user} says {i}", model=FAKE_MODEL, user=user
            )
            done["predictions"].append(prediction.id)
            correction = store.add_correction(prediction.id, f"{user} corrects {i}", user=user)
            done["corrections"].append(correction.id)
            view = queue.next_item(job_id, user, predictor=fake_predictor, store=store)
            if view is not None:
                label = queue.submit(job_id, view.item.id, user, f"{user} labels {view.item.id}", store=store)
                done["submissions"].append(label.id)
        except Exception as error:  # every failure is reported, the worker keeps going
            where = traceback.extract_tb(error.__traceback__)[-1]
            done["errors"].append(f"{type(error).__name__}: {error} (at {where.name}, line {where.lineno})")
    return done


if __name__ == "__main__":
    db, job_id, user, rounds, ready, go = sys.argv[1:]
    print(json.dumps(main(db, int(job_id), user, int(rounds), Path(ready), Path(go))))
