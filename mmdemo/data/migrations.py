"""The schema's history: every change to the tables, in order, applied by sqlite-utils' `Migrations`.

A step's function name is its identity in the `_sqlite_migrations` table: never rename, reorder or edit a
step that has shipped, only append new ones. Databases written before `Migrations` was used counted their
steps in `PRAGMA user_version`; on first open their first N steps are recorded as applied. The count is
still written to `PRAGMA user_version` so that an older mmdemo refuses a database newer than it knows.

`Store` runs `migrate` in one `BEGIN IMMEDIATE` transaction under a file lock, so two processes never apply
a step at once; the steps are idempotent all the same (a column or table that exists is left as it is).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations


class NewerSchema(Exception):
    """The database was migrated by a newer mmdemo: steps this one does not know were applied."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


def _append_only(db: sqlite_utils.Database, table: str) -> None:
    """Rows of `table` can be added, never changed or deleted: history stays."""
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        )


def _add_columns(db: sqlite_utils.Database, table: str, columns: dict[str, type]) -> None:
    """Add the columns `table` lacks: a step that is re-run never fails with "duplicate column name"."""
    existing = db[table].columns_dict
    for name, kind in columns.items():
        if name not in existing:
            db[table].add_column(name, kind)


def create_initial_tables(db: sqlite_utils.Database) -> None:
    db["media"].create(
        {"id": str, "path": str, "kind": str, "bytes": int, "created_at": str}, pk="id", if_not_exists=True
    )
    db["predictions"].create(
        {
            "id": int,
            "task": str,
            "media_id": str,
            "input": str,
            "output": str,
            "model_name": str,
            "profile": str,
            "params": str,
            "latency_ms": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("media_id", "media", "id")],
        if_not_exists=True,
    )
    db["corrections"].create(
        {"id": int, "prediction_id": int, "output": str, "user": str, "created_at": str},
        pk="id",
        foreign_keys=[("prediction_id", "predictions", "id")],
        if_not_exists=True,
    )


def add_provenance(db: sqlite_utils.Database) -> None:
    """Model version, device and who asked on predictions; media size; a note on corrections; append-only."""
    _add_columns(db, "media", {"width": int, "height": int, "duration_s": float})
    _add_columns(db, "predictions", {"model_version": str, "model_source": str, "device": str, "user": str})
    _add_columns(db, "corrections", {"note": str})
    db.execute("UPDATE predictions SET model_version = 'base' WHERE model_version IS NULL")
    # A literal, not `db.ANONYMOUS`: a step that has shipped never changes.
    db.execute("UPDATE predictions SET user = 'anonymous' WHERE user IS NULL")
    db["predictions"].create_index(["task", "created_at"], if_not_exists=True)
    db["corrections"].create_index(["prediction_id"], if_not_exists=True)
    _append_only(db, "corrections")


def create_label_sets(db: sqlite_utils.Database) -> None:
    """Named label sets (video classification, labeling jobs), saved from the UI or the CLI."""
    db["label_sets"].create(
        {"name": str, "labels": str, "user": str, "created_at": str, "updated_at": str},
        pk="name",
        if_not_exists=True,
    )


def create_judgements(db: sqlite_utils.Database) -> None:
    """Relevance judgements of search results, append-only, with the query and what produced the ranking."""
    db["judgements"].create(
        {
            "id": int,
            "query_text": str,
            "query_media_id": str,
            "result_media_id": str,
            "rank": int,
            "score": float,
            "relevant": int,
            "embedder_name": str,
            "embedder_version": str,
            "index_name": str,
            "index_version": int,
            "user": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("query_media_id", "media", "id"), ("result_media_id", "media", "id")],
        if_not_exists=True,
    )
    db["judgements"].create_index(["result_media_id"], if_not_exists=True)
    _append_only(db, "judgements")


