"""The `mmdemo` command. Subcommands are plain functions over the registry, the store and the index."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from mmdemo import __version__, config

EXIT_USAGE = 2


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
    from mmdemo import registry

    statuses = registry.status()
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        print(f"profile: {registry.default_registry().profile}  device: {registry.default_registry().device}")
        print(format_table(registry.STATUS_COLUMNS, registry.status_rows(statuses)))
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from mmdemo import accounts
    from mmdemo.store import StoreError

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
    from mmdemo.store import StoreError, default_store

    if args.jobs_command == "create":
        try:
            job = labeling.create_job(
                None,
                args.name,
                args.task,
                labeling.folder_files(args.folder, args.task),
                labels=labeling.parse_list(args.labels),
                prompts=labeling.parse_list(args.prompts),
                overlap=args.overlap,
                source=str(args.folder),
            )
        except (ValueError, StoreError) as error:
            raise CliError(str(error)) from None
        items = len(default_store().job_items(job.id))
        print(f"job #{job.id} {job.name!r}: {items} items, overlap {job.overlap}")
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


def cmd_serve(args: argparse.Namespace) -> int:
    from mmdemo.ui.app import launch

    launch(host=args.host, port=args.port, share=args.share)
    return 0


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
    jobs_create = jobs_commands.add_parser("create", help="create a labeling job over a folder of media")
    jobs_create.add_argument("--name", required=True)
    jobs_create.add_argument("--task", required=True, choices=("caption", "vqa", "video", "retrieval"))
    jobs_create.add_argument("--folder", required=True, help="images (or videos for --task video)")
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
        from mmdemo import registry

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
        from mmdemo.hub import ModelUnavailable
        from mmdemo.media import MediaError

        if isinstance(error, MediaError | ModelUnavailable | ValueError):
            print(f"mmdemo: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"mmdemo: {type(error).__name__}: {error} (set MMDEMO_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
