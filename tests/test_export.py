from __future__ import annotations

import json

import datasets
import pytest

from mmdemo import cli
from mmdemo.data import default_store
from mmdemo.labeling import export, queue, review
from mmdemo.serving.models.base import ModelInfo
from tests.labeling_helpers import add_accounts, make_images, make_job

MODEL = ModelInfo(name="fake embedder", version="v1", profile="tiny", source="test")


def _label_everything(job, answers: dict[str, list[str]], store, predictor=None) -> None:
    for user, values in answers.items():
        for value in values:
            view = queue.next_item(job.id, user, predictor=predictor, store=store)
            queue.submit(job.id, view.item.id, user, value, store=store)


@pytest.fixture
def caption_job(tmp_path):
    store = default_store()
    job = make_job(store, make_images(tmp_path / "imgs", 6), overlap=2)
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator"})
    # Items 1-5 agree (case and a full stop do not matter); item 6 is disputed.
    same = [f"square number {i}" for i in range(5)]
    _label_everything(
        job,
        {"ann1": [*same, "a red square"], "ann2": [*(s.upper() + "." for s in same), "a blue square"]},
        store,
    )
    return job


def test_caption_export_round_trips_through_parquet_and_hf(caption_job, tmp_path):
    rows = export.export_rows("caption", validation_fraction=0.5)
    exported = rows["train"] + rows["validation"]
    assert len(exported) == 5  # the disputed item waits for a reviewer
    assert {row["label_source"] for row in exported} == {"agreed"}
    assert all(row["annotators"] == ["ann1", "ann2"] and row["job"] == "job" for row in exported)

    result = export.export("caption", "parquet", tmp_path / "pq", validation_fraction=0.5)
    loaded = datasets.load_dataset(
        "parquet", data_files={s: str(tmp_path / "pq" / f"{s}.parquet") for s in result.rows}
    )
    assert {s: len(loaded[s]) for s in loaded} == result.rows
    first = loaded["train"][0] if len(loaded["train"]) else loaded["validation"][0]
    assert first["image"].size == (24, 24) and first["caption"].lower().startswith("square number")

    export.export("caption", "hf", tmp_path / "hf", validation_fraction=0.5)
    reloaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert sum(len(reloaded[s]) for s in reloaded) == 5
    assert set(reloaded["train"].column_names) >= {"image", "caption", "annotators", "model_name", "item_id"}


def test_a_review_decision_makes_the_disputed_item_exportable(caption_job, tmp_path):
    store = default_store()
    add_accounts(store, {"rev": "reviewer"})
    [disputed] = review.disagreements(caption_job.id, "rev", store=store)
    review.decide(caption_job.id, disputed.item.id, "rev", "a purple square", store=store)
    export.export("caption", "jsonl", tmp_path / "out")
    lines = [
        json.loads(line) for s in ("train", "validation") for line in (tmp_path / "out" / f"{s}.jsonl").open()
    ]
    reviewed = [row for row in lines if row["label_source"] == "reviewed"]
    assert [(r["caption"], r["reviewer"]) for r in reviewed] == [("a purple square", "rev")]
    assert len(lines) == 6


def test_split_is_by_item_and_stable():
    keys = [f"media-{i}" for i in range(200)]
    splits = [export.split_of(key, 0.2) for key in keys]
    assert splits == [export.split_of(key, 0.2) for key in keys]
    assert 20 < splits.count("validation") < 60
    assert {export.split_of(key, 0.0) for key in keys} == {"train"}


def test_anonymous_labels_are_left_out_unless_asked_for(tmp_path):
    store = default_store()
    job = make_job(store, make_images(tmp_path / "imgs", 2), overlap=1)
    _label_everything(
        job, {"anonymous:s1": ["seen by a visitor"], "anonymous:s2": ["seen by another"]}, store
    )
    with pytest.raises(ValueError, match="no caption labels"):
        export.export("caption", "jsonl", tmp_path / "none")
    with_anonymous = export.export_rows("caption", include_anonymous=True)
    assert len(with_anonymous["train"] + with_anonymous["validation"]) == 2


def test_vqa_and_retrieval_shapes(tmp_path):
    store = default_store()
    folder = make_images(tmp_path / "imgs", 3)
    vqa = make_job(store, folder, task="vqa", prompts=("what colour?",), overlap=1, name="vqa")
    _label_everything(vqa, {"root": ["red", "green", "blue"]}, store)
    rows = export.export_rows("vqa", validation_fraction=0.0)["train"]
    assert sorted((r["question"], r["answer"]) for r in rows) == [
        ("what colour?", "blue"),
        ("what colour?", "green"),
        ("what colour?", "red"),
    ]

    scores = iter([0.9, 0.8, 0.1])

    def scored(job, item, media, store):
        output = {"label": "relevant", "score": next(scores)}
        return store.record_prediction(job.task, media_id=media.id, input={}, output=output, model=MODEL).id

    retrieval = make_job(store, folder, task="retrieval", prompts=("a square",), overlap=1, name="ret")
    _label_everything(
        retrieval, {"root": ["relevant", "not relevant", "not relevant"]}, store, predictor=scored
    )
    [row] = export.export_rows("retrieval", validation_fraction=0.0)["train"]
    assert row["query"] == "a square" and row["positive"].endswith("img000.png")
    # hard negatives: judged not relevant, highest model score first
    assert [p.rsplit("/", 1)[-1] for p in row["hard_negatives"]] == ["img001.png", "img002.png"]
    result = export.export("retrieval", "hf", tmp_path / "ret", validation_fraction=0.0)
    loaded = datasets.load_from_disk(str(result.out))
    assert len(loaded["train"][0]["hard_negatives"]) == 2 and loaded["train"][0]["positive"].size == (24, 24)


def test_cli_export_and_push_without_a_token(caption_job, tmp_path, capsys, monkeypatch):
    assert cli.main(["export", "--task", "caption", "--format", "jsonl", "--out", str(tmp_path / "cli")]) == 0
    assert "wrote jsonl" in capsys.readouterr().out
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code = cli.main(
        ["export", "--task", "caption", "--out", str(tmp_path / "x"), "--push-to-hub", "me/labels"]
    )
    assert code == 2 and "HF_TOKEN" in capsys.readouterr().err


def test_parquet_writes_an_empty_validation_split_with_the_train_columns(caption_job, tmp_path):
    import pyarrow.parquet as pq

    result = export.export("caption", "parquet", tmp_path / "pq", validation_fraction=0.0)
    assert result.rows["validation"] == 0
    validation = pq.read_table(tmp_path / "pq" / "validation.parquet")
    train = pq.read_table(tmp_path / "pq" / "train.parquet")
    assert validation.num_rows == 0 and validation.schema.names == train.schema.names


def test_a_one_one_tie_is_left_out_of_an_export_with_unreviewed_items(caption_job, tmp_path):
    """The disputed item (ann1 "a red square", ann2 "a blue square") has no majority: even with
    --include-unreviewed it is not exported under whoever labeled it first; it waits for review."""
    rows = export.export_rows("caption", include_unreviewed=True, validation_fraction=0.0)
    captions = [row["caption"] for row in rows["train"]]
    assert len(captions) == 5 and not {"a red square", "a blue square"} & set(captions)
    result = export.export("caption", "jsonl", tmp_path / "out", include_unreviewed=True)
    assert sum(result.rows.values()) == 5
