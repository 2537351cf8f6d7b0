"""`mmdemo users ...`, `mmdemo jobs ...` and `mmdemo export`: accounts, labeling jobs, labeled data out.

The labeling functions take `user=None` for the operator at the command line (who holds the database file
anyway): no role check, and the job is recorded as made by "cli", the same name as `CLI_USER`."""

from __future__ import annotations

from typing import Annotated

import typer

from mmdemo.cli.common import UserError, chatter_to_stderr, choice_argument, choice_option, print_table
from mmdemo.tasks.table import TASK_NAMES

# The same as accounts.ROLES and export.FORMATS (a test keeps them so), spelled out here so that
# `mmdemo --help` imports no data layer. The task table is cheap to import.
ROLES = ("annotator", "reviewer", "admin")
FORMATS = ("jsonl", "parquet", "hf")
ORDERS = ("random", "uncertainty", "diverse")  # labeling.ordering.ORDERS

Role = Annotated[str, choice_option(ROLES)]
Task = Annotated[str, choice_option(TASK_NAMES)]

users_app = typer.Typer(
    name="users", help="local accounts and their roles (annotator, reviewer, admin)", no_args_is_help=True
)
jobs_app = typer.Typer(name="jobs", help="labeling jobs", no_args_is_help=True)


@users_app.command("add")
def add_user(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Role,
    password: Annotated[
        str | None, typer.Option(help="asked for when left out (better: stays out of shell history)")
    ] = None,
    oauth: Annotated[bool, typer.Option("--oauth", help="no password: signs in with Hugging Face")] = False,
) -> None:
    """Create an account, or replace its role and password."""
    import getpass

    from mmdemo import accounts

    if password is None and not oauth:
        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("again: "):
            raise UserError("the two passwords differ")
    account = accounts.add_user(name, role, password, oauth=oauth)
    print(f"{account.name}: {account.role} ({account.source})")


@users_app.command("list")
def list_users() -> None:
    """List accounts."""
    from mmdemo import accounts

    rows = [(u.name, u.role, u.source, u.created_at) for u in accounts.list_users()]
    print_table(("name", "role", "sign-in", "created"), rows, empty="no accounts yet")


@users_app.command("set-role")
def set_role(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[str, choice_argument(ROLES, "ROLE")],
) -> None:
    """Change an account's role."""
    from mmdemo import accounts

    account = accounts.set_role(name, role)
    print(f"{account.name}: {account.role}")


@jobs_app.command("create")
def create_job(
    name: Annotated[str, typer.Option(help="the job's name")],
    task: Task,
    folder: Annotated[
        str | None, typer.Option(help="items: the images (or videos for --task video) in a folder")
    ] = None,
    query: Annotated[
        str | None, typer.Option(help="items: the top results of this text query (retrieval: its prompt)")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="with --query: how many results")] = 20,
    index: Annotated[
        str | None,
        typer.Option(
            help="items: every image of this index; with --query: the index searched (default: default)"
        ),
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="comma-separated label set (video; retrieval: relevant,not relevant)")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option(help="comma-separated questions (vqa) or queries (retrieval)")
    ] = None,
    overlap: Annotated[int, typer.Option(help="annotators per item")] = 1,
    order: Annotated[
        str | None,
        choice_option(
            ORDERS, "--order", help_text="queue order (default: uncertainty where a model scores the task)"
        ),
    ] = None,
    retrain_every: Annotated[
        int, typer.Option(help="start a fine-tuning run after every N newly settled labels (0: never)")
    ] = 0,
) -> None:
    """Create a labeling job over a folder, an index, or a query's results."""
    from mmdemo.labeling import jobs as labeling
    from mmdemo.services import default_services

    services = default_services()
    with chatter_to_stderr():  # a query (or the diverse order) loads the embedder
        items = labeling.items_from(
            None, task, folder=folder, index_name=index, query=query, k=k, indexes=services.index
        )
        job = labeling.create_job_from(
            None,
            name,
            task,
            items,
            labels=labels or (),
            prompts=prompts or (),
            overlap=overlap,
            ordering=order,
            registry=services.registry,
        )
    from mmdemo.labeling import autoretrain

    if retrain_every:
        job = autoretrain.set_auto_retrain(None, job.id, retrain_every, profile=services.registry.profile)
    print(
        f"job #{job.id} {job.name!r}: {labeling.item_count(job)} items, overlap {job.overlap}, "
        f"order {job.ordering}" + (f", {autoretrain.describe(job)}" if job.retrain_every else "")
    )


