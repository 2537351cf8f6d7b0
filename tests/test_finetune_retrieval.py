from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdemo.cli import main
from mmdemo.data import default_store
from mmdemo.search import retrieval
from mmdemo.search.index import VectorIndex
from mmdemo.services import Services
from tests.conftest import process_services
from tests.finetune_helpers import isolated_cli  # noqa: F401
from tests.retrieval_finetune_helpers import (
    HELD_OUT_FILLERS,
    INDEX,
    TRAIN_FILLERS,
    judge_like_a_user,
    queries,
    recall_at_5,
    synthetic_registry,
    write_images,
)

pytestmark = pytest.mark.usefixtures("isolated_cli")


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The synthetic embedder serves `embed`, in this test's services, which the CLI uses too (after
    `isolated_cli`, which every test here uses)."""
    monkeypatch.setenv("MMDEMO_INDEX_DIR", str(tmp_path / "index"))
    with process_services(Services.create(synthetic_registry())) as services:
        yield services


@pytest.fixture
def world(services: Services, tmp_path: Path) -> dict[str, set[str]]:
    """The synthetic world's images, in the index `synthetic`."""
    by_concept = write_images(tmp_path / "images")
    report = services.index.ingest([tmp_path / "images"], INDEX)
    assert not report.failed and len(report.added) == 40
    return by_concept


def finetune(*extra: str) -> int:
    return main(["finetune", "retrieval", "--steps", "150", "--json", *extra])


def test_the_adapter_improves_recall_on_held_out_queries_and_is_served_at_once(services, world, capsys):
    for text, concept in queries(TRAIN_FILLERS):
        judge_like_a_user(services.index, text, world[concept])
    held_out = queries(HELD_OUT_FILLERS)  # phrasings never judged nor trained on
    base_recall, ranked_by = recall_at_5(services.index, held_out, world)
    assert ranked_by == {"base"}

    assert finetune() == 0
    version = json.loads(capsys.readouterr().out)
    assert version["task"] == "retrieval" and version["status"] == "accepted"
    assert version["base_model"] == "synthetic embedder"
    before, after = version["metrics"]["before"], version["metrics"]["after"]
    assert after["recall@5"] > before["recall@5"] + 0.3  # the run's own held-out (validation) queries
    assert version["metrics"]["validation_queries"] >= 2 and version["data_hash"]
    folder = Path(version["path"])
    assert {"config.json", "metrics.json", "report.md", "validation_queries.json"} <= {
        p.name for p in folder.iterdir()
    }

    # The same process serves it at once (hot swap), and the judgements say which version ranked.
    adapted_recall, ranked_by = recall_at_5(services.index, held_out, world)
    assert ranked_by == {"v1"}
    assert adapted_recall > base_recall + 0.3
    found = services.index.search(text=held_out[0][0], k=5, name=INDEX)
    assert retrieval.judge(found, 1, True, user="ana").adapter_version == "v1"
    assert default_store().judgements()[0].adapter_version == "base"

    assert main(["rollback", "retrieval"]) == 0
    assert "now serving base" in capsys.readouterr().out
    rolled_back, ranked_by = recall_at_5(services.index, held_out, world)
    assert ranked_by == {"base"} and rolled_back == pytest.approx(base_recall)


def test_the_stored_vectors_are_mapped_not_re_embedded(services, world, monkeypatch):
    for text, concept in queries(TRAIN_FILLERS)[:6]:
        judge_like_a_user(services.index, text, world[concept])
    assert finetune("--accept-always") == 0
    embedder = services.registry.get("embed")

    def no_images(images):
        raise AssertionError("an image was embedded again")

    monkeypatch.setattr(embedder, "encode_images", no_images)
    assert services.index.search(text="photo of apple", k=3, name=INDEX).adapter_version == "v1"


def test_images_added_after_training_are_mapped_alone_and_found(services, world, monkeypatch, tmp_path):
    for text, concept in queries(TRAIN_FILLERS)[:6]:
        judge_like_a_user(services.index, text, world[concept])
    assert finetune("--accept-always") == 0
    full_maps = []
    whole = VectorIndex.mapped
    monkeypatch.setattr(VectorIndex, "mapped", lambda self, *a: full_maps.append(1) or whole(self, *a))
    services.index.search(text="photo of apple", k=3, name=INDEX)
    extra = tmp_path / "more" / "001-99.png"
    extra.parent.mkdir()
    Image.new("RGB", (16, 16), (1, 99, 7)).save(extra)  # one more image of the first concept
    assert services.index.ingest([extra], INDEX).added
    found = services.index.search(text="photo of apple", k=41, name=INDEX)
    assert full_maps == [1]  # the new image was mapped by itself, not the whole index again
    assert "001-99.png" in {result.name for result in found.results} and len(found.results) == 41


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        (lambda index, world: None, "no relevance judgements yet"),
        (
            lambda index, world: judge_like_a_user(index, "photo of apple", world["apple"]),
            "at least 2 different queries",
        ),
        (
            lambda index, world: judge_like_a_user(index, "photo of apple", set()),
            "none of the 5 judged results",
        ),
    ],
    ids=["no judgements", "one query", "only negatives"],
)
def test_too_few_judgements_are_one_clear_line(services, world, capsys, judge, message):
    judge(services.index, world)
    assert finetune() == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert default_store().model_versions("retrieval") == []


