"""Auto-retrain: a job can start a fine-tuning run of its task after every N newly settled labels.

"Settled" is what a run trains on by default (`labels.final_labels`: reviewed, or agreed by the full
overlap; anonymous visitors' labels left out). After each submission and review decision, `after_label`
checks the job's count against the count at its last automatic run. A cheap indexed upper bound comes first,
so the labels reader only runs near the threshold. The run is a normal background run
(`finetune.worker`): one per task at a time, its accepted version served at the registry's next use (hot
swap), and the queue's uncertainty scores are refreshed once the new version serves (`ordering`). When
several processes label at once, a compare-and-set on the job's count lets exactly one start the run.
"""

from __future__ import annotations

import logging

from mmdemo import accounts
from mmdemo.accounts import ADMIN
from mmdemo.data import Job, Store
from mmdemo.data.labels import final_labels
from mmdemo.finetune import worker
from mmdemo.labeling.jobs import LabelingError, get_job, store_or_default

MAX_EVERY = 100_000
log = logging.getLogger(__name__)


def run_owner(job: Job) -> str:
    """Who a job's automatic runs are started by, as the run list shows it."""
    return f"auto-retrain (job #{job.id})"


def set_auto_retrain(
    user: str | None, job_id: int | str | None, every: int, *, profile: str | None, store: Store | None = None
) -> Job:
    """Retrain after every `every` newly settled labels of the job (0: off), for model profile `profile`
    (the one the app or CLI serves). Admins; `user` None is the operator at the command line."""
    if user is not None:
        accounts.require_role(user, ADMIN, store=store)
    store = store_or_default(store)
    job = get_job(job_id, store)
    try:
        whole = int(every)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float from a form
        raise LabelingError(f"auto-retrain needs a whole number of labels, not {every!r}") from None
    if whole != every and not isinstance(every, str):  # 2.5 from a form field is no count
        raise LabelingError(f"auto-retrain needs a whole number of labels, not {every!r}")
    every = whole
    if not 0 <= every <= MAX_EVERY:
        raise LabelingError(f"auto-retrain every 1 to {MAX_EVERY:,} settled labels, or 0 for off")
    if every and not worker.takes_jobs(job.task):
        raise LabelingError(f"{job.task} runs do not train on labeling jobs' labels")
    return store.set_job_retraining(job.id, every, profile)


def describe(job: Job) -> str:
    """The job's auto-retrain setting in a sentence, as the CLI and the Admin form report it."""
    if not job.retrain_every:
        return "auto-retrain off"
    return (
        f"a fine-tuning run after every {job.retrain_every} settled labels ({job.retrain_profile} profile); "
        "an accepted version serves at once"
    )


def settled_count(job: Job, store: Store) -> int:
    return len(final_labels(job, store))


def due(job: Job, store: Store) -> int | None:
    """The settled count when the job is due a run, else None."""
    if job.retrain_every <= 0:
        return None
    if store.settled_at_most(job.id, job.overlap) - job.retrained_at < job.retrain_every:
        return None
    settled = settled_count(job, store)
    return settled if settled - job.retrained_at >= job.retrain_every else None


def after_label(job_id: int, store: Store) -> worker.RunStatus | None:
    """Start the job's automatic run if it is due and its task is not training; the run's status, or None.
    Never raises: a label is stored whatever happens to the run it may start."""
    try:
        job = store.job(job_id)
        settled = due(job, store) if job is not None else None
        if job is None or settled is None:
            return None
        current = worker.status(job.task)
        if current is not None and current.active:
            return None  # counted again at the next label: the run starts once this one ends
        if not store.claim_retrain(job.id, job.retrained_at, settled):
            return None  # another process started it
        jobs = (job.id,) if worker.takes_jobs(job.task) else ()
        request = worker.TrainRequest(job.task, job_ids=jobs, profile=job.retrain_profile)
        try:
            return worker.launch(run_owner(job), request)
        except worker.RunRefused:
            store.claim_retrain(job.id, settled, job.retrained_at)  # not started: due again next label
            return None
    except Exception:  # the label is saved: a run that did not start is logged, never the label's error
        log.exception("auto-retrain of job #%s did not start", job_id)
        return None
