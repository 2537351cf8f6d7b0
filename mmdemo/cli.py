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
    from mmdemo import registry

    statuses = registry.status()
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        print(f"profile: {registry.default_registry().profile}  device: {registry.default_registry().device}")
        print(format_table(registry.STATUS_COLUMNS, registry.status_rows(statuses)))
    return 0


def cmd_caption(args: argparse.Namespace) -> int:
    from mmdemo import captioning

    options, notes = captioning.caption_options(
        strategy=args.strategy,
        num_beams=args.beams,
        max_length=args.max_length,
        prefix=args.prefix,
        seed=args.seed,
    )
    with contextlib.redirect_stdout(sys.stderr):  # keep model-loading chatter out of the output
        results, _ = captioning.caption_images(args.images, options, user=CLI_USER)
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
    from mmdemo import vqa

    with contextlib.redirect_stdout(sys.stderr):  # keep model-loading chatter out of the output
        result = vqa.ask(args.image, args.question, user=CLI_USER, top_k=args.top_k)
    for note in result.notes:
        print(f"mmdemo: note: {note}", file=sys.stderr)
    if args.json:
        top = [{"answer": answer, "score": round(score, 4)} for answer, score in result.top]
        print(json.dumps({"answer": result.answer, "model": result.model.name, "top": top}, indent=2))
    else:
        print(result.answer)
        print(f"model: {result.model_label}", file=sys.stderr)
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
