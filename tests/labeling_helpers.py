"""Shared set-up for the labeling tests: accounts, small distinct images, and a job."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from mmdemo import accounts
from mmdemo.data import Job, JobItem, MediaItem, Store
from mmdemo.labeling import jobs
from mmdemo.serving.models.base import ModelInfo

PASSWORD = "correct-horse-42"
FAKE_MODEL = ModelInfo(name="fake captioner", version="v1", profile="tiny", source="test")


def fake_predictor(job: Job, item: JobItem, media: MediaItem, store: Store) -> int:
    """Stands in for the models: "prediction for FILE", recorded as a prediction of the job's task."""
    output = f"prediction for {Path(media.path).name}"
    return store.record_prediction(job.task, media_id=media.id, input={}, output=output, model=FAKE_MODEL).id


def make_images(folder: Path, count: int) -> Path:
    """`count` small images with different content (the store keys media by content hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        color = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
        Image.new("RGB", (24, 24), color).save(folder / f"img{i:03d}.png")
    return folder


def add_accounts(store: Store, roles: dict[str, str], *, password: str | None = None) -> None:
    """Accounts by name -> role; with a password they can sign in to the web app."""
    for name, role in roles.items():
        accounts.add_user(name, role, password, oauth=password is None, store=store)


def make_job(
    store: Store,
    folder: Path,
    *,
    task: str = "caption",
    overlap: int = 2,
    labels: tuple[str, ...] = (),
    prompts: tuple[str, ...] = (),
    name: str = "job",
    admin: str = "root",
) -> Job:
    if store.user(admin) is None:
        add_accounts(store, {admin: "admin"})
    files = jobs.folder_files(folder, task)
    return jobs.create_job(
        admin, name, task, files, labels=labels, prompts=prompts, overlap=overlap, store=store
    )
