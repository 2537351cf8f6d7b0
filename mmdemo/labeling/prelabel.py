"""`mmdemo jobs prelabel JOB`: a job's pre-fill predictions made in bulk, before annotators open it.

Each item without a prediction gets one made and recorded exactly as the labeling tab makes it on first
view (`queue.prediction_for` with the task table's predictor), so an annotator's next item is pre-filled
from the store without waiting on a model. Items that already have one are left alone: a re-run (after an
interruption) only does the rest.

With `engine="ray"` an actor pool on a Ray cluster makes the predictions (one set of models per actor,
against the same database file: the workers need the data folder at the same path, e.g. a shared disk);
the driver links each item to its prediction, once, so a batch that Ray ran twice links one of them.
In a job handed out in `uncertainty` order, the local engine makes the predictions through the queue's own
scoring (`ordering.refresh_uncertainty`, in batched model calls where the task predicts lists), so each
item also gets the uncertainty score the queue orders by, and the first annotator waits on no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from mmdemo.data import Store
from mmdemo.labeling import ordering, queue
from mmdemo.labeling.jobs import get_job, store_or_default
from mmdemo.tasks import table

if TYPE_CHECKING:
    from mmdemo.services import Services

PRELABEL_BATCH = 8  # items per Ray batch


@dataclass
class PrelabelReport:
    job_id: int
    made: int = 0
    already: int = 0
    failed: list[int] = field(default_factory=list)  # item ids no model could predict
    scored: int = 0  # items given an uncertainty score for the queue's order

    def summary(self) -> str:
        text = f"job #{self.job_id}: pre-labeled {self.made}, already pre-labeled {self.already}"
        if self.scored:
            text += f", scored {self.scored} for the uncertainty order"
        if self.failed:
            text += f"; no prediction for {len(self.failed)} item(s)"
        return text


def prelabel(
    job_id: int | str,
    services: Services,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int = 2,
    store: Store | None = None,
    show_bar: bool = False,
) -> PrelabelReport:
    """Record a prediction for every item of the job that has none."""
    store = store_or_default(store)
    job = get_job(job_id, store)
    items = store.job_items(job.id)
    report = PrelabelReport(job.id, already=sum(item.prediction_id is not None for item in items))
    todo = [item for item in items if item.prediction_id is None]
    if not todo:
        return report
    if engine == "ray":
        return _on_ray(
            job.id, [item.id for item in todo], report, store, services, ray_address, workers, show_bar
        )
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}; choose local or ray")
    predictor = queue.ModelPredictor(services)
    if job.ordering == "uncertainty" and table.get(job.task).uncertainty is not None:
        batch = predictor.batch(job.task)
        ordering.refresh_uncertainty(
            job, store, predictor, batch_predictor=batch, limit=None, served=predictor.served
        )
        todo = [item for item in store.job_items(job.id) if item.prediction_id is None]  # labeled or unread
        report.made = report.scored = len(items) - report.already - len(todo)
    for item in tqdm(todo, unit="item", desc=f"pre-labeling job #{job.id}", disable=not show_bar):
        made = queue.prediction_for(job, item, predictor=predictor, store=store)
        if made is None:
            report.failed.append(item.id)
        else:
            report.made += 1
    return report


class Predictor:
    """A Ray actor: the process's models and the store, predicting items of one job."""

    def __init__(self, db_path: str, profile: str, device: str | None, index_dir: str) -> None:
        import os

        os.environ["MMDEMO_INDEX_DIR"] = index_dir
        from mmdemo.data import Store
        from mmdemo.services import Services
        from mmdemo.serving.registry import Registry

        self.store = Store(db_path)
        self.services = Services.create(Registry(profile, device=device), store=self.store)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from mmdemo.labeling.jobs import get_job
        from mmdemo.media.files import MediaError
        from mmdemo.serving.hub import ModelUnavailable

        made = []
        for job_id, item_id in zip(batch["job"], batch["item"], strict=True):
            job = get_job(int(job_id), self.store)
            item = next(i for i in self.store.job_items(job.id) if i.id == int(item_id))
            media = self.store.media(item.media_id)
            try:
                made.append(table.get(job.task).predict(job, item, media, self.store, self.services))
            except (ModelUnavailable, MediaError, ValueError):  # as the tab: labeled from scratch
                made.append(-1)
        return {"item": batch["item"], "prediction": np.array(made, dtype=np.int64)}


def _on_ray(
    job_id: int,
    item_ids: Sequence[int],
    report: PrelabelReport,
    store: Store,
    services: Services,
    address: str | None,
    workers: int,
    show_bar: bool,
) -> PrelabelReport:
    import ray

    from mmdemo import config
    from mmdemo.search.distributed import actor_pool, connect

    connect(address)
    registry = services.registry
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    batches = -(-len(item_ids) // PRELABEL_BATCH)
    blocks = max(1, min(batches, 4 * max(1, workers)))  # one block would feed only one actor
    items = [{"job": job_id, "item": item_id} for item_id in item_ids]
    rows = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        Predictor,
        fn_constructor_kwargs={
            "db_path": str(store.path),
            "profile": registry.profile,
            "device": "cuda" if gpus else registry.device,
            "index_dir": str(config.index_dir().resolve()),
        },
        batch_size=PRELABEL_BATCH,
        batch_format="numpy",
        compute=actor_pool(workers, batches),  # Ray restarts lost actors, retries
        num_cpus=1,
        num_gpus=gpus,
    )
    linked: set[int] = set()
    bar = tqdm(
        total=len(item_ids), unit="item", desc=f"pre-labeling job #{job_id} on Ray", disable=not show_bar
    )
    for batch in rows.iter_batches(batch_format="numpy"):
        for item_id, prediction_id in zip(batch["item"], batch["prediction"], strict=True):
            item_id = int(item_id)
            if item_id in linked:
                continue
            linked.add(item_id)
            if prediction_id < 0:
                report.failed.append(item_id)
            else:
                store.set_item_prediction(item_id, int(prediction_id))
                report.made += 1
            bar.update(1)
    bar.close()
    return report
