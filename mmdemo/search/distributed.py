"""Ingestion on a Ray cluster: `mmdemo index add PATH... --engine ray`.

The driver (this process) walks the paths and skips files the index already holds by content hash, before
any embedding. Ray Data then carries the remaining files to an actor pool of embedders (`map_batches`, one
model per actor, one GPU per actor when the cluster has GPUs), which read and embed them and return per
file: shard number, media id (= content hash), path, size and vector, or why it could not be read. The
driver adds the shards to the index in order and saves as in-process ingestion saves (every few seconds,
and when the run ends or is interrupted), so:

- Ray's own fault handling (actor restarts, task retries) re-runs lost work; the driver adds a shard once
  even when its task ran twice (shards are tracked, and the index skips ids it holds);
- an interrupted run leaves a saved subset of the store, and re-running embeds only the rest.

`ray.init()` with no address starts a local cluster on this machine; `RAY_ADDRESS` or `--ray-address`
joins a running one (`ray start --head`). The workers need mmdemo installed and the files readable at the
same paths (a shared disk). Ray is imported here only: nothing else in mmdemo imports this module unless
`--engine ray` was asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mmdemo.data import Store
from mmdemo.search.retrieval import BATCH_SIZE, IngestReport, Progress, walk
from mmdemo.search.service import IndexService

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: RAY_ADDRESS, else a new local cluster
    workers: int = 2  # embedder actors (one model each)
    batch_size: int = BATCH_SIZE  # images per shard (one `map_batches` batch)


@dataclass
class Shard:
    """One batch of embedded files as the driver adds it."""

    number: int
    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)  # the worker processes that embedded it


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` (or `RAY_ADDRESS`), or start a local one; once per process."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        kwargs["include_dashboard"] = False
    ray.init(address=address, **kwargs)


class Embedder:
    """A Ray actor: one embedding model, loaded once, that reads and embeds batches of files."""

    def __init__(self, profile: str, device: str | None) -> None:
        from mmdemo.serving.registry import Registry

        self.model = Registry(profile, device=device).get("embed")
        self.model_key = f"{self.model.info.name}@{self.model.info.version}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from mmdemo.media.files import MediaError, load_image

        images, errors, sizes = [], [], []
        for path in batch["path"]:
            try:
                loaded = load_image(str(path))
            except MediaError as error:
                images.append(None)
                errors.append(str(error))
                sizes.append((0, 0))
                continue
            images.append(loaded.image)
            errors.append("")
            sizes.append((loaded.image.width, loaded.image.height))
        good = [image for image in images if image is not None]
        vectors = np.zeros((len(images), self.model.dim), dtype=np.float32)
        if good:
            rows = [i for i, image in enumerate(images) if image is not None]
            vectors[rows] = self.model.encode_images(good)
        count = len(images)
        return {
            "shard": batch["shard"],
            "id": batch["id"],
            "path": batch["path"],
            "error": np.array(errors, dtype=object),
            "width": np.array([w for w, _ in sizes], dtype=np.int64),
            "height": np.array([h for _, h in sizes], dtype=np.int64),
            "vector": vectors,
            "pid": np.full(count, os.getpid(), dtype=np.int64),
            "model": np.array([self.model_key] * count, dtype=object),
        }


def actor_pool(workers: int, batches: int) -> Any:
    """Ray Data's pool of model actors: never more actors (each a model load) than batches to give them,
    so a rerun with one new file starts one."""
    import ray

    return ray.data.ActorPoolStrategy(size=max(1, min(workers, batches)))


def embedded_rows(
    pending: Sequence[tuple[Path, str]], *, profile: str, device: str | None, options: RayOptions
) -> Any:
    """A Ray dataset of the pending files' embeddings, one row per file, in the order given."""
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # shards come back in order: fewer held back
    context.enable_progress_bars = False  # the driver shows its own bar
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    items = [
        {"shard": position // options.batch_size, "id": media_id, "path": str(path)}
        for position, (path, media_id) in enumerate(pending)
    ]
    shard_count = -(-len(items) // options.batch_size)
    blocks = max(1, min(shard_count, 4 * max(1, options.workers)))  # one block would feed only one actor
    return ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        Embedder,
        fn_constructor_kwargs={"profile": profile, "device": "cuda" if gpus else device},
        batch_size=options.batch_size,
        batch_format="numpy",
        # Ray Data's actor pools restart a lost actor and retry its batches without limit by default
        # (`max_restarts=-1`, `max_task_retries=-1`): the fault handling is Ray's.
        compute=actor_pool(options.workers, shard_count),
        num_cpus=1,
        num_gpus=gpus,
    )


class WorkerModelMismatch(ValueError):
    """The cluster's workers embed with another model than this process (another profile or version)."""


def shards(rows: Any, total: int, batch_size: int, model_key: str) -> Any:
    """Rows of `embedded_rows` (`total` of them) grouped back into whole shards, yielded in shard order."""
    sizes: dict[int, int] = {}
    held: dict[int, Shard] = {}
    seen: set[tuple[int, str]] = set()
    next_number = 0
    for batch in rows.iter_batches(batch_size=batch_size, batch_format="numpy"):
        for row in range(len(batch["id"])):
            number, media_id = int(batch["shard"][row]), str(batch["id"][row])
            if (number, media_id) in seen:  # a re-run task's output: added once
                continue
            seen.add((number, media_id))
            shard = held.setdefault(number, Shard(number))
            if str(batch["model"][row]) != model_key:
                raise WorkerModelMismatch(
                    f"the Ray workers embed with {batch['model'][row]}, this process with {model_key}; "
                    "install the same mmdemo and models on every node"
                )
            shard.pids.add(int(batch["pid"][row]))
            path, error = str(batch["path"][row]), str(batch["error"][row])
            if error:
                shard.failed.append((path, error))
            else:
                shard.ids.append(media_id)
                shard.paths.append(path)
                shard.sizes.append((int(batch["width"][row]), int(batch["height"][row])))
                shard.vectors.append(np.asarray(batch["vector"][row], dtype=np.float32))
            sizes[number] = sizes.get(number, 0) + 1
        while next_number in held and sizes[next_number] >= min(batch_size, total - next_number * batch_size):
            yield held.pop(next_number)
            next_number += 1
    for number in sorted(held):  # only when the dataset ended early; the caller checks for gaps
        yield held.pop(number)


def ingest(
    service: IndexService,
    paths: Sequence[str | Path],
    name: str,
    *,
    options: RayOptions | None = None,
    store: Store | None = None,
    index_type: str = "auto",
    progress: Progress | None = None,
    show_bar: bool = False,
    on_shard: Callable[[Shard], None] | None = None,
) -> IngestReport:
    """Embed every image under `paths` that the index lacks on a Ray cluster; the same report as
    `IndexService.ingest`. `on_shard` sees each shard after it was added."""
    options = options or RayOptions()
    embedder = service.embedder()
    store = service.store_or_default(store)
    files, failed = walk(paths)
    with service.writing(name, embedder, expected_count=len(files), index_type=index_type) as write:
        report = IngestReport(index_name=name, failed=failed, built=write.built)
        pending = write.pending(files, report)
        if not pending:
            return report
        connect(options.address)
        rows = embedded_rows(
            pending, profile=service.registry.profile, device=service.registry.device, options=options
        )
        model_key = f"{embedder.info.name}@{embedder.info.version}"
        bar = tqdm(total=len(pending), unit="img", desc=f"indexing into {name} on Ray", disable=not show_bar)
        done = 0
        if progress:
            progress(0, len(pending))
        try:
            for shard in shards(rows, len(pending), options.batch_size, model_key):
                report.failed.extend(shard.failed)
                if shard.ids:
                    for path, (width, height) in zip(shard.paths, shard.sizes, strict=True):
                        store.add_media(Path(path).resolve(), "image", width=width, height=height)
                    write.add(shard.ids, np.stack(shard.vectors))
                    report.added.extend(shard.paths)
                done += len(shard.ids) + len(shard.failed)
                bar.update(len(shard.ids) + len(shard.failed))
                if progress:
                    progress(done, len(pending))
                if on_shard:
                    on_shard(shard)
        finally:  # `writing` saves what was embedded, also when interrupted
            bar.close()
    return report
