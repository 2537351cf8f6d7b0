from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mmdemo.search import index
from mmdemo.search import manifest as index_manifest
from mmdemo.search.index import VectorIndex
from mmdemo.search.manifest import EmbedderMismatch
from mmdemo.serving.models.base import ModelInfo, l2_normalize

EMBEDDER = ModelInfo(name="test embedder", version="v1", profile="tiny", source="test")
DIM = 16


def vectors(count: int, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).normal(size=(count, DIM)))


def ids(count: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(count)]


def nearest_self(built: VectorIndex, data: np.ndarray, names: list[str]) -> list[str]:
    return [hits[0].id for hits in built.search(data, k=1)] if names else []


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_round_trip_keeps_vectors_ids_and_manifest(tmp_path, index_type):
    data, names = vectors(200), ids(200)
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM, index_type)
    assert built.add(names, data) == 200
    built.save()

    loaded = VectorIndex.load("photos", tmp_path, EMBEDDER)
    assert loaded.ids == names and len(loaded) == 200
    hits = loaded.search(data[:5], k=3)
    assert [row[0].id for row in hits] == names[:5]
    assert [hit.rank for hit in hits[0]] == [1, 2, 3]
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0][0].score >= hits[0][1].score >= hits[0][2].score

    manifest = json.loads((tmp_path / "photos" / "manifest.json").read_text())
    assert manifest["embedder"] == "test embedder" and manifest["embedder_version"] == "v1"
    assert manifest["profile"] == "tiny" and manifest["dim"] == DIM and manifest["metric"] == "inner_product"
    assert manifest["index_type"] == index_type and manifest["count"] == 200
    assert manifest["created_at"] and manifest["updated_at"]


def test_incremental_add_skips_known_ids_and_remove_keeps_the_id_map_aligned(tmp_path):
    data, names = vectors(50), ids(50)
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM)
    built.add(names[:30], data[:30])
    built.save()

    reopened = VectorIndex.load("photos", tmp_path, EMBEDDER)
    assert reopened.add(names[20:], data[20:]) == 20  # 20..29 were there already
    assert reopened.add(["dup", "dup"], data[:2]) == 1
    removed = reopened.remove([names[3], names[40], "not there"])
    assert removed == 2
    reopened.save()

    final = VectorIndex.load("photos", tmp_path, EMBEDDER)
    assert len(final) == 49 and names[3] not in final and names[40] not in final and "dup" in final
    kept = [i for i in range(50) if i not in (3, 40)]
    # Every remaining vector still maps back to its own id after remove + save + load.
    assert nearest_self(final, data[kept], [names[i] for i in kept]) == [names[i] for i in kept]
    assert final.version == 2


def test_search_on_an_empty_index_and_k_larger_than_the_index(tmp_path):
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM)
    assert built.search(vectors(1), k=5) == [[]]
    built.add(ids(3), vectors(3))
    assert len(built.search(vectors(1, seed=9), k=10)[0]) == 3


def test_an_index_built_by_another_embedder_is_refused_with_the_rebuild_command(tmp_path):
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM)
    built.add(ids(3), vectors(3))
    built.save()
    other = ModelInfo(name="another embedder", version="v1", profile="lite", source="test")
    with pytest.raises(EmbedderMismatch) as refused:
        VectorIndex.load("photos", tmp_path, other)
    message = str(refused.value)
    assert "test embedder" in message and "another embedder" in message
    assert "mmdemo index rebuild --index photos" in message
    newer = ModelInfo(name="test embedder", version="v2", profile="tiny", source="test")
    with pytest.raises(EmbedderMismatch):
        VectorIndex.load("photos", tmp_path, newer)


def test_a_crash_while_saving_leaves_the_previous_generation_whole(tmp_path, monkeypatch):
    data, names = vectors(20), ids(20)
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM)
    built.add(names[:10], data[:10])
    built.save()

    built.add(names[10:], data[10:])
    real_replace = os.replace

    def crash_on_manifest(source, target):
        if str(target).endswith("manifest.json"):
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(index_manifest.os, "replace", crash_on_manifest)
    with pytest.raises(OSError):
        built.save()
    monkeypatch.setattr(index_manifest.os, "replace", real_replace)

    survivor = VectorIndex.load("photos", tmp_path, EMBEDDER)
    assert survivor.ids == names[:10]
    survivor.add(names[10:], data[10:])
    survivor.save()
    files = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert files == ["ids-2.json", "manifest.json", "vectors-2.faiss"]  # the half-written generation is gone


def test_index_type_is_picked_by_size_and_missing_or_damaged_indexes_say_what_to_do(tmp_path):
    assert index.choose_index_type(1_000) == "flat"
    assert index.choose_index_type(100_000) == "ivf"  # issue 15: HNSW built in 90 s at 100k, IVF in 12 s
    assert index.choose_index_type(1_000_000) == "ivf"
    with pytest.raises(index_manifest.IndexNotFound, match="mmdemo index add"):
        VectorIndex.load("nothing", tmp_path)
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM)
    built.add(ids(3), vectors(3))
    built.save()
    (tmp_path / "photos" / "vectors-1.faiss").write_bytes(b"garbage")
    with pytest.raises(index_manifest.VectorIndexError, match="mmdemo index rebuild --index photos"):
        VectorIndex.load("photos", tmp_path)
    assert index_manifest.list_indexes(tmp_path) == ["photos"]


def test_an_ivf_index_grown_in_small_batches_is_retrained_and_still_finds_its_vectors(tmp_path):
    data, names = vectors(4000, seed=3), ids(4000)
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM, "ivf")
    for start in range(0, 4000, 100):
        built.add(names[start : start + 100], data[start : start + 100])
    built.save()
    loaded = VectorIndex.load("photos", tmp_path, EMBEDDER)
    lists = index.ivf_of(loaded._index).nlist
    assert lists >= index.ivf_lists(4000) // 2  # not the 2 lists its first batch allowed
    assert nearest_self(loaded, data[::97], names[::97]) == names[::97]
