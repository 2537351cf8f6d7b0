"""The queue's orders (uncertainty, diverse, random) and the runs reading labeling jobs' labels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmdemo.data import Job, JobItem, MediaItem, Store, default_store
from mmdemo.finetune.data import LabelSelection, relevance_labels, text_targets
from mmdemo.finetune.retrieval_adapter import judged_queries
from mmdemo.labeling import jobs, ordering, queue, review
from tests.labeling_helpers import FAKE_MODEL, add_accounts, fake_predictor, make_images, make_job

LABELS = ("a cat", "a dog", "a bird")


@pytest.fixture
def store(data_dir: Path) -> Store:
    return default_store()


def sure_of(confidence: dict[str, float]):
    """A predictor whose fused video scores give each file the top score `confidence[name]` (the rest split
    between the other two labels), recorded as the served model would record them."""

    def predictor(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
        top = confidence[Path(media.path).name]
        fused = [{"label": LABELS[0], "score": top}] + [
            {"label": label, "score": (1 - top) / 2} for label in LABELS[1:]
        ]
        return store.record_prediction(
            job.task, media_id=media.id, input={}, output={"fused": fused}, model=FAKE_MODEL
        ).id

    return predictor


def queue_order(job: Job, user: str, store: Store, predictor, served) -> list[str]:
    """Every item the user is handed, in order, each submitted with the model's label."""
    names = []
    while (
        view := queue.next_item(job.id, user, predictor=predictor, store=store, served=served)
    ) is not None:
        names.append(Path(view.media.path).name)
        queue.submit(job.id, view.item.id, user, view.prefill or LABELS[0], store=store)
    return names


def test_uncertainty_puts_the_least_sure_items_first_and_follows_the_served_version(store, tmp_path):
    folder = make_images(tmp_path / "imgs", 6)
    job = make_job(store, folder, task="video", labels=LABELS, overlap=1)
    store.set_job_ordering(job.id, "uncertainty")
    add_accounts(store, {"ann": "annotator", "ben": "annotator"})
    names = [f"img{i:03d}.png" for i in range(6)]
    v1 = dict(zip(names, (0.95, 0.40, 0.90, 0.34, 0.70, 0.50), strict=True))
    job = store.job(job.id)

    # By position the queue would start with img000, the item the model is surest of.
    first_three = []
    for _ in range(3):
        view = queue.next_item(job.id, "ann", predictor=sure_of(v1), store=store, served=lambda task: "v1")
        first_three.append(Path(view.media.path).name)
        queue.submit(job.id, view.item.id, "ann", LABELS[1], store=store)
    assert first_three == ["img003.png", "img001.png", "img005.png"]
    stored = store.item_scores(job.id, "uncertainty")
    assert {score.made_by for score in stored.values()} == {"v1"} and len(stored) == 6

    # A new version is served: it is sure where v1 was not. The scores are made again, with it.
    v2 = dict(zip(names, (0.36, 0.99, 0.98, 0.97, 0.40, 0.96), strict=True))
    rest = queue_order(job, "ann", store, sure_of(v2), served=lambda task: "v2")
    assert rest == ["img000.png", "img004.png", "img002.png"]
    # Only the items still to hand out are scored again (the labeled ones keep v1's scores).
    made_by = {
        store.media(store.job_item(i).media_id).path.rsplit("/", 1)[-1]: s.made_by
        for i, s in store.item_scores(job.id, "uncertainty").items()
    }
    assert {name for name, by in made_by.items() if by == "v2"} == set(rest)
    # Items nobody had labeled take the new version's prediction as their pre-fill.
    unlabeled_at_refresh = {
        i.id for i in store.job_items(job.id) if Path(store.media(i.media_id).path).name in rest
    }
    assert all(
        store.prediction(i.prediction_id).output["fused"][0]["score"]
        == v2[Path(store.media(i.media_id).path).name]
        for i in store.job_items(job.id)
        if i.id in unlabeled_at_refresh
    )


def test_ordering_never_hands_an_item_to_more_annotators_than_the_overlap(store, tmp_path):
    job = make_job(store, make_images(tmp_path / "imgs", 5), task="video", labels=LABELS, overlap=2)
    store.set_job_ordering(job.id, "uncertainty")
    add_accounts(store, {name: "annotator" for name in ("a", "b", "c")})
    confidence = {f"img{i:03d}.png": 0.3 + 0.1 * i for i in range(5)}
    for user in ("a", "b", "c"):
        queue_order(job, user, store, sure_of(confidence), served=lambda task: "v1")
    assert set(store.assignment_counts(job.id).values()) == {2}
    assert Counter(s.item_id for s in store.submissions(job.id)).most_common(1)[0][1] == 2


