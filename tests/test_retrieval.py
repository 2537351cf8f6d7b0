from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mmdemo.cli import main
from mmdemo.data import Store
from mmdemo.search import index, retrieval
from mmdemo.search import manifest as index_manifest
from mmdemo.search.service import IndexService
from mmdemo.services import Services
from mmdemo.serving.registry import spec_key
from tests.conftest import ASSETS, process_services, served

PHOTOS = ["cat.jpg", "coffee.jpg", "moon.jpg", "rocket.jpg", "flower.jpg"]


class Renamed:
    """The tiny embedder under another name: an index built by it must be refused by the other."""

    def __init__(self, embedder, name: str) -> None:
        self.embedder = embedder
        self.info = dataclasses.replace(embedder.info, name=name)
        self.dim = embedder.dim

    def encode_images(self, images):
        return self.embedder.encode_images(images)

    def encode_texts(self, texts):
        return self.embedder.encode_texts(texts)


class CrashAfter:
    """Embeds `batches` batches, then fails as a killed process would."""

    def __init__(self, embedder, batches: int) -> None:
        self.embedder, self.left = embedder, batches
        self.info, self.dim = embedder.info, embedder.dim

    def encode_images(self, images):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.embedder.encode_images(images)


@pytest.fixture
def embedder(tiny):
    return tiny.get("embed")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "test.db")


@pytest.fixture
def folder(tmp_path) -> Path:
    """Five photos (two in a subfolder), a corrupt JPEG and a text file."""
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    for name in PHOTOS[:3]:
        shutil.copy(ASSETS / name, root / name)
    for name in PHOTOS[3:]:
        shutil.copy(ASSETS / name, root / "trip" / name)
    (root / "broken.jpg").write_bytes((ASSETS / "clock.jpg").read_bytes()[:400])
    (root / "notes.txt").write_text("not a picture")
    return root


@pytest.fixture
def index_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "index"
    monkeypatch.setenv("MMDEMO_INDEX_DIR", str(root))
    return root


@pytest.fixture
def service(tiny, index_root) -> IndexService:
    """This test's own index service, over the session's tiny models."""
    return IndexService(tiny, root=index_root)


def test_ingest_reports_the_corrupt_and_the_non_image_file_and_indexes_the_rest(
    folder, embedder, store, index_root, service
):
    seen: list[tuple[int, int]] = []
    report = service.ingest(
        [folder], "photos", embedder=embedder, store=store, batch_size=2, progress=lambda *a: seen.append(a)
    )
    assert sorted(Path(p).name for p in report.added) == sorted(PHOTOS)
    failed = {Path(path).name: why for path, why in report.failed}
    assert set(failed) == {"broken.jpg", "notes.txt"}
    assert "corrupt" in failed["broken.jpg"] and "not an image" in failed["notes.txt"]
    assert "broken.jpg" in report.summary() and "notes.txt" in report.summary()
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)  # 6 candidate images, batches of 2

    built = index.VectorIndex.load("photos", index_root, embedder.info)
    assert len(built) == 5 and store.counts()["media"] == 5
    assert all(store.media(media_id) is not None for media_id in built.ids)

    again = service.ingest([folder], "photos", embedder=embedder, store=store)
    assert again.added == [] and len(again.already_indexed) == 5
    assert index.VectorIndex.load("photos", index_root).version == built.version  # nothing rewritten


def test_an_interrupted_ingest_resumes_without_duplicates_and_agrees_with_the_store(
    folder, embedder, store, index_root, service
):
    with pytest.raises(KeyboardInterrupt):
        service.ingest([folder], "photos", embedder=CrashAfter(embedder, 1), store=store, batch_size=2)
    partial = index.VectorIndex.load("photos", index_root)
    assert len(partial) == 1  # the first batch (broken.jpg, cat.jpg) was saved
    assert store.counts()["media"] == 3  # the failed batch reached the store, not the index

    report = service.ingest([folder], "photos", embedder=embedder, store=store, batch_size=2)
    assert len(report.added) == 4 and len(report.already_indexed) == 1
    final = index.VectorIndex.load("photos", index_root)
    assert sorted(final.ids) == sorted(set(final.ids)) and len(final) == 5
    assert {item.id for item in map(store.media, final.ids) if item} == set(final.ids)
    assert store.counts()["media"] == 5


