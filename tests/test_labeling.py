from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from mmdemo.accounts import AccessDenied
from mmdemo.data import Store, labels
from mmdemo.labeling import jobs, queue, review, stats
from mmdemo.tasks import table
from tests.labeling_helpers import add_accounts, fake_predictor, make_images, make_job


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "labels.db")


def test_annotator_gets_prefilled_items_submits_skips_and_comes_back(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 3), overlap=1)
    add_accounts(store, {"ann": "annotator"})
    first = queue.next_item(job.id, "ann", predictor=fake_predictor, store=store)
    assert first.prefill == "prediction for img000.png" and first.model_name == "fake captioner"
    assert first.progress.done_by_you == 0 and first.progress.total_items == 3
    # Asking again without answering gives the same open item, and the prediction is made once.
    again = queue.next_item(job.id, "ann", predictor=None, store=store)
    assert again.item.id == first.item.id and again.prefill == first.prefill
    assert len(store.predictions("caption")) == 1

    queue.skip(job.id, first.item.id, "ann", store=store)
    second = queue.next_item(job.id, "ann", predictor=fake_predictor, store=store)
    assert second.item.id != first.item.id
    queue.submit(job.id, second.item.id, "ann", "  a dark   square ", store=store)
    third = queue.next_item(job.id, "ann", predictor=fake_predictor, store=store)
    queue.submit(job.id, third.item.id, "ann", third.prefill, store=store)
    # New items ran out: the skipped one comes back.
    back = queue.next_item(job.id, "ann", predictor=fake_predictor, store=store)
    assert back.item.id == first.item.id and back.progress.skipped_by_you == 1
    queue.submit(job.id, back.item.id, "ann", "corrected", store=store)
    assert queue.next_item(job.id, "ann", store=store) is None
    final = queue.progress(job, "ann", store=store)
    assert (final.done_by_you, final.complete_items, final.total_items) == (3, 3, 3)
    assert [s.value for s in store.submissions(job.id)] == [
        "a dark square",
        "prediction for img002.png",
        "corrected",
    ]


def test_roles_are_checked_by_the_functions(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 2), overlap=2)
    add_accounts(store, {"ann": "annotator", "other": "annotator", "rev": "reviewer"})
    view = queue.next_item(job.id, "ann", predictor=None, store=store)
    with pytest.raises(AccessDenied):
        jobs.create_job("ann", "mine", "caption", [view.media.path], store=store)
    with pytest.raises(AccessDenied):
        review.disagreements(job.id, "ann", store=store)
    with pytest.raises(Exception, match="not assigned"):
        queue.submit(job.id, view.item.id, "other", "sneaky", store=store)
    with pytest.raises(AccessDenied):
        queue.next_item(job.id, "stranger", store=store)  # no account
    assert review.disagreements(job.id, "rev", store=store) == []


def test_categorical_labels_must_come_from_the_label_set(store, tmp_path):
    job = make_job(
        store, make_images(tmp_path / "imgs", 1), task="video", labels=("cooking", "sports"), overlap=1
    )
    add_accounts(store, {"ann": "annotator"})
    view = queue.next_item(job.id, "ann", predictor=None, store=store)
    with pytest.raises(jobs.LabelingError, match="not one of"):
        queue.submit(job.id, view.item.id, "ann", "dancing", store=store)
    queue.submit(job.id, view.item.id, "ann", "sports", store=store)


def test_disagreement_review_keeps_the_originals_and_agreement_is_measured(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 4), task="video", labels=("a", "b"), overlap=2)
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator", "rev": "reviewer"})
    answers = {"ann1": ["a", "a", "b", "b"], "ann2": ["a", "b", "b", "b"]}
    for user, values in answers.items():
        for value in values:
            view = queue.next_item(job.id, user, predictor=None, store=store)
            queue.submit(job.id, view.item.id, user, value, store=store)
    disputed = review.disagreements(job.id, "rev", store=store)
    assert len(disputed) == 1 and sorted(s.value for s in disputed[0].labels) == ["a", "b"]
    summary = stats.job_agreement(job.id, "rev", store=store)
    # 2 raters, 4 items: p_o = 3/4, p_e = (2*1 + 2*3)/16 = 1/2 -> kappa = 0.5 (Fleiss: 7/15 here)
    assert [(p.first, p.second, p.shared_items, p.score) for p in summary.pairwise] == [
        ("ann1", "ann2", 4, pytest.approx(0.5))
    ]
    assert summary.value == pytest.approx(1 - (1 / 4) / (1 - ((3 / 8) ** 2 + (5 / 8) ** 2)))

    decision = review.decide(job.id, disputed[0].item.id, "rev", "b", store=store)
    assert decision.submission_id in {s.id for s in disputed[0].labels}
    assert review.disagreements(job.id, "rev", store=store) == []
    assert len(store.submissions(job.id)) == 8  # the originals stay
    with pytest.raises(Exception, match="append-only"):
        store.db.execute("DELETE FROM submissions")
    finals = labels.final_labels(job, store)
    assert sorted((f.settled, f.value) for f in finals) == [
        ("agreed", "a"),
        ("agreed", "b"),
        ("agreed", "b"),
        ("reviewed", "b"),
    ]


