"""The `mmdemo` command. Subcommands are plain functions over the registry, the store and the index."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from mmdemo import __version__, config

EXIT_USAGE = 2
CLI_USER = "cli"  # who is recorded as asking, for predictions made from the command line


class CliError(Exception):
    """A problem with what the user asked for: one line on stderr and exit code 2."""


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def cmd_models(args: argparse.Namespace) -> int:
    from mmdemo.serving import registry, reporting

    statuses = registry.default_registry().status()
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        print(f"profile: {registry.default_registry().profile}  device: {registry.default_registry().device}")
        print(format_table(reporting.STATUS_COLUMNS, reporting.status_rows(statuses)))
    return 0


# -- retrieval: `mmdemo index ...` and `mmdemo search` --------------------------------------------------
def _print_ingest(report: Any) -> None:
    for _, why in report.failed:
        print(f"mmdemo: skipped {why}", file=sys.stderr)
    print(report.summary())


def cmd_index_add(args: argparse.Namespace) -> int:
    from mmdemo.services import default_services

    report = default_services().index.ingest(
        args.paths, args.index, index_type=args.index_type, batch_size=args.batch_size, show_bar=True
    )
    _print_ingest(report)
    return 0


def cmd_index_rebuild(args: argparse.Namespace) -> int:
    from mmdemo.services import default_services

    _print_ingest(default_services().index.rebuild(args.index, show_bar=True))
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    from mmdemo.search import index

    root = config.index_dir()
    names = [args.index] if args.index else index.list_indexes(root)
    if not names:
        print(f"no indexes in {root} yet; `mmdemo index add PATH` or `mmdemo search` builds one")
        return 0
    manifests = [asdict(index.read_manifest(name, root)) for name in names]
    if args.json:
        print(json.dumps(manifests, indent=2))
        return 0
    for manifest in manifests:
        print(f"{root / manifest['name']}")
        print(format_table(["field", "value"], [[key, value] for key, value in manifest.items()]))
    return 0


def cmd_index_rm(args: argparse.Namespace) -> int:
    from mmdemo.search import index
    from mmdemo.services import default_services

    if args.all:
        index.remove_index(args.index, config.index_dir())
        print(f"removed index {args.index!r}")
        return 0
    if not args.paths:
        raise CliError("name the images (or folders) to remove, or --all to remove the whole index")
    removed, absent = default_services().index.remove(args.paths, args.index)
    for path in absent:
        print(f"mmdemo: not in the index: {path}", file=sys.stderr)
    print(f"removed {removed} item(s) from index {args.index!r}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from mmdemo.services import default_services

    if args.k < 1:
        raise CliError("-k must be at least 1")
    found = default_services().index.search(text=args.text, image=args.image, k=args.k, name=args.index)
    rows = [{"path": r.path, "score": round(r.score, 4), "rank": r.rank} for r in found.results]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        table = [[r["rank"], f"{r['score']:.4f}", r["path"]] for r in rows]
        print(format_table(["rank", "score", "path"], table))
    return 0


def _registry() -> Any:
    from mmdemo.services import default_services

    return default_services().registry


def cmd_caption(args: argparse.Namespace) -> int:
    from mmdemo.tasks import captioning

    options, notes = captioning.caption_options(
        strategy=args.strategy,
        num_beams=args.beams,
        max_length=args.max_length,
        prefix=args.prefix,
        seed=args.seed,
    )
    with contextlib.redirect_stdout(sys.stderr):  # keep model-loading chatter out of the output
        results, _ = captioning.caption_images(args.images, options, user=CLI_USER, registry=_registry())
    for note in [*notes, *(note for result in results for note in result.notes)]:
        print(f"mmdemo: note: {note}", file=sys.stderr)
    if args.json:
        rows = [
            {"path": path, "caption": r.caption, "model": r.model.name}
            for path, r in zip(args.images, results, strict=True)
        ]
        print(json.dumps(rows, indent=2))
    else:
        for path, result in zip(args.images, results, strict=True):
            print(f"{path}\t{result.caption}")
        print(f"model: {results[0].model_label}", file=sys.stderr)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from mmdemo.tasks import vqa

    with contextlib.redirect_stdout(sys.stderr):  # keep model-loading chatter out of the output
        result = vqa.ask(args.image, args.question, user=CLI_USER, top_k=args.top_k, registry=_registry())
    for note in result.notes:
        print(f"mmdemo: note: {note}", file=sys.stderr)
    if args.json:
        top = [{"answer": answer, "score": round(score, 4)} for answer, score in result.top]
        print(json.dumps({"answer": result.answer, "model": result.model.name, "top": top}, indent=2))
    else:
        print(result.answer)
        print(f"model: {result.model_label}", file=sys.stderr)
    return 0


def cmd_classify_video(args: argparse.Namespace) -> int:
    from mmdemo.tasks.fusion import DEFAULT_WEIGHTS
    from mmdemo.tasks.video_classify import DEFAULT_FRAMES, classify_video

    weights = {
        "visual": DEFAULT_WEIGHTS["visual"] if args.visual_weight is None else args.visual_weight,
        "audio": DEFAULT_WEIGHTS["audio"] if args.audio_weight is None else args.audio_weight,
    }
    frames = DEFAULT_FRAMES if args.frames is None else args.frames
    with contextlib.redirect_stdout(sys.stderr):  # model libraries print while loading; stdout is ours
        result = classify_video(
            args.video, args.labels.split(","), weights, n_frames=frames, user=args.user, registry=_registry()
        )
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
        return 0
    for name in ("fused", "visual", "audio"):
        ranking = result.top(name, args.top)
        print(f"{name}:" + ("" if ranking else " (not scored)"))
        for label, score in ranking:
            print(f"  {score:7.2%}  {label}")
    for note in result.notes:
        print(f"note: {note}")
    if result.model is not None:
        print(f"made by: {result.model.name} (version {result.model.version})")
    print(f"prediction #{result.prediction_id} (frames at {', '.join(f'{t:g}s' for t in result.timestamps)})")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from mmdemo import accounts
    from mmdemo.data.store import StoreError

    if args.users_command == "add":
        password = args.password
        if password is None and not args.oauth:
            password = getpass.getpass(f"password for {args.name}: ")
            if password != getpass.getpass("again: "):
                raise CliError("the two passwords differ")
        try:
            account = accounts.add_user(args.name, args.role, password, oauth=args.oauth)
        except ValueError as error:
            raise CliError(str(error)) from None
        print(f"{account.name}: {account.role} ({account.source})")
    elif args.users_command == "set-role":
        try:
            account = accounts.set_role(args.name, args.role)
        except (ValueError, StoreError) as error:
            raise CliError(str(error)) from None
        print(f"{account.name}: {account.role}")
    else:
        rows = [(u.name, u.role, u.source, u.created_at) for u in accounts.list_users()]
        print(format_table(("name", "role", "sign-in", "created"), rows) if rows else "no accounts yet")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from mmdemo import labeling
    from mmdemo.data.store import StoreError, default_store

    if args.jobs_command == "create":
        try:
            with contextlib.redirect_stdout(sys.stderr):  # a search loads the embedder: keep its chatter out
                items = labeling.items_from(
                    None, args.task, folder=args.folder, index_name=args.index, query=args.query, k=args.k
                )
            job = labeling.create_job_from(
                None,
                args.name,
                args.task,
                items,
                labels=args.labels or (),
                prompts=args.prompts or (),
                overlap=args.overlap,
            )
        except (ValueError, StoreError) as error:
            raise CliError(str(error)) from None
        print(f"job #{job.id} {job.name!r}: {labeling.item_count(job)} items, overlap {job.overlap}")
    else:
        store = default_store()
        rows = [
            (j.id, j.name, j.task, len(store.job_items(j.id)), j.overlap, j.created_by) for j in store.jobs()
        ]
        print(format_table(("id", "name", "task", "items", "overlap", "by"), rows) if rows else "no jobs yet")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mmdemo import export

    try:
        result = export.export(
            args.task,
            args.format,
            args.out,
            include_anonymous=args.include_anonymous,
            include_unreviewed=args.include_unreviewed,
            validation_fraction=args.validation,
            push_to_hub=args.push_to_hub,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    counts = ", ".join(f"{split} {count}" for split, count in result.rows.items())
    print(f"wrote {result.format} to {result.out}: {counts}")
    if result.pushed_to:
        print(f"pushed to https://huggingface.co/datasets/{result.pushed_to}")
    return 0


def _cli_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _run_config(args: argparse.Namespace, task: str, options: dict[str, Any]) -> Any:
    from mmdemo.finetune.runs import RunConfig

    return RunConfig(
        task=task,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        accept="always" if args.accept_always else "if_better",
        options=options,
    )


def _print_run(outcome: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(asdict(outcome.version), indent=2))
    else:
        print(outcome.report)
        print(f"saved in {outcome.version.path}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from mmdemo.data import store
    from mmdemo.finetune import blip_lora
    from mmdemo.serving import registry

    run_config = _run_config(args, args.kind, {"rank": args.lora_rank, "alpha": 2 * args.lora_rank})
    outcome = blip_lora.finetune(
        run_config, registry=registry.default_registry(), store=store.default_store(), user=_cli_user()
    )
    return _print_run(outcome, args.json)


def cmd_finetune_retrieval(args: argparse.Namespace) -> int:
    from mmdemo.data import store
    from mmdemo.finetune import retrieval_adapter
    from mmdemo.serving import registry

    run_config = _run_config(args, "retrieval", {"temperature": args.temperature, "patience": args.patience})
    try:
        outcome = retrieval_adapter.finetune(
            run_config, registry=registry.default_registry(), store=store.default_store(), user=_cli_user()
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    return _print_run(outcome, args.json)


def cmd_versions(args: argparse.Namespace) -> int:
    from mmdemo.serving import registry, reporting

    active = registry.default_registry()
    versions = active.versions(args.task)
    if args.json:
        print(json.dumps([asdict(v) for v in versions], indent=2))
    else:
        print(format_table(reporting.VERSION_COLUMNS, reporting.version_rows(active, versions)))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from mmdemo.data.store import StoreError
    from mmdemo.serving import registry

    try:
        serving = registry.default_registry().rollback(args.task, args.to, user=_cli_user())
    except StoreError as error:
        raise CliError(str(error)) from error
    print(f"{args.task}: now serving {serving}")
    return 0


def cmd_finetune_video(args: argparse.Namespace) -> int:
    from mmdemo.data import store
    from mmdemo.finetune import video_head
    from mmdemo.serving import registry

    run_config = _run_config(args, "video", {"frames": args.frames, "patience": args.patience})
    try:
        with contextlib.redirect_stdout(sys.stderr):  # model libraries print while loading; stdout is ours
            outcome = video_head.finetune(
                run_config,
                registry=registry.default_registry(),
                store=store.default_store(),
                job_id=args.job,
                user=_cli_user(),
            )
    except ValueError as error:  # no labels, one class, an unknown job, bad settings
        raise CliError(str(error)) from None
    return _print_run(outcome, args.json)


def cmd_serve(args: argparse.Namespace) -> int:
    from mmdemo.ui.app import launch

    launch(host=args.host, port=args.port, share=args.share)
    return 0


def _add_run_arguments(
    run: argparse.ArgumentParser, steps: int, batch_size: int, learning_rate: float, accept_help: str
) -> None:
    """The options every `mmdemo finetune KIND` shares (the run harness's `RunConfig`)."""
    run.add_argument("--steps", type=int, default=steps)
    run.add_argument("--batch-size", type=int, default=batch_size)
    run.add_argument("--learning-rate", type=float, default=learning_rate)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--validation-fraction", type=float, default=0.2)
    run.add_argument("--accept-always", action="store_true", help=accept_help)
    run.add_argument("--json", action="store_true", help="print the new version as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmdemo", description="Multimodal demo and annotation studio.")
    parser.add_argument("--version", action="version", version=f"mmdemo {__version__}")
    parser.add_argument(
        "--profile", choices=config.PROFILES, help="model profile (default: $MMDEMO_PROFILE or auto)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser(
        "models", help="list the models of the active profile and whether they are loaded"
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(handler=cmd_models)

    index_parser = commands.add_parser("index", help="build and manage vector indexes of images")
    index_commands = index_parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    index_add = index_commands.add_parser("add", help="embed the images under files/folders into an index")
    index_add.add_argument("paths", nargs="+", metavar="PATH")
    index_add.add_argument("--index", default="default", help="index name (default: default)")
    index_add.add_argument(
        "--index-type", default="auto", choices=["auto", "flat", "hnsw", "ivf"], help="for a new index"
    )
    index_add.add_argument("--batch-size", type=int, default=16)
    index_add.set_defaults(handler=cmd_index_add)
    index_info = index_commands.add_parser("info", help="print the manifest and counts of indexes")
    index_info.add_argument("--index", help="one index (default: all)")
    index_info.add_argument("--json", action="store_true")
    index_info.set_defaults(handler=cmd_index_info)
    index_rm = index_commands.add_parser("rm", help="remove images (by content) or a whole index")
    index_rm.add_argument("paths", nargs="*", metavar="PATH")
    index_rm.add_argument("--index", default="default")
    index_rm.add_argument("--all", action="store_true", help="delete the whole index")
    index_rm.set_defaults(handler=cmd_index_rm)
    index_rebuild = index_commands.add_parser("rebuild", help="re-embed an index with the active embedder")
    index_rebuild.add_argument("--index", default="default")
    index_rebuild.set_defaults(handler=cmd_index_rebuild)
    search = commands.add_parser("search", help="search an index by text or by image")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="what to look for")
    query.add_argument("--image", help="an image file to find similar images to")
    search.add_argument("--index", default="default")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--json", action="store_true", help='print [{"path", "score", "rank"}, ...]')
    search.set_defaults(handler=cmd_search)

    caption = commands.add_parser("caption", help="caption images: one line per image")
    caption.add_argument("images", nargs="+", metavar="IMAGE")
    caption.add_argument("--json", action="store_true", help='print [{"path", "caption", "model"}]')
    caption.add_argument("--strategy", choices=("beam", "sample"), default="beam", help="decoding")
    caption.add_argument("--beams", type=int, default=3, help="beams for beam search")
    caption.add_argument("--max-length", type=int, default=30, help="most new tokens in a caption")
    caption.add_argument("--prefix", default="", help="text the caption starts with (conditional)")
    caption.add_argument("--seed", type=int, default=0, help="random seed for sampling")
    caption.set_defaults(handler=cmd_caption)

    ask = commands.add_parser("ask", help="answer a question about an image")
    ask.add_argument("image", metavar="IMAGE")
    ask.add_argument("question", metavar="QUESTION")
    ask.add_argument("--json", action="store_true", help='print {"answer", "model", "top": [...]}')
    ask.add_argument("--top-k", type=int, default=5, help="how many ranked answers to give")
    ask.set_defaults(handler=cmd_ask)

    classify = commands.add_parser(
        "classify-video", help="classify a video clip from its frames and sound against your labels"
    )
    classify.add_argument("video", help="a video (or audio) file")
    classify.add_argument("--labels", required=True, help="comma-separated labels, e.g. cat,dog,rocket")
    classify.add_argument("--frames", type=int, help="frames sampled over the clip (default 8)")
    classify.add_argument("--visual-weight", type=float, help="fusion weight of the frames (default 0.5)")
    classify.add_argument("--audio-weight", type=float, help="fusion weight of the sound (default 0.5)")
    classify.add_argument("--top", type=int, default=5, help="labels shown per ranking (default 5)")
    classify.add_argument("--user", default=None, help="who asked (stored with the prediction)")
    classify.add_argument("--json", action="store_true", help="print JSON: fused, visual and audio scores")
    classify.set_defaults(handler=cmd_classify_video)

    users = commands.add_parser("users", help="local accounts and their roles (annotator, reviewer, admin)")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    users_add = users_commands.add_parser("add", help="create an account, or replace its role and password")
    users_add.add_argument("name")
    users_add.add_argument("--role", required=True, choices=("annotator", "reviewer", "admin"))
    users_add.add_argument("--password", help="asked for when left out (better: stays out of shell history)")
    users_add.add_argument("--oauth", action="store_true", help="no password: signs in with Hugging Face")
    users_commands.add_parser("list", help="list accounts")
    users_role = users_commands.add_parser("set-role", help="change an account's role")
    users_role.add_argument("name")
    users_role.add_argument("role", choices=("annotator", "reviewer", "admin"))
    users.set_defaults(handler=cmd_users)

    jobs = commands.add_parser("jobs", help="labeling jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    jobs_create = jobs_commands.add_parser(
        "create", help="create a labeling job over a folder, an index, or a query's results"
    )
    jobs_create.add_argument("--name", required=True)
    jobs_create.add_argument("--task", required=True, choices=("caption", "vqa", "video", "retrieval"))
    jobs_create.add_argument("--folder", help="items: the images (or videos for --task video) in a folder")
    jobs_create.add_argument(
        "--query", help="items: the top results of this text query (retrieval: its prompt)"
    )
    jobs_create.add_argument("--k", type=int, default=20, help="with --query: how many results (default 20)")
    jobs_create.add_argument(
        "--index",
        help="items: every image of this index; with --query: the index searched (default: default)",
    )
    jobs_create.add_argument(
        "--labels", help="comma-separated label set (video; retrieval: relevant,not relevant)"
    )
    jobs_create.add_argument("--prompts", help="comma-separated questions (vqa) or queries (retrieval)")
    jobs_create.add_argument("--overlap", type=int, default=1, help="annotators per item (default 1)")
    jobs_commands.add_parser("list", help="list jobs")
    jobs.set_defaults(handler=cmd_jobs)

    export = commands.add_parser("export", help="write reviewed or agreed labels as a training dataset")
    export.add_argument("--task", required=True, choices=("caption", "vqa", "video", "retrieval"))
    export.add_argument("--format", default="jsonl", choices=("jsonl", "parquet", "hf"))
    export.add_argument("--out", required=True, help="output folder (train and validation files)")
    export.add_argument("--include-anonymous", action="store_true", help="keep labels by anonymous visitors")
    export.add_argument(
        "--include-unreviewed", action="store_true", help="also the majority label of undecided items"
    )
    export.add_argument("--validation", type=float, default=0.2, help="share of items for validation")
    export.add_argument(
        "--push-to-hub", metavar="REPO", help="also push to this Hub dataset (needs HF_TOKEN)"
    )
    export.set_defaults(handler=cmd_export)

    finetune = commands.add_parser("finetune", help="train a new model version from the stored corrections")
    finetune_kinds = finetune.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in ("caption", "vqa"):
        text_run = finetune_kinds.add_parser(kind, help=f"LoRA fine-tuning of BLIP {kind} (GPU; tiny on CPU)")
        _add_run_arguments(text_run, 200, 8, 1e-4, "serve the result even if validation loss got worse")
        text_run.add_argument("--lora-rank", type=int, default=8)
        text_run.set_defaults(handler=cmd_finetune)
    retrieval_run = finetune_kinds.add_parser(
        "retrieval", help="train an adapter of the embedder on the relevance judgements (contrastive)"
    )
    _add_run_arguments(retrieval_run, 300, 16, 1e-3, "serve the adapter even if recall@5 did not improve")
    retrieval_run.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature")
    retrieval_run.add_argument("--patience", type=int, default=5, help="validation checks without gain")
    retrieval_run.set_defaults(handler=cmd_finetune_retrieval)
    versions = commands.add_parser("versions", help="list fine-tuned model versions and which are served")
    versions.add_argument("--task", help="only this task")
    versions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    versions.set_defaults(handler=cmd_versions)
    rollback = commands.add_parser("rollback", help="stop serving a task's newest fine-tuned version")
    rollback.add_argument("task")
    rollback.add_argument("--to", metavar="VERSION", help='serve this version again ("base": the base model)')
    rollback.set_defaults(handler=cmd_rollback)

    video_run = finetune_kinds.add_parser(
        "video", help="a fusion head (frames + sound) on frozen features, from the stored video labels"
    )
    _add_run_arguments(video_run, 300, 16, 1e-2, "serve the head even if it does not beat zero-shot")
    video_run.add_argument("--job", type=int, help="also train on this video labeling job's reviewed labels")
    video_run.add_argument("--frames", type=int, default=8, help="frames sampled per clip (default 8)")
    video_run.add_argument(
        "--patience", type=int, default=10, help="epochs without a better loss before stopping"
    )
    video_run.set_defaults(handler=cmd_finetune_video)

    serve = commands.add_parser("serve", help="run the web app (same as `python app.py`)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7860")))
    serve.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    serve.set_defaults(handler=cmd_serve)
    _accept_profile_everywhere(parser)
    return parser


def _accept_profile_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let `--profile` also follow a subcommand (`mmdemo models --profile lite`), at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.add_argument(
                    "--profile", choices=config.PROFILES, default=argparse.SUPPRESS, help=argparse.SUPPRESS
                )
                _accept_profile_everywhere(subparser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.profile:
        os.environ["MMDEMO_PROFILE"] = args.profile
        from mmdemo.serving import registry

        # A registry made earlier in this process (a test, an embedding caller) must follow the flag too.
        if registry.default_registry().profile != args.profile:
            registry.configure(args.profile)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as error:
        print(f"mmdemo: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mmdemo: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a clear line instead of a traceback; MMDEMO_DEBUG=1 shows it
        if config.env_flag("MMDEMO_DEBUG"):
            raise
        from mmdemo.media.files import MediaError
        from mmdemo.serving.hub import ModelUnavailable

        if isinstance(error, MediaError | ModelUnavailable | ValueError):
            print(f"mmdemo: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"mmdemo: {type(error).__name__}: {error} (set MMDEMO_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
