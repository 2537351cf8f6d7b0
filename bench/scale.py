"""Scale-out benchmark: ingestion on a local Ray cluster, and the compressed `ivfpq` index.

1. Ingestion of the same generated images in-process, then on a local Ray cluster (`ray.init(num_cpus=...)`,
   started before the clock) with 1 and 2 embedder actors: images/s of each, in one run. The actors' start
   (a model load each) is inside the clock, as a user's run pays it.
2. The `ivfpq` index over clustered 512-d vectors (the mixture of bench/search.py): build time (train on
   a sample, add, save), then in a fresh process that reads it memory-mapped: resident-memory growth while
   searching one query at a time against the flat index's size (n × d × 4 bytes), p50 latency, and
   recall@10 against exact search with and without the refine step.

    python bench/scale.py                       # 64 images, 200k vectors
    python bench/scale.py --vectors 4000000     # the issue's size: 8 GB on disk, ~13 GB while building

The last line reads `ivfpq memory ratio: X.XX, recall@10: Y.YYY` (recall with the refine step).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from bench.search import BENCH_EMBEDDER, clustered_chunks, clustered_vectors  # noqa: E402
from mmdemo.search import index as vector_index  # noqa: E402
from mmdemo.search import ivfpq  # noqa: E402
from mmdemo.search.index import VectorIndex  # noqa: E402

SEARCHER = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from mmdemo.search.index import VectorIndex, set_threads

def rss():
    # private memory, and pages of mapped files (page cache: clean, the kernel may drop them)
    fields = dict(line.split(":") for line in open("/proc/self/status") if line.startswith("Rss"))
    return {{key: int(value.split()[0]) * 1024 for key, value in fields.items()}}

set_threads({threads})
queries = np.load({queries!r})
before = rss()
loaded = VectorIndex.load("scale", {root_dir!r})
default_probes = loaded.breadth
out = []
for name, probes_times, k_factor in {settings!r}:
    loaded.tune(default_probes * probes_times)
    loaded._index.k_factor = k_factor
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = loaded.search(query[None, :], 10)[0]
        times.append((time.perf_counter() - started) * 1000)
        found.append([int(hit.id) for hit in hits])
    now = rss()
    out.append({{"name": name, "nprobe": loaded.breadth, "k_factor": k_factor,
                "p50_ms": float(np.median(times)), "found": found,
                "anon": now["RssAnon"] - before["RssAnon"], "file": now["RssFile"] - before["RssFile"]}})
print(json.dumps(out))
"""


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")


def ingestion(count: int, profile: str, cpus: int, batch_size: int) -> None:
    import ray

    from mmdemo.data import Store
    from mmdemo.search import distributed
    from mmdemo.services import Services
    from mmdemo.serving.registry import Registry
    from tests.labeling_helpers import make_images

    work = Path(tempfile.mkdtemp(prefix="mmdemo-scale-"))
    folder = make_images(work / "images", count)
    services = Services.create(
        Registry(profile, device="cpu"), index_root=work / "index", store=Store(work / "db")
    )
    services.index.embedder()  # the in-process model loads before its clock, as it stays loaded in the app
    rows = []
    started = time.perf_counter()
    services.index.ingest([folder], "in-process", batch_size=batch_size)
    seconds = time.perf_counter() - started
    rows.append(["in-process", "-", f"{seconds:.1f}", f"{count / seconds:.1f}"])
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    for workers in (1, 2):
        options = distributed.RayOptions(workers=workers, batch_size=batch_size)
        started = time.perf_counter()
        report = distributed.ingest(services.index, [folder], f"ray-{workers}", options=options)
        seconds = time.perf_counter() - started
        assert len(report.added) == count, report.summary()
        rows.append([f"ray, {cpus} CPUs", str(workers), f"{seconds:.1f}", f"{count / seconds:.1f}"])
    ray.shutdown()
    print(f"\ningestion of {count} images ({profile} profile, batch {batch_size}), one run:")
    table(["engine", "workers", "seconds", "images/s"], rows)
    shutil.rmtree(work, ignore_errors=True)


def peak_resident_bytes() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM"))


def exact_top10(truth: tuple[np.ndarray, np.ndarray], queries: np.ndarray, chunk: np.ndarray, offset: int):
    """Merge one chunk of the collection into the queries' running exact top 10 (scores, ids)."""
    scores = queries @ chunk.T
    top = np.argpartition(-scores, 9, axis=1)[:, :10]
    merged_scores = np.concatenate([truth[0], np.take_along_axis(scores, top, 1)], axis=1)
    merged_ids = np.concatenate([truth[1], top + offset], axis=1)
    best = np.argsort(-merged_scores, axis=1)[:, :10]
    return np.take_along_axis(merged_scores, best, 1), np.take_along_axis(merged_ids, best, 1)