@pytest.mark.parametrize("connections", ["shared", "one per annotator"])
def test_sixteen_concurrent_annotators_never_exceed_the_overlap_or_lose_a_label(tmp_path, connections):
    shared = Store(tmp_path / "queue.db")
    job = make_job(shared, make_images(tmp_path / "imgs", 24), overlap=3)
    names = [f"ann{i:02d}" for i in range(16)]
    add_accounts(shared, dict.fromkeys(names, "annotator"))
    barrier = threading.Barrier(len(names))
    errors: list[BaseException] = []

    def annotate(name: str) -> None:
        store = shared if connections == "shared" else Store(tmp_path / "queue.db")
        try:
            barrier.wait()
            while (view := queue.next_item(job.id, name, predictor=None, store=store)) is not None:
                queue.submit(job.id, view.item.id, name, f"{name} on {view.item.id}", store=store)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=annotate, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assignments = shared.assignment_counts(job.id)
    assert len(assignments) == 24 and set(assignments.values()) == {3}
    submissions = shared.submissions(job.id)
    assert len(submissions) == 24 * 3
    per_item = Counter(s.item_id for s in submissions)
    assert set(per_item.values()) == {3}
    assert len({(s.item_id, s.user) for s in submissions}) == len(submissions)  # nobody labeled an item twice
    assert all(s.value == f"{s.user} on {s.item_id}" for s in submissions)


@pytest.fixture
def tiny_registry(tiny):
    """Services over the session's tiny registry as the process's, so models loaded by other tests are
    reused."""
    from mmdemo.services import Services
    from tests.conftest import process_services

    with process_services(Services.create(tiny)) as services:
        yield services


def test_every_task_is_prefilled_by_the_tabs_services_through_the_registry(tiny_registry, store, tmp_path):
    folder = make_images(tmp_path / "imgs", 1)
    by_task = {
        "caption": make_job(store, folder, name="c"),
        "vqa": make_job(store, folder, task="vqa", prompts=("what colour is it?",), name="v"),
        "video": make_job(store, folder, task="video", labels=("cooking", "sports"), name="clip"),
        "retrieval": make_job(store, folder, task="retrieval", prompts=("a red square",), name="r"),
    }
    add_accounts(store, {"ann": "annotator"})
    predictions = {}
    for task, job in by_task.items():
        view = queue.next_item(job.id, "ann", predictor=queue.ModelPredictor(tiny_registry), store=store)
        prediction = predictions[task] = store.prediction(store.job_item(view.item.id).prediction_id)
        assert prediction.task == task and prediction.profile == "tiny" and prediction.model_name
        assert prediction.media_id == view.media.id and prediction.user == "root"  # asked for the job's admin
        assert view.prefill and view.prefill == queue.prefill_value(job, prediction)
        if table.get(task).categorical:
            assert view.prefill in job.labels
    # Recorded as the Captioning and VQA tabs record theirs, so corrections can train on them.
    assert predictions["caption"].input["name"] == "img000.png" and isinstance(
        predictions["caption"].output, str
    )
    assert predictions["vqa"].input["question"] == "what colour is it?"
    assert predictions["vqa"].output["answer"] == queue.prefill_value(by_task["vqa"], predictions["vqa"])
    assert [row["label"] for row in predictions["video"].output["fused"]] in (
        ["cooking", "sports"],
        ["sports", "cooking"],
    )
    assert -1 <= predictions["retrieval"].output["score"] <= 1


