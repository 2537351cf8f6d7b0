"""What the hot-swap check costs: `registry.get(task)` of a loaded model, without a database (the baseline)
and with a store of fine-tuned versions to ask. Run: `python bench/bench_versions.py`."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from mmdemo.data import Store
from mmdemo.serving.models.base import ModelSpec
from mmdemo.serving.registry import Registry

CALLS = 2000


class Stub:
    num_parameters = 0

    def __init__(self, ctx) -> None:
        self.info = ctx.info


def build(ctx) -> Stub:
    return Stub(ctx)


def tables() -> dict[str, dict[str, ModelSpec]]:
    spec = ModelSpec(
        name="bench captioner",
        task="caption",
        family="stub",
        profile="bench",
        source="code",
        source_kind="code",
        builder="bench.bench_versions:build",
    )
    return {"bench": {"caption": spec}}


class NoStore(Registry):
    def version_store(self):
        return None


def per_call_us(registry: Registry) -> float:
    registry.get("caption")
    started = time.perf_counter()
    for _ in range(CALLS):
        registry.get("caption")
    return (time.perf_counter() - started) / CALLS * 1e6


def store_with_versions(folder: Path, count: int) -> Store:
    store = Store(folder / f"bench-{count}.db")
    for _ in range(count):
        version = store.start_model_version(
            "caption",
            base_model="bench captioner",
            profile="bench",
            parent_version="base",
            models_dir=folder / "models",
            config={},
            data_hash="",
        )
        Path(version.artifact).mkdir(parents=True, exist_ok=True)
        store.finish_model_version("caption", version.version, status="accepted", metrics={}, builder=None)
    return store


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        baseline = per_call_us(NoStore("bench", device="cpu", tables=tables()))
        rows = [("no database (baseline)", baseline)]
        for count in (1, 100, 1000):
            registry = Registry(
                "bench", device="cpu", tables=tables(), store=store_with_versions(Path(temp), count)
            )
            rows.append((f"{count} versions in the store", per_call_us(registry)))
    print(f"registry.get() of a loaded model, mean of {CALLS} calls")
    print(f"{'case':<28} {'µs/call':>9} {'vs baseline':>12}")
    for name, micros in rows:
        print(f"{name:<28} {micros:>9.1f} {micros / baseline:>11.1f}x")


if __name__ == "__main__":
    main()
