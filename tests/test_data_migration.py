"""Databases written before the data layer was split keep working: `fixtures/mmdemo-v8.db` was written by
commit 5e26e81 (`fixtures/make_v8_db.py`), schema version 8, counted in `PRAGMA user_version`."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from mmdemo.data import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Correction,
    Job,
    JobItem,
    Judgement,
    LabelRecord,
    MediaItem,
    ModelVersion,
    Prediction,
    Store,
    UserRecord,
)
from mmdemo.data.migrations import SCHEMA

FIXTURE = Path(__file__).parent / "fixtures" / "mmdemo-v8.db"


@pytest.fixture
def old_db(tmp_path) -> Path:
    path = tmp_path / "mmdemo.db"
    shutil.copyfile(FIXTURE, path)
    return path


def _schema(store: Store) -> dict[str, object]:
    """Tables with their columns, indexes and triggers: what a migration decides."""
    tables = {
        name: sorted((c.name, c.type) for c in store.db[name].columns) for name in store.db.table_names()
    }
    others = store.db.execute(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name"
    ).fetchall()
    return {"tables": tables, "others": others}


def _snapshot(store: Store) -> dict[str, object]:
    rows = {name: list(store.db[name].rows) for name in store.db.table_names()}
    return {
        "schema": _schema(store),
        "rows": rows,
        "user_version": store.db.execute("PRAGMA user_version").fetchone()[0],
    }


def test_the_fixture_is_a_numbered_schema_8_database():
    _assert_the_fixture_is_numbered_schema_8()


def _assert_the_fixture_is_numbered_schema_8() -> None:
    connection = sqlite3.connect(FIXTURE)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 8
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert SCHEMA.migrations_table not in names and {"media", "model_versions", "reviews"} <= names
    finally:
        connection.close()


def test_every_row_of_a_schema_8_database_reads_back(old_db):
    store = Store(old_db)
    assert store.schema_version == SCHEMA_VERSION
    assert [m.name for m in SCHEMA.applied(store.db)] == [step.__name__ for step in MIGRATIONS]
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    media = {item.name: item for item in (store.media(row["id"]) for row in store.db["media"].rows)}
    assert set(media) == {"cat.jpg", "dog.png", "violin.m4v"}
    assert all(isinstance(item, MediaItem) for item in media.values())
    cat, clip = media["cat.jpg"], media["violin.m4v"]
    assert (cat.kind, cat.width, cat.height, cat.bytes, cat.path) == ("image", 64, 48, 10, "kept/cat.jpg")
    assert (clip.kind, clip.duration_s, clip.width) == ("video", 2.5, None)

    (prediction,) = store.predictions()
    assert isinstance(prediction, Prediction) and store.prediction(prediction.id) == prediction
    assert (prediction.task, prediction.media_id, prediction.output) == ("caption", cat.id, "a cat on a sofa")
    assert prediction.input == {"prefix": ""} and prediction.params == {"num_beams": 3}
    assert (prediction.model_name, prediction.model_version, prediction.user) == (
        "BLIP captioning base",
        "base",
        "ana",
    )
    assert store.predictions_for_media(cat.id, "caption") == [prediction]

    (correction,) = store.corrections(task="caption")
    assert isinstance(correction, Correction) and store.latest_correction(prediction.id) == correction
    assert (correction.output, correction.user, correction.note) == ("a tabby cat on a sofa", "ana", "breed")

    (judgement,) = store.judgements()
    assert isinstance(judgement, Judgement) and judgement.relevant is True
    assert (judgement.query_text, judgement.result_media_id, judgement.rank) == (
        "a dog",
        media["dog.png"].id,
        1,
    )
    assert (judgement.index_name, judgement.index_version, judgement.adapter_version) == ("photos", 2, "base")

    assert store.label_set_names() == ["instruments"] and store.label_set("instruments") == [
        "violin",
        "cello",
    ]

    ana, ben = store.users()
    assert isinstance(ana, UserRecord) and (ana.name, ana.role, ana.password_hash) == (
        "ana",
        "admin",
        "pbkdf2$ana",
    )
    assert (ben.role, ben.source, ben.password_hash) == ("annotator", "oauth", None)

    (job,) = store.jobs("video")
    assert isinstance(job, Job) and store.job(job.id) == job
    assert (job.name, job.labels, job.prompts, job.overlap) == ("instruments-1", ["violin", "cello"], [], 2)
    first, second = store.job_items(job.id)
    assert isinstance(first, JobItem) and store.job_item(first.id) == first
    assert (first.media_id, first.prediction_id, second.media_id, second.prediction_id) == (
        clip.id,
        prediction.id,
        cat.id,
        None,
    )
    assert store.assignment_status(first.id, "ben") == "submitted"
    assert store.assignment_status(first.id, "ana") == "assigned"
    assert store.assignment_counts(job.id) == {first.id: 2}
    assert store.assigned_items(job.id, "ana", "assigned") == [first]

    (submission,) = store.submissions(job.id)
    assert isinstance(submission, LabelRecord) and submission.value == "violin"
    assert (submission.user, submission.anonymous, submission.item_id) == ("ben", False, first.id)
    (review,) = store.reviews(job.id, item_id=first.id)
    assert (review.user, review.value, review.submission_id, review.note) == (
        "ana",
        "violin",
        submission.id,
        "clear",
    )

    (version,) = store.model_versions()
    assert isinstance(version, ModelVersion) and store.newest_accepted_version("video") == version
    assert version.builder == "mmdemo.serving.models.fusion_head:load"
    assert (version.version, version.status, version.base_model) == ("v1", "accepted", "CLIP ViT-B/32")
    assert version.config == {"frames": 4, "steps": 10} and version.metrics == {"accuracy": 0.9}
    _assert_the_fixture_is_numbered_schema_8()  # the copy was migrated, not the fixture


def test_history_stays_append_only_after_the_migration(old_db):
    store = Store(old_db)
    for table in ("corrections", "judgements", "submissions", "reviews"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db.execute(f"UPDATE {table} SET user = 'mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db.execute(f"DELETE FROM {table}")


def test_a_migrated_database_takes_new_writes(old_db):
    store = Store(old_db)
    (prediction,) = store.predictions()
    store.add_correction(prediction.id, "a tabby cat", user="ben")
    assert [c.output for c in store.corrections(prediction.id)] == ["a tabby cat on a sofa", "a tabby cat"]
    (job,) = store.jobs()
    item = store.assign_next(job.id, "cyd", job.overlap)
    assert item is not None and item.position == 1  # the first item is full: ben and ana hold it
    assert store.add_submission(item, "cyd", "cello", anonymous=True).anonymous is True
    assert store.rollback_model_version("video", base_model="CLIP ViT-B/32") is None


def test_reopening_a_migrated_database_changes_nothing(old_db):
    store = Store(old_db)
    before = _snapshot(store)
    store.close()
    reopened = Store(old_db)
    assert _snapshot(reopened) == before
    assert reopened.schema_version == SCHEMA_VERSION


def test_a_fresh_and_a_migrated_database_end_with_the_same_schema(old_db, tmp_path):
    assert _schema(Store(old_db)) == _schema(Store(tmp_path / "fresh.db"))


def test_a_numbered_database_part_way_is_adopted_then_migrated(tmp_path):
    path = tmp_path / "db.sqlite"
    old = Store(path, migrate_to=3)
    old.db[SCHEMA.migrations_table].drop()  # as the numbered runner left it: only `PRAGMA user_version`
    assert old.db.execute("PRAGMA user_version").fetchone()[0] == 3
    old.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [m.name for m in SCHEMA.applied(store.db)] == [step.__name__ for step in MIGRATIONS]
    assert _schema(store) == _schema(Store(tmp_path / "fresh.db"))
