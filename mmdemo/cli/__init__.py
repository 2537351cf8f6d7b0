"""The `mmdemo` command: a typer app whose commands are plain functions over the registry, store and index.

One module per command group; `common` holds what they share (the CLI's user, the error path, output)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from mmdemo import __version__, config
from mmdemo.cli import finetune, index, labeling, models, predict, serve
from mmdemo.cli.common import CLI_USER, UserError, apply_profile, choice_option, format_table, run

__all__ = ["CLI_USER", "UserError", "app", "format_table", "main"]

app = typer.Typer(
    name="mmdemo",
    help="Multimodal demo and annotation studio.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help and usage errors, the same in a terminal and a pipe
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        print(f"mmdemo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    profile: Annotated[
        str | None,
        choice_option(
            config.PROFILES,
            help_text="model profile (default: $MMDEMO_PROFILE or auto); may also follow the command",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """Multimodal demo and annotation studio."""
    apply_profile(profile)


for group in (models, index, predict, labeling, finetune, serve):
    group.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script `mmdemo` (and `python -m mmdemo.cli`): runs `argv`, returns the exit code."""
    return run(app, argv)
