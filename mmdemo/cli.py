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


def _cli_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def cmd_finetune(args: argparse.Namespace) -> int:
    from mmdemo import registry, store
    from mmdemo.finetune import blip_lora
    from mmdemo.finetune.runs import RunConfig

    run_config = RunConfig(
        task=args.kind,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        accept="always" if args.accept_always else "if_better",
        options={"rank": args.lora_rank, "alpha": 2 * args.lora_rank},
    )
    outcome = blip_lora.finetune(
        run_config, registry=registry.default_registry(), store=store.default_store(), user=_cli_user()
    )
    if args.json:
        print(json.dumps(asdict(outcome.version), indent=2))
    else:
        print(outcome.report)
        print(f"saved in {outcome.version.path}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from mmdemo import registry

    active = registry.default_registry()
    versions = active.versions(args.task)
    if args.json:
        print(json.dumps([asdict(v) for v in versions], indent=2))
    else:
        print(format_table(registry.VERSION_COLUMNS, registry.version_rows(active, versions)))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from mmdemo import registry
    from mmdemo.store import StoreError

    try:
        serving = registry.default_registry().rollback(args.task, args.to, user=_cli_user())
    except StoreError as error:
        raise CliError(str(error)) from error
    print(f"{args.task}: now serving {serving}")
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

    finetune = commands.add_parser("finetune", help="train a new model version from the stored corrections")
    finetune_kinds = finetune.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in ("caption", "vqa"):
        text_run = finetune_kinds.add_parser(kind, help=f"LoRA fine-tuning of BLIP {kind} (GPU; tiny on CPU)")
        text_run.add_argument("--steps", type=int, default=200)
        text_run.add_argument("--batch-size", type=int, default=8)
        text_run.add_argument("--learning-rate", type=float, default=1e-4)
        text_run.add_argument("--lora-rank", type=int, default=8)
        text_run.add_argument("--seed", type=int, default=0)
        text_run.add_argument("--validation-fraction", type=float, default=0.2)
        text_run.add_argument(
            "--accept-always", action="store_true", help="serve the result even if validation loss got worse"
        )
        text_run.add_argument("--json", action="store_true", help="print the new version as JSON")
        text_run.set_defaults(handler=cmd_finetune)
    versions = commands.add_parser("versions", help="list fine-tuned model versions and which are served")
    versions.add_argument("--task", help="only this task")
    versions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    versions.set_defaults(handler=cmd_versions)
    rollback = commands.add_parser("rollback", help="stop serving a task's newest fine-tuned version")
    rollback.add_argument("task")
    rollback.add_argument("--to", metavar="VERSION", help='serve this version again ("base": the base model)')
    rollback.set_defaults(handler=cmd_rollback)

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