def test_diverse_covers_the_collection_first(store, tmp_path):
    """Three tight clusters of ten items: k-center greedy asks one of each cluster before a second one."""
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    vectors = np.concatenate([c + rng.normal(0, 0.1, (10, 8)) for c in centres])
    cluster_of = np.repeat(np.arange(3), 10)
    order = ordering.k_center_greedy(vectors)
    assert sorted(order) == list(range(30)) and len({cluster_of[i] for i in order[:3]}) == 3
    assert len({cluster_of[i] for i in range(3)}) == 1  # what position order would ask first

    job = make_job(store, make_images(tmp_path / "imgs", 30), task="video", labels=LABELS, overlap=1)
    job = store.set_job_ordering(job.id, "diverse")
    by_media = {item.media_id: index for index, item in enumerate(store.job_items(job.id))}
    ordering.prepare(
        job, store, embed=lambda media: (vectors[[by_media[m.id] for m in media]], "fake embedder")
    )
    add_accounts(store, {"ann": "annotator"})
    asked = queue_order(job, "ann", store, predictor=None, served=lambda task: "v1")
    first = [cluster_of[int(name[3:6])] for name in asked[:3]]
    assert len(set(first)) == 3


def test_random_order_is_a_seeded_shuffle_and_orders_are_checked(store, tmp_path):
    folder = make_images(tmp_path / "imgs", 12)
    job = make_job(store, folder, overlap=1)
    assert job.ordering == "position"
    job = jobs.set_order("root", job.id, "random", store=store)
    add_accounts(store, {"ann": "annotator"})
    asked = queue_order(job, "ann", store, predictor=None, served=lambda task: "v1")
    assert sorted(asked) == sorted(p.name for p in folder.iterdir()) and asked != sorted(asked)
    with pytest.raises(
        jobs.LabelingError, match="unknown order 'smart'; choose from random, uncertainty, diverse"
    ):
        jobs.set_order("root", job.id, "smart", store=store)
    assert (
        jobs.create_job(
            "root", "default", "video", sorted(folder.iterdir()), labels=LABELS, ordering=None, store=store
        ).ordering
        == "uncertainty"
    )