def test_remove_by_path_and_search_results_carry_path_score_rank(
    folder, embedder, store, index_root, service
):
    service.ingest([folder], "photos", embedder=embedder, store=store)
    removed, absent = service.remove([folder / "trip"], "photos")
    assert removed == 2 and absent == []
    found = service.search(image=folder / "cat.jpg", name="photos", embedder=embedder, store=store)
    assert [Path(r.path).name for r in found.results][:1] == ["cat.jpg"]
    assert len(found.results) == 3 and [r.rank for r in found.results] == [1, 2, 3]
    assert found.results[0].score == pytest.approx(1.0, abs=1e-4)
    assert found.query_media_id == found.results[0].media_id


def test_the_default_index_is_built_on_first_use_and_rebuilt_for_a_new_embedder(
    embedder, store, index_root, service
):
    built, note = service.default_index(embedder=embedder, store=store)
    samples = len(list(ASSETS.glob("*.jpg")))
    assert len(built) == samples and "Built" in note
    assert service.default_index(embedder=embedder, store=store)[1] == ""  # loaded, not rebuilt

    other = Renamed(embedder, "another embedder")
    with pytest.raises(index_manifest.EmbedderMismatch):
        index.VectorIndex.load("default", index_root, other.info)
    rebuilt, note = service.default_index(embedder=other, store=store)
    assert "Rebuilt" in note and len(rebuilt) == samples
    assert rebuilt.manifest.embedder == "another embedder"
    assert index_manifest.list_indexes(index_root) == ["default"]


def test_an_index_built_with_another_data_folder_says_so_instead_of_empty(embedder, store, tmp_path, service):
    from mmdemo.ui import retrieval as retrieval_tab

    built, _ = service.default_index(embedder=embedder, store=store)
    elsewhere = Store(tmp_path / "another-data-folder.db")  # MMDEMO_DATA_DIR changed, MMDEMO_INDEX_DIR kept
    found = service.search(text="a cat", k=3, embedder=embedder, store=elsewhere)
    assert found.results == [] and found.index_size == len(built)
    said = retrieval_tab.describe(found)
    assert f"holds {len(built)} images" in said and "MMDEMO_DATA_DIR" in said and "empty" not in said
    empty = dataclasses.replace(found, index_size=0)
    assert "the index is empty" in retrieval_tab.describe(empty)
    assert service.search(text="a cat", k=3, embedder=embedder, store=store).results  # its own folder's


def test_judgements_are_stored_with_the_query_and_provenance(embedder, store, index_root, service):
    found = service.search(text="a cup of coffee", k=5, embedder=embedder, store=store)
    first = retrieval.judge(found, 1, True, user="alice", store=store)
    second = retrieval.judge(found, 2, False, store=store)
    assert (first.query_text, first.query_media_id, first.rank, first.relevant) == (
        "a cup of coffee",
        None,
        1,
        True,
    )
    assert first.result_media_id == found.results[0].media_id
    assert first.score == pytest.approx(found.results[0].score)
    assert (first.embedder_name, first.embedder_version) == (embedder.info.name, embedder.info.version)
    assert (first.index_name, first.index_version) == (
        "default",
        found.index_version,
    ) and found.index_version > 0
    assert first.user == "alice" and second.user == "anonymous" and not second.relevant

    by_image = service.search(image=ASSETS / "moon.jpg", k=3, embedder=embedder, store=store)
    third = retrieval.judge(by_image, 1, True, user="bob", store=store)
    assert third.query_text is None and store.media(third.query_media_id).path.endswith("moon.jpg")
    assert [j.id for j in store.judgements()] == [first.id, second.id, third.id]
    with pytest.raises(ValueError, match="no result #9"):
        retrieval.judge(found, 9, True, store=store)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("UPDATE judgements SET relevant = 0")


