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


def cmd_classify_video(args: argparse.Namespace) -> int:
    from mmdemo.fusion import DEFAULT_WEIGHTS
    from mmdemo.video_classify import DEFAULT_FRAMES, classify_video

    weights = {
        "visual": DEFAULT_WEIGHTS["visual"] if args.visual_weight is None else args.visual_weight,
        "audio": DEFAULT_WEIGHTS["audio"] if args.audio_weight is None else args.audio_weight,
    }
    frames = DEFAULT_FRAMES if args.frames is None else args.frames
    with contextlib.redirect_stdout(sys.stderr):  # model libraries print while loading; stdout is ours
        result = classify_video(args.video, args.labels.split(","), weights, n_frames=frames, user=args.user)
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
    print(f"prediction #{result.prediction_id} (frames at {', '.join(f'{t:g}s' for t in result.timestamps)})")
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