def test_the_retrieval_tab_says_which_version_ranked_and_judgements_record_it(services, world):
    from gradio_client import Client

    from mmdemo.ui.app import build_app
    from tests.conftest import served

    with served(build_app(services)) as url:
        client = Client(url, verbose=False)
        found = client.predict(query="photo of apple", k=4, api_name="/search_text")
        assert found["ranked_by"] == "base"  # no retrieval adapter yet
        for text, concept in queries(TRAIN_FILLERS)[:6]:
            judge_like_a_user(services.index, text, world[concept])
        assert finetune("--accept-always") == 0  # as if from a terminal beside the running app
        found = client.predict(query="photo of apple", k=4, api_name="/search_text")
        assert found["ranked_by"] == "v1"  # the adapter, hot-swapped in
        client.predict(rank=1, relevant=True, api_name="/judge")
    assert default_store().judgements()[-1].adapter_version == "v1"


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_a_mapped_index_reads_back_the_stored_vectors_and_is_never_saved(tmp_path, index_type):
    from mmdemo.search.index import VectorIndex
    from mmdemo.search.manifest import VectorIndexError
    from tests.test_index import DIM, EMBEDDER, ids, vectors

    data, names = vectors(300), ids(300)
    built = VectorIndex.create("photos", tmp_path, EMBEDDER, DIM, index_type)
    built.add(names, data)
    built.save()
    assert np.allclose(built.vectors(names[:3]), data[:3], atol=1e-6)
    flip = np.eye(DIM, dtype=np.float32)[::-1]  # a permutation of the axes

    mapped = built.mapped(lambda rows: rows @ flip, "adapter v9")
    assert mapped.ids == names and mapped.adapted_by == "adapter v9"
    assert [hits[0].id for hits in mapped.search(data[:5] @ flip, k=1)] == names[:5]
    with pytest.raises(VectorIndexError, match="never saved"):
        mapped.save()
    assert VectorIndex.load("photos", tmp_path).version == built.version  # the index on disk is untouched
    sampled_ids, sampled = built.sample(7, seed=1)
    assert len(set(sampled_ids)) == 7 and np.allclose(sampled, built.vectors(sampled_ids))


def test_judgements_made_before_the_migration_were_ranked_by_the_base(tmp_path):
    from mmdemo import data as store_module
    from mmdemo.data import Store

    # Migrations are renumbered when branches merge: find this one by what it does.
    before = next(
        i for i, m in enumerate(store_module.MIGRATIONS) if m.__name__.endswith("_judgement_adapter")
    )
    old = Store(tmp_path / "db.sqlite", migrate_to=before)
    media = old.add_media(tmp_path / "a.png", "image", data=b"pixels")
    old.db["judgements"].insert(
        {"query_text": "a cat", "result_media_id": media.id, "rank": 1, "score": 0.5, "relevant": 1}
    )
    old.close()
    (judgement,) = Store(tmp_path / "db.sqlite").judgements()
    assert judgement.adapter_version == "base" and judgement.query_text == "a cat"


def test_image_queries_train_too_whether_or_not_the_query_image_is_indexed(services, world, tmp_path, capsys):
    from PIL import Image

    images = tmp_path / "images"
    outside = tmp_path / "query-not-indexed.png"
    Image.new("RGB", (16, 16), (1, 40, 7)).save(outside)  # a boat no index holds
    for query, concept in [(images / "000-00.png", "apple"), (outside, "boat")]:
        found = services.index.search(image=query, k=100, name=INDEX)
        for result in found.results[:8]:
            retrieval.judge(found, result.rank, Path(result.path).name in world[concept], user="ana")
    judge_like_a_user(services.index, "photo of cloud", world["cloud"])
    assert finetune("--accept-always", "--validation-fraction", "0.34") == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["train_queries"] + metrics["validation_queries"] == 3


def test_early_stopping_keeps_the_best_weights(services, world, tmp_path):
    from dataclasses import replace

    from mmdemo.finetune.retrieval_adapter import prepare, train
    from mmdemo.finetune.runs import RunConfig, RunContext

    for text, concept in queries(TRAIN_FILLERS)[:12]:  # 3 concepts, 4 phrasings each
        judge_like_a_user(services.index, text, world[concept])
    examples, data = prepare(default_store(), services.registry.get("embed"))
    shift = len(TRAIN_FILLERS)
    # Validation that contradicts training (each query gets the relevant results of another concept):
    # the more the adapter learns, the worse it gets, so it stops and keeps its starting weights.
    contradicting = [
        replace(q, relevant=examples[(i + shift) % len(examples)].relevant) for i, q in enumerate(examples)
    ]
    run_config = RunConfig("retrieval", steps=200, learning_rate=1e-2, options={"patience": 2})
    context = RunContext(
        run_config, examples, contradicting, tmp_path / "v1" / "model", services.registry, "base"
    )
    result = train(context, data)
    assert result.details["stopped_early"] and result.details["steps_run"] < 200
    assert result.details["best_step"] == 0 and result.after == result.before
    assert (tmp_path / "v1" / "model" / "adapter.npz").is_file()


def test_trained_heads_of_two_tasks_on_one_embedder_are_two_models(data_dir):
    from mmdemo.data import Store
    from mmdemo.serving.registry import Registry
    from tests.test_versions import _tables, add_version

    store = Store(data_dir / "mmdemo.db")
    for task in ("video", "retrieval"):  # both v1, both trained on the same base model's outputs
        add_version(store, base_model="one embedder", task=task)
    served = Registry("one", device="cpu", tables=_tables(), store=store)
    video, adapter = served.get("video"), served.get("retrieval")
    assert video is not adapter and (video.info.version, adapter.info.version) == ("v1", "v1")
    assert adapter.path == Path(store.model_version("retrieval", "v1").artifact)
    assert served.rollback("retrieval") == "base"
    assert adapter.closed and served.loaded_names() == ["video on one embedder@v1"]