def _write_clip(path, frames: int = 12) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            image = np.full((32, 32, 3), i * 20, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_jobs_take_clips_and_sample_frames_for_the_prediction(tiny_registry, store, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    _write_clip(folder / "clip.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video")
    job = make_job(store, folder, task="video", labels=("dark", "bright"), overlap=1)
    add_accounts(store, {"ann": "annotator"})
    views = [queue.next_item(job.id, "ann", predictor=queue.ModelPredictor(tiny_registry), store=store)]
    queue.skip(job.id, views[0].item.id, "ann", store=store)
    views.append(queue.next_item(job.id, "ann", predictor=queue.ModelPredictor(tiny_registry), store=store))
    by_name = {view.media.path.rsplit("/", 1)[-1]: view for view in views}
    assert by_name["clip.mp4"].prefill in job.labels and by_name["clip.mp4"].media.kind == "video"
    clip_prediction = store.prediction(store.job_item(by_name["clip.mp4"].item.id).prediction_id)
    assert clip_prediction.params["n_frames"] >= 1  # classified by the Video tab's service
    assert by_name["broken.mp4"].prefill == "" and by_name["broken.mp4"].model_name is None  # label by hand
    assert queue.playable_copy(by_name["clip.mp4"].media).endswith(".mp4")


def test_items_left_open_by_anonymous_visitors_go_back_to_the_queue(store, tmp_path, monkeypatch):
    job = make_job(store, make_images(tmp_path / "imgs", 2), overlap=1)
    gone = queue.next_item(job.id, "anonymous:visitor-who-left", store=store)
    add_accounts(store, {"ann": "annotator"})
    kept = queue.next_item(job.id, "ann", store=store)
    assert queue.next_item(job.id, "anonymous:newcomer", store=store) is None  # both still held
    monkeypatch.setattr(queue, "ANONYMOUS_HOLD", timedelta(seconds=-1))
    view = queue.next_item(job.id, "anonymous:newcomer", store=store)
    assert view.item.id == gone.item.id
    assert store.assignment_status(kept.item.id, "ann") == "assigned"  # accounts keep their items


@pytest.fixture
def index_root(tmp_path, monkeypatch):
    root = tmp_path / "index"
    monkeypatch.setenv("MMDEMO_INDEX_DIR", str(root))
    return root


def job_from(user, name, task, *, prompts=(), store, indexes=None, **source):
    items = jobs.items_from(user, task, store=store, indexes=indexes, **source)
    return jobs.create_job_from(user, name, task, items, prompts=prompts, store=store)


def test_jobs_take_every_item_of_an_index_or_a_querys_results(tiny_registry, store, tmp_path, index_root):
    tiny_registry.index.ingest([make_images(tmp_path / "imgs", 4)], "squares", store=store)
    tiny_registry.index.ingest([], "empty", store=store)
    add_accounts(store, {"root": "admin", "ann": "annotator"})

    everything = job_from(
        "root", "all", "caption", index_name="squares", store=store, indexes=tiny_registry.index
    )
    assert len(store.job_items(everything.id)) == 4 and everything.source == "index squares"

    relevance = job_from(
        "root",
        "rel",
        "retrieval",
        query=" a red square ",
        k=3,
        index_name="squares",
        store=store,
        indexes=tiny_registry.index,
    )
    items = store.job_items(relevance.id)
    found = tiny_registry.index.search(text="a red square", k=3, name="squares", store=store)
    assert relevance.prompts == ["a red square"] and {item.prompt for item in items} == {"a red square"}
    assert [store.media(item.media_id).path for item in items] == [r.path for r in found.results]

    questions = job_from(
        "root",
        "q",
        "vqa",
        query="a square",
        k=2,
        index_name="squares",
        prompts="what colour?,is it big?",
        store=store,
        indexes=tiny_registry.index,
    )
    assert len(store.job_items(questions.id)) == 4  # two results × two questions

    with pytest.raises(AccessDenied):
        job_from("ann", "mine", "caption", index_name="squares", store=store, indexes=tiny_registry.index)
    bad = {
        "no index named 'nope'": {"index_name": "nope"},
        "found nothing in index 'empty'": {"query": "a square", "index_name": "empty"},
        "holds no items": {"index_name": "empty"},
        "between 1 and": {"query": "a square", "k": 0, "index_name": "squares"},
        r"one of: .* \(got a folder and a query\)": {"folder": str(tmp_path / "imgs"), "query": "x"},
        "one of: a folder": {},
    }
    for message, source in bad.items():
        with pytest.raises(ValueError, match=message):
            job_from("root", "bad", "caption", store=store, indexes=tiny_registry.index, **source)
    with pytest.raises(jobs.LabelingError, match="judges them against that query"):
        job_from(
            "root",
            "r2",
            "retrieval",
            query="a square",
            index_name="squares",
            prompts="other",
            store=store,
            indexes=tiny_registry.index,
        )
    assert [job.name for job in store.jobs()] == ["all", "rel", "q"]  # no half-made job


def test_cli_creates_jobs_from_an_index_or_a_query(tiny_registry, tmp_path, index_root, capsys):
    from mmdemo.cli import main

    folder = make_images(tmp_path / "imgs", 3)
    tiny_registry.index.ingest([folder], "squares")
    create = ["jobs", "create", "--task", "retrieval"]
    assert main([*create, "--name", "a", "--index", "squares"]) == 2
    assert "needs queries" in capsys.readouterr().err
    assert main([*create, "--name", "a", "--query", "a dark square", "--k", "2", "--index", "squares"]) == 0
    assert "2 items" in capsys.readouterr().out
    assert main(["jobs", "create", "--task", "caption", "--name", "b", "--index", "squares"]) == 0
    assert "3 items" in capsys.readouterr().out
    for source in (["--index", "nope"], ["--folder", str(folder), "--query", "x"], []):
        assert main(["jobs", "create", "--task", "caption", "--name", "c", *source]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("no index named 'nope'" in err[0] or "one of: a folder" in err[0])


def test_a_job_over_the_item_limit_is_refused_before_any_file_is_stored(store, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_ITEMS", 5)
    folder = make_images(tmp_path / "photos", 3)
    files = sorted(folder.iterdir())
    add_accounts(store, {"root": "admin"})
    with pytest.raises(jobs.LabelingError, match="6 items is over the 5"):
        jobs.create_job("root", "big", "vqa", files, prompts=["what?", "why?"], store=store)
    assert store.counts()["media"] == 0 and store.jobs() == []


def test_prefill_match_is_counted_per_job_and_per_model_version(store, tmp_path):
    from dataclasses import replace

    from tests.labeling_helpers import FAKE_MODEL

    job = make_job(store, make_images(tmp_path / "imgs", 5), overlap=2)
    add_accounts(store, {"ann1": "annotator", "ann2": "annotator", "rev": "reviewer"})
    items = store.job_items(job.id)
    for item in items:  # v1 pre-filled items 0-2; v2, served later, items 3 and 4
        model = FAKE_MODEL if item.position < 3 else replace(FAKE_MODEL, version="v2")
        output = f"prediction {item.position}"
        prediction = store.record_prediction(
            "caption", media_id=item.media_id, input={}, output=output, model=model
        )
        store.set_item_prediction(item.id, prediction.id)
    given = {  # by position; None: keep the pre-fill
        "ann1": [None, "a grey square", None, None, None],
        "ann2": [None, "a grey square", "a grey square", None, None],
    }
    for user, values in given.items():
        for _ in items:
            view = queue.next_item(job.id, user, predictor=None, store=store)
            value = values[view.item.position]
            queue.submit(job.id, view.item.id, user, view.prefill if value is None else value, store=store)
    matches = stats.prefill_matches("rev", job_id=job.id, store=store)
    # Item 2 is disputed, not settled: v1 has items 0 (pre-fill kept) and 1 (corrected) settled.
    assert [(m.model, m.version, m.settled, m.matched) for m in matches] == [
        ("fake captioner", "v1", 2, 1),
        ("fake captioner", "v2", 2, 2),
    ]
    assert matches[0].rate == 0.5 and matches[1].rate == 1.0
    # A reviewer's decision settles it; the pre-fill it overrode does not match.
    review.decide(job.id, items[2].id, "rev", "a grey square", store=store)
    matches = stats.prefill_matches("rev", store=store)
    assert [(m.job.id, m.version, m.settled, m.matched) for m in matches] == [
        (job.id, "v1", 3, 1),
        (job.id, "v2", 2, 2),
    ]
    with pytest.raises(AccessDenied):
        stats.prefill_matches("ann1", store=store)


def test_a_caption_jobs_distribution_counts_lengths_a_label_sets_counts_labels(store, tmp_path):
    captions = make_job(store, make_images(tmp_path / "caps", 3), overlap=1, name="caps")
    sets = make_job(store, make_images(tmp_path / "sets", 2), task="video", labels=("a", "b"), overlap=1)
    add_accounts(store, {"ann": "annotator", "rev": "reviewer"})
    for job, values in ((captions, ["a cat", "a red cup on a saucer", "a cat"]), (sets, ["a", "a"])):
        for value in values:
            view = queue.next_item(job.id, "ann", predictor=None, store=store)
            queue.submit(job.id, view.item.id, "ann", value, store=store)
    # free text: per length band, not one bar per unique caption
    assert stats.label_distribution(captions.id, "rev", store=store) == [("1-3 words", 2), ("4-7 words", 1)]
    assert stats.label_distribution(sets.id, "rev", store=store) == [("a", 2)]
