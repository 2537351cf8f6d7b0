"""`mmdemo finetune caption|vqa|video|retrieval`, `mmdemo versions`, `mmdemo rollback`: model versions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import typer

from mmdemo.cli.common import CLI_USER, chatter_to_stderr, choice_option, print_json, print_table
from mmdemo.finetune.fusion import CHOICES as FUSION_CHOICES

finetune_app = typer.Typer(
    name="finetune", help="train a new model version from the stored labels", no_args_is_help=True
)

# The options every run shares (the run harness's `RunConfig`, read by `_train` from the parsed
# `ctx.params`); each kind declares them with its own defaults.
Steps = Annotated[int, typer.Option(help="training steps")]
BatchSize = Annotated[int, typer.Option(help="examples per step")]
LearningRate = Annotated[float, typer.Option(help="AdamW learning rate")]
Seed = Annotated[int, typer.Option(help="random seed (Python, NumPy, torch)")]
ValidationFraction = Annotated[float, typer.Option(help="share of the data held out for validation")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print the new version as JSON")]
Patience = Annotated[int, typer.Option(help="validation checks without gain before stopping")]
# Which labels a run reads (`finetune.data.LabelSelection`), the same rules as `mmdemo export`.
Jobs = Annotated[
    list[int] | None,
    typer.Option(
        "--job", metavar="ID", help="only these labeling jobs' labels (repeatable; default: every job)"
    ),
]
IncludeUnreviewed = Annotated[
    bool, typer.Option("--include-unreviewed", help="also the majority label of undecided job items")
]
IncludeAnonymous = Annotated[
    bool, typer.Option("--include-anonymous", help="keep labels by anonymous visitors")
]


AcceptBlip = Annotated[
    bool, typer.Option("--accept-always", help="serve the result even if validation loss got worse")
]
AcceptHead = Annotated[
    bool, typer.Option("--accept-always", help="serve the head even if it does not beat zero-shot")
]
AcceptAdapter = Annotated[
    bool, typer.Option("--accept-always", help="serve the adapter even if recall@5 did not improve")
]


def _train(
    ctx: typer.Context, kind: str, run: Callable[..., Any], options: dict[str, Any], **extra: Any
) -> None:
    """Run `run(config, registry=..., store=..., user=CLI_USER)` with the shared run options the command
    parsed (`ctx.params`) and print the version it made."""
    from mmdemo.data import store
    from mmdemo.finetune.runs import RunConfig
    from mmdemo.serving import registry

    given = ctx.params
    config = RunConfig(
        task=kind,
        steps=given["steps"],
        batch_size=given["batch_size"],
        learning_rate=given["learning_rate"],
        seed=given["seed"],
        validation_fraction=given["validation_fraction"],
        accept="always" if given["accept_always"] else "if_better",
        job_ids=list(given["job"]) if given.get("job") else None,
        include_unreviewed=given["include_unreviewed"],
        include_anonymous=given["include_anonymous"],
        options=options,
    )
    with chatter_to_stderr():
        outcome = run(
            config, registry=registry.default_registry(), store=store.default_store(), user=CLI_USER, **extra
        )
    if given["as_json"]:
        print_json(asdict(outcome.version))
    else:
        print(outcome.report)
        print(f"saved in {outcome.version.path}")


def _blip_command(kind: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        steps: Steps = 200,
        batch_size: BatchSize = 8,
        learning_rate: LearningRate = 1e-4,
        seed: Seed = 0,
        validation_fraction: ValidationFraction = 0.2,
        accept_always: AcceptBlip = False,
        as_json: JsonFlag = False,
        job: Jobs = None,
        include_unreviewed: IncludeUnreviewed = False,
        include_anonymous: IncludeAnonymous = False,
        lora_rank: Annotated[int, typer.Option(help="LoRA rank (alpha is twice it)")] = 8,
    ) -> None:
        from mmdemo.finetune import blip_lora

        _train(ctx, kind, blip_lora.finetune, {"rank": lora_rank, "alpha": 2 * lora_rank})

    command.__doc__ = f"LoRA fine-tuning of BLIP {kind} (GPU; tiny on CPU)."
    return command


def finetune_retrieval(
    ctx: typer.Context,
    steps: Steps = 300,
    batch_size: BatchSize = 16,
    learning_rate: LearningRate = 1e-3,
    seed: Seed = 0,
    validation_fraction: ValidationFraction = 0.2,
    accept_always: AcceptAdapter = False,
    as_json: JsonFlag = False,
    job: Jobs = None,
    include_unreviewed: IncludeUnreviewed = False,
    include_anonymous: IncludeAnonymous = False,
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature")] = 0.05,
    patience: Patience = 5,
) -> None:
    """Train an adapter of the embedder on relevance judgements and retrieval jobs' labels (contrastive)."""
    from mmdemo.finetune import retrieval_adapter

    _train(ctx, "retrieval", retrieval_adapter.finetune, {"temperature": temperature, "patience": patience})


def finetune_video(
    ctx: typer.Context,
    steps: Steps = 300,
    batch_size: BatchSize = 16,
    learning_rate: LearningRate = 1e-2,
    seed: Seed = 0,
    validation_fraction: ValidationFraction = 0.2,
    accept_always: AcceptHead = False,
    as_json: JsonFlag = False,
    job: Jobs = None,
    include_unreviewed: IncludeUnreviewed = False,
    include_anonymous: IncludeAnonymous = False,
    frames: Annotated[int, typer.Option(help="frames sampled per clip")] = 8,
    patience: Annotated[int, typer.Option(help="epochs without a better loss before stopping")] = 10,
    fusion: Annotated[
        str,
        choice_option(
            FUSION_CHOICES,
            help_text="how frames and sound are combined; all: train each side by side, keep the best",
        ),
    ] = "weighted",
) -> None:
    """A fusion head (frames + sound) on frozen features, from the stored video labels."""
    from mmdemo.finetune import video_head

    options: dict[str, Any] = {"frames": frames, "patience": patience}
    if fusion != "weighted":  # the default leaves the saved options as they were before strategies
        options["fusion"] = fusion
    _train(ctx, "video", video_head.finetune, options)


def versions(
    task: Annotated[str | None, typer.Option(help="only this task")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List fine-tuned model versions and which are served."""
    from mmdemo.serving import registry, reporting

    active = registry.default_registry()
    found = active.versions(task)
    if as_json:
        print_json([asdict(v) for v in found])
    else:
        print_table(reporting.VERSION_COLUMNS, reporting.version_rows(active, found))


def rollback(
    task: Annotated[str, typer.Argument(metavar="TASK")],
    to: Annotated[
        str | None, typer.Option(metavar="VERSION", help='serve this version again ("base": the base model)')
    ] = None,
) -> None:
    """Stop serving a task's newest fine-tuned version."""
    from mmdemo.serving import registry

    serving = registry.default_registry().rollback(task, to, user=CLI_USER)
    print(f"{task}: now serving {serving}")


def register(app: typer.Typer) -> None:
    for kind in ("caption", "vqa"):
        finetune_app.command(kind)(_blip_command(kind))
    finetune_app.command("retrieval")(finetune_retrieval)
    finetune_app.command("video")(finetune_video)
    app.add_typer(finetune_app)
    app.command()(versions)
    app.command()(rollback)