def create_labeling_tables(db: sqlite_utils.Database) -> None:
    """Accounts, labeling jobs, their work queues, append-only label submissions and review decisions."""
    db["users"].create(
        {"name": str, "role": str, "password_hash": str, "source": str, "created_at": str, "updated_at": str},
        pk="name",
        if_not_exists=True,
    )
    db["jobs"].create(
        {
            "id": int,
            "name": str,
            "task": str,
            "labels": str,
            "prompts": str,
            "overlap": int,
            "source": str,
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["jobs"].create_index(["name"], unique=True, if_not_exists=True)
    db["job_items"].create(
        {
            "id": int,
            "job_id": int,
            "media_id": str,
            "prompt": str,
            "position": int,
            "prediction_id": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[
            ("job_id", "jobs", "id"),
            ("media_id", "media", "id"),
            ("prediction_id", "predictions", "id"),
        ],
        if_not_exists=True,
    )
    db["job_items"].create_index(["job_id", "media_id", "prompt"], unique=True, if_not_exists=True)
    db["assignments"].create(
        {
            "id": int,
            "job_id": int,
            "item_id": int,
            "user": str,
            "status": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("job_id", "jobs", "id"), ("item_id", "job_items", "id")],
        if_not_exists=True,
    )
    # The backstop for the atomic assignment: one assignment per item and annotator.
    db["assignments"].create_index(["item_id", "user"], unique=True, if_not_exists=True)
    db["assignments"].create_index(["job_id", "user", "status"], if_not_exists=True)
    for table in ("submissions", "reviews"):
        db[table].create(
            {
                "id": int,
                "job_id": int,
                "item_id": int,
                "user": str,
                "value": str,
                "anonymous": int,
                "submission_id": int,  # reviews: the submission accepted, if one was
                "note": str,
                "created_at": str,
            },
            pk="id",
            foreign_keys=[("job_id", "jobs", "id"), ("item_id", "job_items", "id")],
            if_not_exists=True,
        )
        db[table].create_index(["job_id", "item_id"], if_not_exists=True)
        _append_only(db, table)


def create_model_versions(db: sqlite_utils.Database) -> None:
    """Fine-tuned model versions: what each run trained on, how it scored, and whether it is served."""
    db["model_versions"].create(
        {
            "task": str,
            "version": str,
            "number": int,
            "base_model": str,
            "profile": str,
            "parent_version": str,
            "path": str,
            "artifact": str,
            "builder": str,
            "status": str,
            "config": str,
            "data_hash": str,
            "metrics": str,
            "user": str,
            "created_at": str,
            "updated_by": str,
            "updated_at": str,
        },
        pk=("task", "version"),
        if_not_exists=True,
    )
    db["model_versions"].create_index(["task", "base_model", "status", "number"], if_not_exists=True)


def add_media_names(db: sqlite_utils.Database) -> None:
    """The file name a person knows a media item by (a kept copy is named by its hash)."""
    if "name" not in db["media"].columns_dict:
        db["media"].add_column("name", str)
    for row in list(db["media"].rows):
        db["media"].update(row["id"], {"name": Path(row["path"]).name})


def add_judgement_adapter(db: sqlite_utils.Database) -> None:
    """Which retrieval adapter version ranked a judged result ("base": none). A column with a default,
    so the append-only judgements are never updated."""
    if "adapter_version" not in db["judgements"].columns_dict:
        db["judgements"].add_column("adapter_version", str, not_null_default="base")


def rewrite_moved_builders(db: sqlite_utils.Database) -> None:
    """Model adapters moved to `mmdemo.serving.models`: versions trained before keep loading."""
    db.execute(
        "UPDATE model_versions SET builder = 'mmdemo.serving.models.' || substr(builder, 15) "
        "WHERE builder LIKE 'mmdemo.models.%'"
    )


def add_job_orders(db: sqlite_utils.Database) -> None:
    """A job's queue order (random, uncertainty, diverse) and each item's stored rank score for it, with
    the model version (or embedder) that made it. Jobs made before keep their items' order (position)."""
    if "ordering" not in db["jobs"].columns_dict:  # idempotent, as every step (see the module's docstring)
        db["jobs"].add_column("ordering", str, not_null_default="position")
    db["item_scores"].create(
        {"item_id": int, "job_id": int, "ordering": str, "score": float, "made_by": str, "created_at": str},
        pk=("item_id", "ordering"),
        foreign_keys=[("item_id", "job_items", "id"), ("job_id", "jobs", "id")],
        if_not_exists=True,
    )
    db["item_scores"].create_index(["job_id", "ordering"], if_not_exists=True)


def add_queue_counts(db: sqlite_utils.Database) -> None:
    """The work queue in indexed lookups, flat in job size: per-item counts of holders and submitters kept
    by triggers, the hashed client address of an anonymous holder, and a pre-fill claim (single-flight)."""
    for count in ("held", "submitted"):
        if count not in db["job_items"].columns_dict:
            db["job_items"].add_column(count, int, not_null_default=0)
    _add_columns(db, "job_items", {"prefill_claim": str})
    _add_columns(db, "assignments", {"client": str})
    db.execute(
        "UPDATE job_items SET "
        "held = (SELECT COUNT(*) FROM assignments a WHERE a.item_id = job_items.id), "
        "submitted = (SELECT COUNT(*) FROM assignments a WHERE a.item_id = job_items.id "
        "AND a.status = 'submitted')"
    )
    triggers = {
        "assignments_held_add": "AFTER INSERT ON assignments BEGIN "
        "UPDATE job_items SET held = held + 1, submitted = submitted + (NEW.status = 'submitted') "
        "WHERE id = NEW.item_id; END",
        "assignments_held_drop": "AFTER DELETE ON assignments BEGIN "
        "UPDATE job_items SET held = held - 1, submitted = submitted - (OLD.status = 'submitted') "
        "WHERE id = OLD.item_id; END",
        "assignments_submitted": "AFTER UPDATE OF status ON assignments "
        "WHEN (NEW.status = 'submitted') != (OLD.status = 'submitted') BEGIN "
        "UPDATE job_items SET submitted = submitted + (NEW.status = 'submitted') - (OLD.status = 'submitted') "
        "WHERE id = NEW.item_id; END",
    }
    for name, body in triggers.items():
        db.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
    # The queue's walk: most-held first, then in order (`assign_next` names it).
    db.execute("CREATE INDEX IF NOT EXISTS job_items_queue ON job_items (job_id, held DESC, position)")
    db["job_items"].create_index(["job_id", "submitted"], if_not_exists=True)
    db["submissions"].create_index(["item_id", "user"], if_not_exists=True)
    # Open assignments only: releasing stale anonymous holds and counting what a client holds.
    db.execute(
        "CREATE INDEX IF NOT EXISTS assignments_open_updated ON assignments (job_id, updated_at) "
        "WHERE status != 'submitted'"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS assignments_open_client ON assignments (job_id, client) "
        "WHERE status != 'submitted'"
    )


def add_auto_retrain(db: sqlite_utils.Database) -> None:
    """A job's auto-retrain setting (every N settled labels, for a profile) and the settled count at which
    its last automatic run started."""
    _add_columns(db, "jobs", {"retrain_profile": str})
    for column in ("retrain_every", "retrained_at"):
        if column not in db["jobs"].columns_dict:
            db["jobs"].add_column(column, int, not_null_default=0)


UNRANKED = -1e300  # `job_items.rank` of an item with no score for its job's order: asked for last


def add_queue_rank(db: sqlite_utils.Database) -> None:
    """Each item's score for its job's current order, on the item itself (`rank`), kept by triggers from
    `item_scores` and the job's `ordering`: the queue's walk in every order is one index walk, as it is
    in creation order, instead of a join sorted per request."""
    if "rank" not in db["job_items"].columns_dict:
        db["job_items"].add_column("rank", float, not_null_default=UNRANKED)
    current = (
        "SELECT s.score FROM item_scores s JOIN jobs j ON j.id = s.job_id "
        "WHERE s.item_id = job_items.id AND s.ordering = j.ordering"
    )
    db.execute(f"UPDATE job_items SET rank = COALESCE(({current}), {UNRANKED})")
    set_rank = (
        "WHEN NEW.ordering = (SELECT ordering FROM jobs WHERE id = NEW.job_id) BEGIN "
        "UPDATE job_items SET rank = NEW.score WHERE id = NEW.item_id; END"
    )
    triggers = {
        "item_scores_rank_add": f"AFTER INSERT ON item_scores {set_rank}",
        "item_scores_rank_change": f"AFTER UPDATE OF score ON item_scores {set_rank}",
        "jobs_ordering_rank": "AFTER UPDATE OF ordering ON jobs BEGIN UPDATE job_items SET rank = COALESCE("
        "(SELECT score FROM item_scores s WHERE s.item_id = job_items.id AND s.ordering = NEW.ordering), "
        f"{UNRANKED}) WHERE job_id = NEW.id; END",
    }
    for name, body in triggers.items():
        db.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
    db.execute(
        "CREATE INDEX IF NOT EXISTS job_items_ranked ON job_items (job_id, held DESC, rank DESC, position)"
    )


# In the order they run; position N here was `PRAGMA user_version` N + 1 before `Migrations`.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    create_initial_tables,
    add_provenance,
    create_label_sets,
    create_judgements,
    create_labeling_tables,
    create_model_versions,
    add_media_names,
    add_judgement_adapter,
    rewrite_moved_builders,
    add_job_orders,
    add_queue_counts,
    add_auto_retrain,
    add_queue_rank,
]
SCHEMA_VERSION = len(MIGRATIONS)
NAMES = [step.__name__ for step in MIGRATIONS]

SCHEMA = Migrations("mmdemo")
for _step in MIGRATIONS:
    SCHEMA()(_step)


def _user_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def applied(db: sqlite_utils.Database) -> list[str]:
    """The names of the steps this database has seen, in the order they ran."""
    return [step.name for step in SCHEMA.applied(db)]


def schema_version(db: sqlite_utils.Database) -> int:
    """How many steps have run: the position in `MIGRATIONS` the database has reached."""
    return len(applied(db)) or _user_version(db)


def _adopt_numbered(db: sqlite_utils.Database, version: int) -> None:
    """Record the first `version` steps as applied: a database migrated by the numbered runner."""
    SCHEMA.ensure_migrations_table(db)
    stamp = str(datetime.now(timezone.utc))
    with db.atomic():
        db[SCHEMA.migrations_table].insert_all(
            {"migration_set": SCHEMA.name, "name": name, "applied_at": stamp} for name in NAMES[:version]
        )


def is_current(db: sqlite_utils.Database, target: int = SCHEMA_VERSION) -> bool:
    """Whether `migrate(db, target)` has nothing to do: `target` steps or more applied, all of them known
    to this mmdemo, and `PRAGMA user_version` in step. Only reads."""
    done = applied(db)
    return len(done) >= target and set(done) <= set(NAMES) and _user_version(db) == len(done)


def migrate(db: sqlite_utils.Database, target: int = SCHEMA_VERSION) -> None:
    """Apply the steps up to position `target` that the database has not seen. Raises `NewerSchema`."""
    done = applied(db)
    numbered = _user_version(db)
    if numbered > SCHEMA_VERSION or set(done) - set(NAMES):
        raise NewerSchema(max(numbered, len(done)))
    if not done and numbered:
        _adopt_numbered(db, numbered)
        done = NAMES[:numbered]
    if len(done) < target:
        SCHEMA.apply(db, stop_before=NAMES[target] if target < SCHEMA_VERSION else None)
    db.execute(f"PRAGMA user_version = {len(applied(db))}")
