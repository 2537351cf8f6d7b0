from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mmdemo.cli import main
from mmdemo.data import SCHEMA_VERSION, Store, StoreError
from mmdemo.serving.models.base import ModelSpec
from mmdemo.serving.registry import Registry, UnknownTask
from mmdemo.serving.reporting import version_rows
from tests.finetune_helpers import isolated_cli  # noqa: F401

BUILDS: list[tuple[str, str]] = []
BUILD_LOCK = threading.Lock()


class VersionedAdapter:
    num_parameters = 3

    def __init__(self, ctx) -> None:
        self.info = ctx.info
        self.path = ctx.path
        self.closed = False

    def close(self) -> None:
        self.closed = True


def build(ctx) -> VersionedAdapter:
    with BUILD_LOCK:
        BUILDS.append((ctx.spec.name, ctx.spec.version))
    return VersionedAdapter(ctx)


def _tables() -> dict[str, dict[str, ModelSpec]]:
    def spec(profile: str) -> ModelSpec:
        return ModelSpec(
            name=f"{profile} captioner",
            task="caption",
            family="fake",
            profile=profile,
            source="code",
            source_kind="code",
            builder="tests.test_versions:build",
        )

    return {"one": {"caption": spec("one")}, "two": {"caption": spec("two")}}


pytestmark = pytest.mark.usefixtures("isolated_cli")


@pytest.fixture
def store(data_dir: Path) -> Store:
    return Store(data_dir / "mmdemo.db")


def add_version(store: Store, status: str = "accepted", base_model: str = "one captioner", task="caption"):
    version = store.start_model_version(
        task,
        base_model=base_model,
        profile=base_model.split()[0],
        parent_version="base",
        models_dir=store.path.parent / "models",
        config={"steps": 1},
        data_hash="abc",
        user="ana",
    )
    Path(version.artifact).mkdir(parents=True)
    return store.finish_model_version(
        task,
        version.version,
        status=status,
        metrics={"before": {"loss": 2.0}, "after": {"loss": 1.0}},
        builder="tests.test_versions:build",
    )


def test_migration_creates_the_versions_table(store):
    assert store.schema_version == SCHEMA_VERSION
    assert "model_versions" in store.db.table_names()


def test_a_new_accepted_version_is_served_without_a_restart(store):
    BUILDS.clear()
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    base = registry.get("caption")
    assert base.info.version == "base"
    v1 = add_version(store)
    served = registry.get("caption")
    assert served.info.version == "v1" and served.path == Path(v1.artifact)
    assert base.closed and registry.loaded_names() == ["one captioner@v1"]
    assert registry.get("caption") is served  # loaded once, then cached
    assert BUILDS == [("one captioner", "base"), ("one captioner", "v1")]
    assert {s.task: s.version for s in registry.status()} == {"caption": "v1"}


def test_concurrent_calls_after_a_new_version_load_it_once(store):
    BUILDS.clear()
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    registry.get("caption")
    add_version(store)
    barrier = threading.Barrier(8)

    def call(_: int):
        barrier.wait()
        return registry.get("caption")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(8)))
    assert BUILDS.count(("one captioner", "v1")) == 1
    assert all(result is results[0] and result.info.version == "v1" for result in results)


def test_rejected_and_other_base_versions_are_not_served(store):
    add_version(store, status="rejected")
    add_version(store, base_model="two captioner")
    assert Registry("one", device="cpu", tables=_tables(), store=store).get("caption").info.version == "base"
    assert Registry("two", device="cpu", tables=_tables(), store=store).get("caption").info.version == "v2"


