"""The task table: one entry per task, a clear error for any other name, and one list of video suffixes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmdemo.data import Store
from mmdemo.labeling import jobs, queue
from mmdemo.media import video
from mmdemo.media.files import VIDEO_SUFFIXES
from mmdemo.tasks import table
from tests.labeling_helpers import FAKE_MODEL, add_accounts, make_images


def test_every_task_is_in_the_table_and_other_names_are_one_clear_error():
    assert table.TASK_NAMES == ("caption", "vqa", "video", "retrieval")
    assert {name: table.get(name).categorical for name in table.TASK_NAMES} == {
        "caption": False,
        "vqa": False,
        "video": True,
        "retrieval": True,
    }
    assert table.get("vqa").prompt == "question" and table.get("retrieval").prompt == "query"
    assert (
        table.get("caption").prompt is None
        and table.get("retrieval").default_labels == table.RELEVANCE_LABELS
    )
    assert all(callable(table.get(name).uncertainty) for name in table.TASK_NAMES)  # the queue's order
    for bad in ("captions", "", None):
        with pytest.raises(ValueError, match=r"unknown task .*; choose from caption, vqa, video, retrieval"):
            table.get(bad)


def test_the_table_is_cheap_to_import():
    code = "import sys, mmdemo.tasks.table; print(sorted({'torch', 'gradio', 'av'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_one_list_of_video_suffixes_and_a_m4v_clip_joins_a_video_job(tmp_path):
    assert video.VIDEO_SUFFIXES is VIDEO_SUFFIXES and len(VIDEO_SUFFIXES) == 10
    assert (
        table.get("video").suffixes >= VIDEO_SUFFIXES and not table.get("caption").suffixes & VIDEO_SUFFIXES
    )
    folder = make_images(tmp_path / "clips", 1)
    (folder / "holiday.m4v").write_bytes(b"a clip")
    (folder / "old.3gp").write_bytes(b"another clip")
    store = Store(tmp_path / "db.sqlite")
    add_accounts(store, {"root": "admin"})
    files = jobs.folder_files(folder, "video")
    assert [path.name for path in files] == ["holiday.m4v", "img000.png", "old.3gp"]
    job = jobs.create_job("root", "clips", "video", files, labels=["a", "b"], store=store)
    kinds = {
        store.media(item.media_id).name: store.media(item.media_id).kind for item in store.job_items(job.id)
    }
    assert kinds == {"holiday.m4v": "video", "img000.png": "image", "old.3gp": "video"}
    (tmp_path / "only-clips").mkdir()
    (tmp_path / "only-clips" / "holiday.m4v").write_bytes(b"a clip")
    with pytest.raises(jobs.LabelingError, match="no image files in it"):
        jobs.folder_files(tmp_path / "only-clips", "caption")


def test_each_task_turns_its_own_prediction_into_the_pre_fill(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    media = store.add_media(make_images(tmp_path / "imgs", 1) / "img000.png", "image")
    outputs = {
        "caption": "a red square",
        "vqa": {"answer": "red", "top": []},
        "video": {"fused": [{"label": "sports", "score": 0.9}, {"label": "cooking", "score": 0.1}]},
        "retrieval": {"label": "not relevant", "score": 0.1},
    }
    expected = {"caption": "a red square", "vqa": "red", "video": "sports", "retrieval": "not relevant"}
    for name, output in outputs.items():
        prediction = store.record_prediction(
            name, media_id=media.id, input={}, output=output, model=FAKE_MODEL
        )
        assert table.get(name).prefill_value(prediction) == expected[name]
        assert table.get(name).prefill_value(None) == ""
    add_accounts(store, {"root": "admin"})
    job = jobs.create_job("root", "q", "vqa", [media.path], prompts=["what colour?"], store=store)
    assert queue.prefill_value(job, store.predictions("vqa")[0]) == "red"
