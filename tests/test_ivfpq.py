"""The compressed `ivfpq` index: trained on a sample once it is large enough, saved beside its original
vectors, read back memory-mapped, refined exactly; and usable from `mmdemo index add --index-type ivfpq`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmdemo.search import index, ivfpq
from mmdemo.search.index import VectorIndex
from mmdemo.serving.models.base import ModelInfo, l2_normalize

ROOT = Path(__file__).resolve().parents[1]
EMBEDDER = ModelInfo(name="synthetic", version="1", profile="test", source="tests")


@pytest.fixture
def small_training(monkeypatch):
    monkeypatch.setattr(ivfpq, "MIN_TRAIN", 1_000)  # tests train in a second, not on 20k vectors
    monkeypatch.setattr(ivfpq, "SUBQUANTIZERS", 8)


def clustered(count: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(max(1, count // 10), dim)))
    labels = rng.integers(0, len(centres), count)
    return l2_normalize(centres[labels] + rng.normal(scale=0.5 / np.sqrt(dim), size=(count, dim))).astype(
        np.float32
    )


def test_ivfpq_trains_saves_and_searches_memory_mapped(tmp_path, small_training):
    data = clustered(3_000)
    ids = [f"m{i}" for i in range(len(data))]
    built = VectorIndex.create("pq", tmp_path, EMBEDDER, data.shape[1], "ivfpq")
    built.add(ids[:500], data[:500])
    assert built.search(data[:1], 1)[0][0].id == "m0"  # exact while too small to train
    for start in range(500, len(data), 500):
        built.add(ids[start : start + 500], data[start : start + 500])
    built.save()
    assert {p.name for p in (tmp_path / "pq").iterdir()} == {
        "manifest.json",
        "ids-1.json",
        "vectors-1.faiss",
        "raw-1.npy",
    }

    loaded = VectorIndex.load("pq", tmp_path, EMBEDDER)
    compressed = loaded._index
    assert isinstance(compressed, ivfpq.CompressedIndex) and compressed.mapped and compressed.base is not None
    assert isinstance(compressed.raw, ivfpq.RowFile)  # read row by row, never mapped or loaded whole
    np.testing.assert_array_equal(compressed.raw[[5, 2, 2999]], data[[5, 2, 2999]])
    np.testing.assert_array_equal(compressed.raw[10:13], data[10:13])
    np.testing.assert_array_equal(compressed.raw[-1], data[-1])
    hits = loaded.search(data[:50], 10)
    assert sum(row[0].id == f"m{i}" for i, row in enumerate(hits)) >= 48  # refined: exact scores
    assert all(
        abs(row[0].score - float(data[i] @ data[i])) < 1e-5
        for i, row in enumerate(hits)
        if row[0].id == f"m{i}"
    )
    np.testing.assert_allclose(loaded.vectors(["m7"])[0], data[7], atol=1e-6)

    loaded.add(["new"], clustered(1, seed=9))  # a mapped index is read into memory before it changes
    loaded.save()
    assert loaded.remove(["m1", "m2"]) == 2
    loaded.save()
    again = VectorIndex.load("pq", tmp_path, EMBEDDER)
    assert len(again) == len(data) - 1 and "new" in again and "m1" not in again
    assert {p.name for p in (tmp_path / "pq").iterdir()} == {
        "manifest.json",
        "ids-3.json",
        "vectors-3.faiss",
        "raw-3.npy",
    }


def test_ivfpq_is_chosen_by_size():
    assert index.choose_index_type(index.IVFPQ_ABOVE) == "ivfpq"
    assert index.choose_index_type(1_000) == "flat"


def test_index_add_with_index_type_ivfpq_from_the_cli(tmp_path):
    env = {
        **os.environ,
        "MMDEMO_DATA_DIR": str(tmp_path / "data"),
        "MMDEMO_INDEX_DIR": str(tmp_path / "index"),
        "PYTHONPATH": str(ROOT),
    }

    def mmdemo(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mmdemo.cli", "--profile", "tiny", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)

    added = mmdemo("index", "add", str(ROOT / "assets" / "images"), "--index", "pq", "--index-type", "ivfpq")
    assert added.returncode == 0, added.stderr
    assert "index 'pq': added" in added.stdout
    info = mmdemo("index", "info", "--index", "pq", "--json")
    assert '"index_type": "ivfpq"' in info.stdout
    found = mmdemo("search", "--text", "a dog", "--index", "pq", "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    assert found.stdout.count('"path"') == 3