def test_rollback_serves_the_previous_version_then_the_base(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    add_version(store)
    add_version(store)
    v2 = registry.get("caption")
    assert v2.info.version == "v2"
    assert registry.rollback("caption", user="admin") == "v1"
    assert v2.closed  # swapped at once, since it was loaded
    assert registry.get("caption").info.version == "v1"
    rolled = store.model_version("caption", "v2")
    assert rolled.status == "rolled_back" and rolled.updated_by == "admin"
    assert registry.rollback("caption") == "base"
    assert registry.get("caption").info.version == "base"
    with pytest.raises(ValueError, match="nothing to roll back"):
        registry.rollback("caption")


def test_rollback_to_a_named_version_serves_it_again(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    for _ in range(3):
        add_version(store)
    assert registry.rollback("caption", "base") == "base"
    assert registry.rollback("caption", "v2") == "v2"
    assert [(v.version, v.status) for v in store.model_versions("caption")] == [
        ("v3", "rolled_back"),
        ("v2", "accepted"),
        ("v1", "rolled_back"),  # rolled back with the rest; only the named version comes back
    ]
    rows = version_rows(registry, store.model_versions("caption"))
    assert [row[3] for row in rows] == ["", "yes", ""]
    with pytest.raises(StoreError, match="no caption version 'v9'"):
        registry.rollback("caption", "v9")


def test_predictions_record_the_version_that_made_them(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    media = store.add_media(store.path, "image", data=b"pixels")
    before = store.record_prediction(
        "caption", media_id=media.id, input={}, output="a", model=registry.get("caption").info
    )
    add_version(store)
    after = store.record_prediction(
        "caption", media_id=media.id, input={}, output="b", model=registry.get("caption").info
    )
    assert (before.model_version, after.model_version) == ("base", "v1")
    assert after.model_source == store.model_version("caption", "v1").artifact


def test_a_task_without_a_catalog_model_is_served_by_its_version(store):
    registry = Registry("one", device="cpu", tables=_tables(), store=store)
    with pytest.raises(UnknownTask):
        registry.get("video")
    add_version(store, base_model="one embedder", task="video")
    assert registry.get("video").info.version == "v1"


def test_missing_model_folder_is_a_clear_error(store):
    import shutil

    from mmdemo.serving.hub import ModelUnavailable

    version = add_version(store)
    shutil.rmtree(version.artifact)
    with pytest.raises(ModelUnavailable, match="is missing"):
        Registry("one", device="cpu", tables=_tables(), store=store).get("caption")


def test_cli_versions_and_rollback(data_dir, capsys):
    assert main(["rollback", "caption", "--profile", "tiny"]) == 2
    assert "nothing to roll back" in capsys.readouterr().err
    add_version(Store(data_dir / "mmdemo.db"), base_model="tiny BlipForConditionalGeneration")
    assert main(["versions", "--profile", "tiny"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["task", "version", "status", "serving"]
    assert table[2].split()[:4] == ["caption", "v1", "accepted", "yes"]
    assert main(["rollback", "caption", "--profile", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == "caption: now serving base"
    assert main(["rollback", "caption", "--to", "v7", "--profile", "tiny"]) == 2
    assert "no caption version 'v7'" in capsys.readouterr().err


def test_status_tab_lists_versions_and_rolls_back_over_the_api(data_dir, monkeypatch):
    from gradio_client import Client

    from mmdemo.services import Services
    from mmdemo.ui.app import build_app
    from tests.conftest import served

    services = Services.create(Registry("tiny", device="cpu"))
    add_version(Store(data_dir / "mmdemo.db"), base_model="tiny BlipForConditionalGeneration")
    with served(build_app(services)) as url:
        client = Client(url, verbose=False)
        rows = client.predict(api_name="/versions")
        assert [[r["task"], r["version"], r["status"], r["serving"]] for r in rows] == [
            ["caption", "v1", "accepted", "yes"]
        ]
        monkeypatch.setenv("MMDEMO_ADMINS", "root")
        with pytest.raises(Exception, match="only admins"):
            client.predict("caption", "", api_name="/rollback")
        monkeypatch.delenv("MMDEMO_ADMINS")
        status = client.predict(api_name="/status")["models"]
        assert {row["task"]: row["why"] for row in status}[
            "caption"
        ] == "profile tiny chosen; fine-tuned version v1"
        assert client.predict("caption", "", api_name="/rollback")["serving"] == "base"
        [row] = client.predict(api_name="/versions")
        assert [row["status"], row["serving"]] == ["rolled_back", ""]
        status = client.predict(api_name="/status")["models"]
        assert {row["task"]: row["why"] for row in status}["caption"] == "profile tiny chosen"
        with pytest.raises(Exception, match="nothing to roll back"):
            client.predict("caption", "", api_name="/rollback")
