from __future__ import annotations

import sqlite3
import threading

import pytest

from mmdemo.data import SCHEMA_VERSION, Store, StoreError
from mmdemo.serving.models.base import ModelInfo

MODEL = ModelInfo(
    name="BLIP captioning base",
    version="v3",
    profile="full",
    source="Salesforce/blip",
    device="cuda",
    dtype="float16",
)


def _prediction(store: Store, image_path, output="a cat on a sofa"):
    media = store.add_media(image_path, "image", width=451, height=300)
    return store.record_prediction(
        "caption",
        media_id=media.id,
        input={"prefix": ""},
        output=output,
        model=MODEL,
        params={"num_beams": 3},
        latency_ms=12.5,
        user="ana",
    )


def test_round_trip_keeps_provenance(tmp_path, sample_images):
    path = tmp_path / "cat.jpg"
    sample_images["cat"].save(path)
    store = Store(tmp_path / "db.sqlite")
    prediction = _prediction(store, path)
    reopened = Store(tmp_path / "db.sqlite")
    loaded = reopened.prediction(prediction.id)
    assert loaded == prediction
    assert (loaded.model_name, loaded.model_version, loaded.profile, loaded.device) == (
        "BLIP captioning base",
        "v3",
        "full",
        "cuda",
    )
    assert loaded.params == {"num_beams": 3} and loaded.latency_ms == 12.5 and loaded.user == "ana"
    media = reopened.media(loaded.media_id)
    assert media.kind == "image" and media.width == 451 and media.bytes == path.stat().st_size
    assert reopened.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reopened.schema_version == SCHEMA_VERSION


def test_same_content_is_one_media_item(tmp_path, sample_images):
    first, second = tmp_path / "a.jpg", tmp_path / "b.jpg"
    sample_images["coffee"].save(first)
    second.write_bytes(first.read_bytes())
    store = Store(tmp_path / "db.sqlite")
    assert store.add_media(first, "image").id == store.add_media(second, "image").id
    assert store.counts()["media"] == 1


def test_a_hash_named_copy_takes_the_real_name_when_it_arrives(tmp_path, sample_images):
    original = tmp_path / "coffee.jpg"
    sample_images["coffee"].save(original)
    store = Store(tmp_path / "db.sqlite")
    media_id = store.add_media(original, "image").id
    kept = tmp_path / f"{media_id}.jpg"
    kept.write_bytes(original.read_bytes())
    store2 = Store(tmp_path / "other.sqlite")
    assert store2.add_media(kept, "image").name == kept.name
    upgraded = store2.add_media(original, "image")
    assert upgraded.name == "coffee.jpg" and upgraded.path == str(kept)  # the kept copy stays the file
    assert store.add_media(kept, "image").name == "coffee.jpg"  # a real name is never replaced by a hash


def test_corrections_are_append_only_history(tmp_path, sample_images):
    path = tmp_path / "cat.jpg"
    sample_images["cat"].save(path)
    store = Store(tmp_path / "db.sqlite")
    prediction = _prediction(store, path)
    first = store.add_correction(prediction.id, "a tabby cat", user="ana", note="breed")
    second = store.add_correction(prediction.id, "a tabby cat on a red sofa", user="ben")
    assert [c.output for c in store.corrections(prediction.id)] == [
        "a tabby cat",
        "a tabby cat on a red sofa",
    ]
    assert store.latest_correction(prediction.id) == second
    assert first.user == "ana" and first.note == "breed" and first.created_at <= second.created_at
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("UPDATE corrections SET output = '\"x\"'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM corrections")
    assert len(store.corrections(task="caption")) == 2
    with pytest.raises(StoreError):
        store.add_correction(9999, "nothing to correct")


def test_concurrent_corrections_are_all_kept(tmp_path, sample_images):
    path = tmp_path / "cat.jpg"
    sample_images["cat"].save(path)
    store = Store(tmp_path / "db.sqlite")
    prediction = _prediction(store, path)
    threads = [
        threading.Thread(
            target=store.add_correction, args=(prediction.id, f"caption {i}"), kwargs={"user": f"user{i}"}
        )
        for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.corrections(prediction.id)) == 16


def test_migration_from_the_first_schema_keeps_data(tmp_path):
    old = Store(tmp_path / "db.sqlite", migrate_to=1)
    assert old.schema_version == 1
    old.db["media"].insert({"id": "abc", "path": "x.jpg", "kind": "image", "bytes": 3, "created_at": "t"})
    old.db["predictions"].insert(
        {
            "task": "caption",
            "media_id": "abc",
            "input": "{}",
            "output": '"a dog"',
            "model_name": "m",
            "profile": "lite",
            "params": "{}",
            "latency_ms": 1.0,
            "created_at": "t",
        }
    )
    old.db["corrections"].insert(
        {"prediction_id": 1, "output": '"a puppy"', "user": "ana", "created_at": "t"}
    )
    old.close()
    store = Store(tmp_path / "db.sqlite")
    assert store.schema_version == SCHEMA_VERSION
    prediction = store.prediction(1)
    assert (
        prediction.output == "a dog" and prediction.model_version == "base" and prediction.user == "anonymous"
    )
    assert store.corrections(1)[0].output == "a puppy" and store.corrections(1)[0].note is None
    assert store.media("abc").name == "x.jpg"
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("DELETE FROM corrections")


def test_a_newer_database_is_refused_not_damaged(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "db.sqlite")


def test_a_database_migrated_by_a_newer_mmdemo_is_refused_not_damaged(tmp_path):
    from mmdemo.data.migrations import SCHEMA

    store = Store(tmp_path / "db.sqlite")
    store.save_label_set("birds", ["owl"])
    store.db[SCHEMA.migrations_table].insert(
        {"migration_set": SCHEMA.name, "name": "a_step_from_the_future", "applied_at": "t"}
    )
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "db.sqlite")
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "db.sqlite")  # refusing wrote nothing: a second open refuses the same way
    raw = sqlite3.connect(tmp_path / "db.sqlite")
    assert raw.execute("SELECT labels FROM label_sets").fetchall() == [('["owl"]',)]
    raw.close()


def test_default_location_follows_mmdemo_data_dir(data_dir):
    from mmdemo.data import default_path

    assert default_path() == data_dir / "mmdemo.db"


def test_label_sets_are_named_cleaned_and_replaced(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    assert store.save_label_set(" birds ", ["owl", " ", "owl", "crow "], user="ana") == ["owl", "crow"]
    assert store.label_set("birds") == ["owl", "crow"]
    store.save_label_set("birds", ["heron"])
    assert store.label_set("birds") == ["heron"] and store.label_set_names() == ["birds"]
    assert store.label_set("nope") is None
    with pytest.raises(StoreError, match="no labels"):
        store.save_label_set("empty", ["", "  "])


def test_default_store_follows_the_data_dir(tmp_path, monkeypatch):
    from mmdemo.data import default_store

    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "one"))
    first = default_store()
    assert default_store() is first and first.path == tmp_path / "one" / "mmdemo.db"
    monkeypatch.setenv("MMDEMO_DATA_DIR", str(tmp_path / "two"))
    assert default_store().path == tmp_path / "two" / "mmdemo.db"


def test_a_write_that_fails_halfway_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(sqlite3.IntegrityError):  # the item names media the store does not have
        store.create_job(
            "half",
            "caption",
            items=[("no-such-media", "")],
            labels=[],
            prompts=[],
            overlap=1,
            source="test",
            created_by="ana",
        )
    assert store.jobs() == []  # the job row went with its failed items