def mmdemo(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    """The real console script (or `python -m mmdemo.cli` where it is not on PATH) in its own process."""
    script = shutil.which("mmdemo")
    command = [script] if script else [sys.executable, "-m", "mmdemo.cli"]
    env = {
        **os.environ,
        "MMDEMO_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, env=env)


def test_jobs_create_and_order_from_the_command_line(tmp_path, data_dir):
    from mmdemo.cli import labeling as labeling_commands

    assert labeling_commands.ORDERS == ordering.ORDERS  # the CLI spells them out to stay cheap to import
    folder = make_images(tmp_path / "imgs", 4)
    made = mmdemo(
        "jobs",
        "create",
        "--name",
        "clips",
        "--task",
        "video",
        "--folder",
        str(folder),
        "--labels",
        "a cat,a dog",
        "--order",
        "random",
        data_dir=data_dir,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "job #1 'clips': 4 items, overlap 1, order random"
    changed = mmdemo("jobs", "order", "1", "uncertainty", data_dir=data_dir)
    assert changed.returncode == 0 and changed.stdout.strip() == "job #1 'clips': order uncertainty"
    bad = mmdemo("jobs", "order", "1", "smart", data_dir=data_dir)
    assert bad.returncode == 2 and "invalid choice: 'smart'" in bad.stderr and "Traceback" not in bad.stderr
    missing = mmdemo("jobs", "order", "7", "random", data_dir=data_dir)
    assert missing.returncode == 2 and "no job #7" in missing.stderr and "Traceback" not in missing.stderr


def label_caption_job(store: Store, folder: Path) -> Job:
    """A caption job over four sample photos: two annotators agree on one, a reviewer decides another,
    one stays unsettled (the annotators disagree), one is not labeled."""
    job = make_job(store, folder, task="caption", overlap=2, name="captions")
    add_accounts(store, {"ann": "annotator", "ben": "annotator", "rev": "reviewer"})
    items = store.job_items(job.id)
    for user, values in (
        ("ann", ["two cats", "a red bus", "a boat"]),
        ("ben", ["two cats", "a bus", "a ship"]),
    ):
        for item, value in zip(items[:3], values, strict=True):
            store.assign_next(job.id, user, 2)
            queue.submit(job.id, item.id, user, value, store=store)
    review.decide(job.id, items[1].id, "rev", "a red double-decker bus", store=store)
    return job


def test_a_caption_run_consumes_a_jobs_reviewed_labels(tmp_path, data_dir):
    from tests.finetune_helpers import ASSETS, store_caption_corrections

    def run() -> dict:
        result = mmdemo(
            "finetune",
            "caption",
            "--profile",
            "tiny",
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--accept-always",
            "--json",
            data_dir=data_dir,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    store = default_store()
    store_caption_corrections(store)
    before = list(text_targets(store, "caption", LabelSelection()))
    without = run()
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in ("cat", "coffee", "rocket", "moon"):
        shutil.copy(ASSETS / f"{stem}.jpg", folder / f"{stem}.jpg")
    job = label_caption_job(store, folder)
    after = list(text_targets(store, "caption", LabelSelection()))
    added = {(t.target, t.origin) for t in after} - {(t.target, t.origin) for t in before}
    assert added == {
        ("two cats", f"job {job.id}, agreed"),
        ("a red double-decker bus", f"job {job.id}, reviewed"),
    }
    # --include-unreviewed takes a majority label; the boat/ship item is a 1–1 tie, left for review
    unreviewed = text_targets(store, "caption", LabelSelection(include_unreviewed=True))
    assert {t.target for t in unreviewed} == {t.target for t in after}
    only_job = list(text_targets(store, "caption", LabelSelection(job_ids=(job.id,))))
    assert {t.origin for t in only_job} >= {f"job {job.id}, agreed"}

    with_job = run()  # the same corrections and the job's settled labels: the data and its hash differ
    count = lambda v: v["metrics"]["train_examples"] + v["metrics"]["validation_examples"]  # noqa: E731
    assert count(with_job) == count(without) + 2
    assert with_job["data_hash"] != without["data_hash"]
    assert with_job["metrics"]["label_origins"][f"job {job.id}, reviewed"] == 1
    report = (Path(with_job["path"]) / "report.md").read_text()
    assert f"1 job {job.id}, reviewed" in report and "correction, single" in report


def test_retrieval_jobs_labels_become_positives_and_hard_negatives(store, tmp_path):
    folder = make_images(tmp_path / "imgs", 3)
    job = make_job(store, folder, task="retrieval", prompts=("a red square",), overlap=1, name="relevance")
    add_accounts(store, {"ann": "annotator"})
    items = store.job_items(job.id)
    for item, value in zip(items, ("relevant", "not relevant", "relevant"), strict=True):
        store.assign_next(job.id, "ann", 1)
        queue.submit(job.id, item.id, "ann", value, store=store)
    [query] = judged_queries(relevance_labels(store))
    assert (query.index_name, query.query_text) == ("default", "a red square")
    assert set(query.relevant) == {items[0].media_id, items[2].media_id}
    assert query.irrelevant == (items[1].media_id,)
    assert set(query.origins) == {f"job {job.id}, agreed"}
    assert judged_queries(relevance_labels(store, LabelSelection(job_ids=()))) == []


def test_runs_read_corrections_owner_checked_and_anonymous_ones_only_when_asked(store, tmp_path):
    from tests.finetune_helpers import ASSETS, TINY_MODEL

    add_accounts(store, {"ann": "annotator", "other": "annotator", "rev": "reviewer"})
    corrected = {}
    for stem, (owner, corrector) in {
        "cat": ("ann", "ann"),  # the prediction's own user
        "coffee": ("ann", "other"),  # someone else's prediction, by an annotator: left out
        "rocket": ("ann", "rev"),  # a reviewer may correct anyone's
        "moon": (None, "other"),  # an anonymous visitor's prediction is theirs: left out
        "clock": (None, None),  # an anonymous visitor corrects their own prediction
    }.items():
        media = store.add_media(ASSETS / f"{stem}.jpg", "image")
        prediction = store.record_prediction(
            "caption", media_id=media.id, input={}, output="words", model=TINY_MODEL, user=owner
        )
        store.add_correction(prediction.id, f"a {stem}", user=corrector)
        corrected[stem] = media.id
    targets = {t.target for t in text_targets(store, "caption", LabelSelection())}
    assert targets == {"a cat", "a rocket"}
    with_anonymous = {
        t.target for t in text_targets(store, "caption", LabelSelection(include_anonymous=True))
    }
    assert with_anonymous == targets | {"a clock"}


# -- caption uncertainty (tiny BLIP: the real classes, random weights) ---------------------------------
@pytest.mark.parametrize("strategy,beams", [("beam", 1), ("beam", 3), ("sample", 1)])
def test_a_caption_prediction_records_the_mean_token_logprob_of_its_output(tiny, store, strategy, beams):
    from mmdemo.tasks import captioning, uncertainty

    images = make_images(Path(os.environ["MMDEMO_DATA_DIR"]).parent / "cap", 3)
    options, _ = captioning.caption_options(strategy=strategy, num_beams=beams, max_length=8)
    results, _ = captioning.caption_images(sorted(images.glob("*.png")), options, registry=tiny, store=store)
    for result in results:
        prediction = store.prediction(result.prediction_id)
        logprob = prediction.params["logprob"]
        assert isinstance(prediction.output, str) and prediction.output == result.caption
        assert np.isfinite(logprob) and logprob <= 0
        assert uncertainty.caption(prediction) == pytest.approx(1 - np.exp(logprob))


def caption_logprobs(logprobs: dict[str, float]):
    """A caption predictor recording each file's mean log-prob as `captioning.caption_images` does."""

    def predictor(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
        return store.record_prediction(
            "caption",
            media_id=media.id,
            input={},
            output=f"a caption of {Path(media.path).name}",
            model=FAKE_MODEL,
            params={"logprob": logprobs[Path(media.path).name]},
        ).id

    return predictor


def test_an_uncertainty_ordered_caption_job_hands_out_the_least_sure_caption_first(store, tmp_path, tiny):
    folder = make_images(tmp_path / "imgs", 5)
    job = make_job(store, folder, task="caption", labels=(), overlap=1)
    job = store.set_job_ordering(job.id, "uncertainty")
    add_accounts(store, {"ann": "annotator"})
    names = [f"img{i:03d}.png" for i in range(5)]
    logprobs = dict(zip(names, (-0.2, -3.1, -0.9, -5.0, -1.5), strict=True))
    order = queue_order(job, "ann", store, caption_logprobs(logprobs), served=lambda task: "v1")
    assert order == ["img003.png", "img001.png", "img004.png", "img002.png", "img000.png"]

    # With the real (tiny) BLIP scoring the batch, the first item handed out is one it is least sure of.
    from mmdemo.tasks import captioning

    def tiny_caption(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
        return captioning.caption_image(media.path, registry=tiny, store=store).prediction_id

    second = make_job(store, folder, task="caption", labels=(), overlap=1, name="second")
    second = store.set_job_ordering(second.id, "uncertainty")
    view = queue.next_item(second.id, "ann", predictor=tiny_caption, store=store, served=lambda task: "t")
    scores = store.item_scores(second.id, "uncertainty")
    assert len(scores) == 5 and all(0 <= s.score <= 1 for s in scores.values())
    assert scores[view.item.id].score == max(s.score for s in scores.values())
    logged = store.prediction(store.job_item(view.item.id).prediction_id).params["logprob"]
    assert logged == min(
        store.prediction(i.prediction_id).params["logprob"] for i in store.job_items(second.id)
    )


# -- batched scoring, flat in job size -------------------------------------------------------------
def test_scoring_a_40_item_job_makes_one_model_call_per_batch_of_16(store, tmp_path):
    folder = make_images(tmp_path / "imgs", 40)
    job = store.set_job_ordering(
        make_job(store, folder, task="caption", labels=(), overlap=1).id, "uncertainty"
    )
    calls: list[int] = []
    single = caption_logprobs({f"img{i:03d}.png": -i / 10 for i in range(40)})

    def batch(job: Job, items, media, store: Store) -> list[int | None]:
        calls.append(len(items))
        return [single(job, item, m, store) for item, m in zip(items, media, strict=True)]

    scored = ordering.refresh_uncertainty(
        job, store, batch_predictor=batch, limit=None, served=lambda t: "v1"
    )
    assert scored == 40 and calls == [16, 16, 8]  # ⌈40/16⌉ calls
    assert ordering.refresh_uncertainty(job, store, batch_predictor=batch, served=lambda t: "v1") == 0
    assert len(calls) == 3  # nothing stale: no model call
    # the queue's own predictor for captions is the batched one
    from mmdemo.tasks import table

    assert table.get("caption").predict_batch is not None and table.get("vqa").predict_batch is not None


def test_retrieval_items_are_scored_with_one_embedder_call_per_batch(store, tmp_path, tiny):
    from mmdemo.services import Services
    from mmdemo.tasks import prefill, table

    folder = make_images(tmp_path / "imgs", 6)
    job = make_job(
        store, folder, task="retrieval", labels=("relevant", "not relevant"), prompts=("a red square",),
        overlap=1,
    )  # fmt: skip
    services = Services.create(tiny, index_root=tmp_path / "index", store=store)
    embedder = services.index.embedder()
    calls: list[int] = []
    encode_images = embedder.encode_images

    def counted(images):
        calls.append(len(images))
        return encode_images(images)

    embedder.encode_images = counted  # the instance's own attribute: the registry's copy is shared
    try:
        items = store.job_items(job.id)
        media = [store.media(item.media_id) for item in items]
        Path(media[2].path).write_bytes(b"not an image any more")
        ids = table.get("retrieval").predict_batch(job, items, media, store, services)
        assert calls == [5]  # one call for the five readable images
        assert ids[2] is None and all(i is not None for n, i in enumerate(ids) if n != 2)
        one = prefill.predict_relevance(job, items[0], media[0], store, services)
    finally:
        del embedder.encode_images
    assert store.prediction(one).output["score"] == pytest.approx(store.prediction(ids[0]).output["score"])
    assert store.prediction(ids[0]).output["label"] in ("relevant", "not relevant")


def _uncertainty_queue_steps(tmp_path, labels: int) -> int:
    """Steps for a newcomer's next, submit and next in an uncertainty-ordered job holding `labels` labels."""
    from tests.test_labeling_scale import ITEMS, StepCounter, big_job

    store = Store(tmp_path / f"unc-{labels}.db")
    job = big_job(store, ITEMS)
    job = store.set_job_ordering(job.id, "uncertainty")
    items = [item.id for item in store.job_items(job.id)]
    store.save_item_scores(job.id, "uncertainty", {item: item % 97 / 97 for item in items}, "v1")
    store.add_labels_bulk(job.id, [(i, f"bulk{u}", "a label") for u in range(labels // ITEMS) for i in items])
    add_accounts(store, {"newcomer": "annotator"})

    calls: list[str] = []

    def prefill_only(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
        calls.append(media.path)  # the pre-fill of the item handed out; every score is current
        return fake_predictor(job, item, media, store)

    counter = StepCounter(store)
    view = queue.next_item(job.id, "newcomer", predictor=prefill_only, store=store, served=lambda t: "v1")
    queue.submit(job.id, view.item.id, "newcomer", "mine", store=store)
    after = queue.next_item(job.id, "newcomer", predictor=prefill_only, store=store, served=lambda t: "v1")
    assert after.progress.done_by_you == 1 and len(calls) == 2  # no item was scored again
    return counter.steps


def test_an_uncertainty_ordered_next_item_costs_the_same_at_1k_and_19k_labels(tmp_path):
    small, large = _uncertainty_queue_steps(tmp_path, 1_000), _uncertainty_queue_steps(tmp_path, 19_000)
    assert large <= 1.5 * small + 20, f"{small} vs {large} hundred steps: cost grows with the labels"


# -- changing a job's order from the Admin section -------------------------------------------------------
def test_an_admin_changes_a_jobs_order_from_the_admin_section(monkeypatch, store, tmp_path):
    from gradio_client import Client

    from tests.labeling_helpers import PASSWORD
    from tests.test_accounts import served_app

    add_accounts(store, {"boss": "admin", "ann": "annotator"}, password=PASSWORD)
    job = make_job(store, make_images(tmp_path / "imgs", 4), task="caption", overlap=1, admin="boss")
    assert job.ordering == "position"
    with served_app(monkeypatch, with_auth=True) as url:
        admin = Client(url, auth=("boss", PASSWORD), verbose=False)
        annotator = Client(url, auth=("ann", PASSWORD), verbose=False)
        with pytest.raises(Exception, match="needs the admin role"):
            annotator.predict(str(job.id), "random", api_name="/labeling_set_order")
        assert store.job(job.id).ordering == "position"
        message = admin.predict(str(job.id), "random", api_name="/labeling_set_order")
        assert f"Job #{job.id}" in message and "random order" in message
        assert store.job(job.id).ordering == "random" and len(store.item_scores(job.id, "random")) == 4
        with pytest.raises(Exception, match=r"is not a job number|no job"):
            admin.predict("abc", "random", api_name="/labeling_set_order")
        with pytest.raises(Exception, match="not in the list of choices"):  # gradio's own check
            admin.predict(str(job.id), "alphabetical", api_name="/labeling_set_order")
        assert store.job(job.id).ordering == "random"