def settings(k_factor: int) -> list[tuple[str, int, int]]:
    """(row name, nprobe as a multiple of the default, refine factor): the default last, for the last line."""
    return [
        ("plain", 1, 1),
        (f"refined (k × {k_factor}), nprobe × 2", 2, k_factor),
        (f"refined (k × {k_factor}), nprobe × 4", 4, k_factor),
        (f"refined (k × {2 * k_factor})", 1, 2 * k_factor),
        (f"refined (k × {k_factor}): the default", 1, k_factor),
    ]


def build_streamed(work: Path, count: int, dim: int, query_vectors: np.ndarray, clusters: int):
    """Build through `VectorIndex` in chunks (as ingestion adds), with the exact answers computed from the
    same chunks as they pass: neither the bench nor the index holds a second copy of the collection.
    Returns (build seconds, peak resident bytes, the exact top-10 ids)."""
    truth = (
        np.full((len(query_vectors), 10), -np.inf, dtype=np.float32),
        np.full((len(query_vectors), 10), -1, dtype=np.int64),
    )
    exact_s, started = 0.0, time.perf_counter()
    built = VectorIndex.create("scale", work, BENCH_EMBEDDER, dim, "ivfpq")
    offset = 0
    for chunk in clustered_chunks(count, dim, clusters=clusters, seed=0):
        built.add([str(i) for i in range(offset, offset + len(chunk))], chunk)
        exact_started = time.perf_counter()
        truth = exact_top10(truth, query_vectors, chunk, offset)
        exact_s += time.perf_counter() - exact_started
        offset += len(chunk)
    built.save()
    return time.perf_counter() - started - exact_s, peak_resident_bytes(), truth[1]


def compressed(count: int, dim: int, queries: int, threads: int, keep: Path | None) -> tuple[float, float]:
    vector_index.set_threads(threads)
    work = keep or Path(tempfile.mkdtemp(prefix="mmdemo-ivfpq-"))
    work.mkdir(parents=True, exist_ok=True)
    clusters = max(100, count // 20)
    query_vectors = clustered_vectors(queries, dim, clusters=clusters, seed=1)
    np.save(work / "queries.npy", query_vectors)
    built_before = work / f"truth-{count}-{dim}-{queries}.npy"
    if keep is not None and built_before.exists():
        build = f"reused the build in {work} (--keep)"
        truth = np.load(built_before)
    else:
        build_s, build_peak, truth = build_streamed(work, count, dim, query_vectors, clusters)
        build = f"{build_s:.1f} s; peak resident {build_peak / 2**30:.1f} GiB"
        if keep is not None:
            np.save(built_before, truth)
    gc.collect()
    opened = VectorIndex.load("scale", work)
    compressed_index = opened._index
    lists, probes, k_factor = compressed_index.nlist, compressed_index.nprobe, compressed_index.k_factor
    del opened, compressed_index

    script = SEARCHER.format(
        root=str(ROOT),
        threads=threads,
        queries=str(work / "queries.npy"),
        root_dir=str(work),
        settings=settings(k_factor),
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    flat_bytes = count * dim * 4
    on_disk = sum(p.stat().st_size for p in (work / "scale").iterdir())
    rows = []
    for row in measured:
        row["recall"] = float(
            np.mean([len(set(f) & set(t)) / 10 for f, t in zip(row["found"], truth.tolist(), strict=True)])
        )
        rows.append(
            [
                f"ivfpq {row['name']}",
                str(row["nprobe"]),
                f"{row['p50_ms']:.2f}",
                f"{row['recall']:.3f}",
                f"{row['anon'] / 2**20:.0f}",
                f"{row['file'] / 2**20:.0f}",
            ]
        )
    default = measured[-1]
    ratio = (default["anon"] + default["file"]) / flat_bytes  # all resident growth, after every query
    print(
        f"\nivfpq over {count:,} × {dim} clustered vectors ({threads} threads, {queries} queries, "
        f"IVF{lists}, nprobe {probes}, PQ{ivfpq.subquantizers(dim)}, OPQ {ivfpq.USE_OPQ})"
    )
    print(
        f"build (added in chunks of 100k: train on a sample, add, save): {build}; "
        f"on disk {on_disk / 2**20:.0f} MiB"
    )
    print(f"flat index size: {flat_bytes / 2**20:.0f} MiB (the baseline of the memory ratio)")
    print("a fresh process opened the index and searched it one query at a time, each setting in turn:")
    header = [
        "search",
        "nprobe",
        "p50 ms",
        "recall@10",
        "private MiB (cumulative)",
        "mapped-file MiB (cumulative)",
    ]
    table(header, rows)
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return ratio, default["recall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="build the index in this folder and keep it; reuse it next time",
    )
    args = parser.parse_args()
    if not args.skip_ingestion:
        ingestion(args.images, args.profile, args.ray_cpus, args.batch_size)
    ratio, recall = compressed(args.vectors, args.dim, args.queries, args.threads, args.keep)
    print(f"ivfpq memory ratio: {ratio:.2f}, recall@10: {recall:.3f}")


if __name__ == "__main__":
    main()