def test_rebuild_re_embeds_in_place_as_the_next_generation(
    folder, embedder, store, index_root, lite, service
):
    service.ingest([folder], "photos", embedder=embedder, store=store)
    before = index.VectorIndex.load("photos", index_root)
    with pytest.raises(index_manifest.EmbedderMismatch):
        service.load("photos", lite.get("embed").info)
    report = service.rebuild("photos", embedder=lite.get("embed"), store=store)
    after = service.load("photos", lite.get("embed").info)
    assert len(report.added) == len(after) == len(before) == 5 and set(after.ids) == set(before.ids)
    assert after.version == before.version + 1
    assert sorted(path.name for path in index_root.iterdir()) == ["photos"]  # no staging folder is left


def test_lite_coffee_ranks_first_by_text_and_by_its_own_photo(lite, store, index_root, service):
    embedder = lite.get("embed")
    by_text = service.search(text="a cup of coffee", k=5, embedder=embedder, store=store)
    by_image = service.search(image=ASSETS / "coffee.jpg", k=5, embedder=embedder, store=store)
    assert Path(by_text.results[0].path).name == "coffee.jpg"
    assert Path(by_image.results[0].path).name == "coffee.jpg"
    assert by_text.results[0].score > by_text.results[1].score


def test_cli_index_add_info_search_json_and_a_mismatch_exit_code(
    folder, index_root, capsys, monkeypatch, tiny, lite
):
    with process_services(Services.create(tiny)):  # the session's models, not a second copy
        assert main(["index", "add", str(folder), "--index", "photos"]) == 0
        out = capsys.readouterr()
        query = ["search", "--image", str(folder / "moon.jpg"), "--index", "photos", "-k", "3", "--json"]
        assert main(query) == 0
        rows = json.loads(capsys.readouterr().out)
    assert "added 5" in out.out and "broken.jpg" in out.err and "notes.txt" in out.err
    assert [row["rank"] for row in rows] == [1, 2, 3] and set(rows[0]) == {"path", "score", "rank"}
    assert Path(rows[0]["path"]).name == "moon.jpg" and rows[0]["score"] >= rows[1]["score"]

    assert main(["index", "info", "--index", "photos", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)[0]
    assert manifest["count"] == 5 and manifest["profile"] == "tiny"

    lite.get("embed")  # loaded first: its libraries' chatter on stderr is not the message under test
    capsys.readouterr()
    with process_services(Services.create(lite)):
        assert main(["search", "--text", "cat", "--index", "photos"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mmdemo index rebuild --index photos" in err[0]


def test_the_search_api_through_gradio_client(tiny, index_root, monkeypatch):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from mmdemo.ui.app import build_app

    with served(build_app(Services.create(tiny))) as url:
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="search first"):
            client.predict(1, True, api_name="/judge")
        with pytest.raises(AppError, match="Type what you are looking for"):
            client.predict("  ", 4, api_name="/search_text")
        assert not index_manifest.exists("default", index_root)  # an empty query builds nothing
        found = client.predict("a cup of coffee", 4, api_name="/search_text")
        assert [r["rank"] for r in found["results"]] == [1, 2, 3, 4] and found["query"] == "a cup of coffee"
        verdict = client.predict(2, True, api_name="/judge")
        assert verdict["rank"] == 2 and verdict["relevant"] is True
    judgement = retrieval.default_store().judgements()[-1]
    assert judgement.query_text == "a cup of coffee" and judgement.rank == 2 and judgement.relevant


def test_a_loaded_index_is_reused_until_another_writer_changes_it(
    folder, embedder, store, index_root, service
):
    service.ingest([folder], "photos", embedder=embedder, store=store)
    first = service.load("photos")
    assert service.load("photos") is first and len(first) == 5
    other = index.VectorIndex.load("photos", index_root)  # as `mmdemo index rm` in another process would
    other.remove([other.ids[0]])
    other.save()
    again = service.load("photos")
    assert again is not first and len(again) == 4


class Gated:
    """The tiny embedder, whose image batches wait for `release` once `closed` is set: a slow rebuild."""

    def __init__(self, embedder) -> None:
        self.embedder, self.info, self.dim = embedder, embedder.info, embedder.dim
        self.closed, self.waiting, self.release = threading.Event(), threading.Event(), threading.Event()

    def encode_images(self, images):
        if self.closed.is_set():
            self.waiting.set()
            assert self.release.wait(60), "the test never released the rebuild"
        return self.embedder.encode_images(images)

    def encode_texts(self, texts):
        return self.embedder.encode_texts(texts)


def test_a_search_answers_from_the_live_generation_while_a_rebuild_of_the_same_index_runs(
    folder, embedder, store, service
):
    gated = Gated(embedder)
    service.ingest([folder], "photos", embedder=gated, store=store)

    def search():
        return service.search(text="a cat", k=3, name="photos", embedder=gated, store=store)

    before = search()
    gated.closed.set()
    with ThreadPoolExecutor(max_workers=2) as pool:
        rebuilding = pool.submit(service.rebuild, "photos", embedder=gated, store=store)
        try:
            assert gated.waiting.wait(60)  # the rebuild is embedding, holding its writer's lock
            during = pool.submit(search).result(timeout=30)  # a search blocked by the rebuild would time out
            assert not rebuilding.done()
        finally:
            gated.release.set()
        report = rebuilding.result(timeout=60)
    assert during.index_version == before.index_version and len(during.results) == 3
    assert [r.media_id for r in during.results] == [r.media_id for r in before.results]

    after = search()  # the swapped-in generation is what searches get now
    assert len(report.added) == 5 and after.index_version == before.index_version + 1
    assert [r.media_id for r in after.results] == [r.media_id for r in before.results]
    assert service.load("photos").version == after.index_version


def test_each_service_keeps_its_own_loaded_indexes(folder, embedder, store, service, tiny, index_root):
    service.ingest([folder], "photos", embedder=embedder, store=store)
    other = IndexService(tiny, root=index_root)
    assert other.load("photos") is not service.load("photos")
    assert other.load("photos").ids == service.load("photos").ids


def test_a_search_answers_while_images_are_embedded_into_the_same_index(folder, embedder, store, service):
    gated = Gated(embedder)
    service.ingest([folder / "trip"], "photos", embedder=gated, store=store)
    before = service.search(text="a cat", k=5, name="photos", embedder=gated, store=store)
    gated.closed.set()
    with ThreadPoolExecutor(max_workers=2) as pool:
        adding = pool.submit(service.ingest, [folder], "photos", embedder=gated, store=store)
        try:
            assert gated.waiting.wait(60)
            during = pool.submit(
                service.search, text="a cat", k=5, name="photos", embedder=gated, store=store
            ).result(timeout=30)
            assert not adding.done()
        finally:
            gated.release.set()
        report = adding.result(timeout=60)
    assert len(during.results) == len(before.results) == 2 and during.index_version == before.index_version
    assert len(report.added) == 3 and len(service.load("photos")) == 5


def test_the_background_warm_up_loads_the_first_models_and_builds_the_default_index(tiny, store, index_root):
    from mmdemo import warmup
    from mmdemo.ui import runtime

    services = Services(tiny, IndexService(tiny, root=index_root, store=store))
    thread = warmup.start_warmup(services)
    assert thread is not None and warmup.WARMUP.running and "warming up" in warmup.WARMUP.text()
    thread.join(timeout=300)
    assert warmup.WARMUP.done and not warmup.WARMUP.running and warmup.WARMUP.errors == []
    loaded = set(tiny.loaded_names())
    assert {spec_key(tiny.serving_spec(task)) for task in ("embed", "caption", "audio")} <= loaded
    assert index_manifest.exists("default", index_root)  # the first search finds it built
    markdown, timer = runtime.warmup_status()
    assert markdown["visible"] is False and timer.active is False