@jobs_app.command("retrain")
def retrain_job(
    job: Annotated[int, typer.Argument(metavar="JOB", help="the job's id (`mmdemo jobs list`)")],
    every: Annotated[int, typer.Argument(metavar="N", help="settled labels between runs; 0 turns it off")],
) -> None:
    """Auto-retrain: start a fine-tuning run of the job's task after every N newly settled labels."""
    from mmdemo.labeling import autoretrain
    from mmdemo.services import default_services

    changed = autoretrain.set_auto_retrain(None, job, every, profile=default_services().registry.profile)
    print(f"job #{changed.id} {changed.name!r}: {autoretrain.describe(changed)}")


@jobs_app.command("order")
def order_job(
    job: Annotated[int, typer.Argument(metavar="JOB")],
    ordering: Annotated[str, choice_argument(ORDERS, "ORDER")],
) -> None:
    """Change the order a job's queue hands out items."""
    from mmdemo.labeling import jobs as labeling
    from mmdemo.services import default_services

    with chatter_to_stderr():  # the diverse order loads the embedder
        changed = labeling.set_order(None, job, ordering, registry=default_services().registry)
    print(f"job #{changed.id} {changed.name!r}: order {changed.ordering}")


@jobs_app.command("list")
def list_jobs() -> None:
    """List jobs."""
    from mmdemo.data import default_store
    from mmdemo.labeling.jobs import visible_text

    store = default_store()
    rows = [
        (
            j.id,
            visible_text(j.name),
            j.task,
            len(store.job_items(j.id)),
            j.overlap,
            j.ordering,
            f"every {j.retrain_every}" if j.retrain_every else "-",
            visible_text(by),
        )
        for j in store.jobs()
        for by in [j.created_by]
    ]
    header = ("id", "name", "task", "items", "overlap", "order", "retrain", "by")
    print_table(header, rows, empty="no jobs yet")


@jobs_app.command("prelabel")
def prelabel_job(
    job: Annotated[int, typer.Argument(metavar="JOB", help="the job's id (`mmdemo jobs list`)")],
    engine: Annotated[
        str, choice_option(("local", "ray"), help_text="ray: predict on a Ray cluster (a local one if none)")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="with --engine ray: the cluster to join (default: RAY_ADDRESS)")
    ] = None,
    workers: Annotated[int, typer.Option(help="with --engine ray: predictor actors")] = 2,
) -> None:
    """Record the model's pre-fill for every item of a job that has none, so annotators never wait."""
    from mmdemo.labeling.prelabel import prelabel
    from mmdemo.services import default_services

    if workers < 1:
        raise UserError("--workers must be at least 1")
    with chatter_to_stderr():
        report = prelabel(
            job, default_services(), engine=engine, ray_address=ray_address, workers=workers, show_bar=True
        )
    print(report.summary())


def export(
    task: Task,
    out: Annotated[str, typer.Option(help="output folder (train and validation files)")],
    format_: Annotated[str, choice_option(FORMATS, "--format")] = "jsonl",
    include_anonymous: Annotated[
        bool, typer.Option("--include-anonymous", help="keep labels by anonymous visitors")
    ] = False,
    include_unreviewed: Annotated[
        bool, typer.Option("--include-unreviewed", help="also the majority label of undecided items")
    ] = False,
    validation: Annotated[float, typer.Option(help="share of items for validation")] = 0.2,
    push_to_hub: Annotated[
        str | None, typer.Option(metavar="REPO", help="also push to this Hub dataset (needs HF_TOKEN)")
    ] = None,
) -> None:
    """Write reviewed or agreed labels as a training dataset."""
    from mmdemo.labeling import export as exporting

    result = exporting.export(
        task,
        format_,
        out,
        include_anonymous=include_anonymous,
        include_unreviewed=include_unreviewed,
        validation_fraction=validation,
        push_to_hub=push_to_hub,
    )
    counts = ", ".join(f"{split} {count}" for split, count in result.rows.items())
    print(f"wrote {result.format} to {result.out}: {counts}")
    if result.pushed_to:
        print(f"pushed to https://huggingface.co/datasets/{result.pushed_to}")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app)
    app.add_typer(jobs_app)
    app.command()(export)
