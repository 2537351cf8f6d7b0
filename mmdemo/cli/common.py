"""What every command shares: the CLI's user, the one error path, table and JSON output, `--profile`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import typer

from mmdemo import config

CLI_USER = "cli"  # who is recorded for what is done from the command line (predictions, runs, rollbacks)
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A problem with what the user asked for: one line on stderr and exit code 2."""


# -- options ---------------------------------------------------------------------------------------------
def _refuse_others(choices: Sequence[str]) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            # argparse's words, which scripts (and tests) match
            raise typer.BadParameter(f"invalid choice: {value!r} (choose from {', '.join(choices)})")
        return value

    return check


def choice_option(choices: Sequence[str], *flags: str, help_text: str | None = None) -> Any:
    """A `typer.Option` that takes one of `choices`."""
    metavar = "[" + "|".join(choices) + "]"
    return typer.Option(*flags, callback=_refuse_others(choices), metavar=metavar, help=help_text)


def choice_argument(choices: Sequence[str], metavar: str) -> Any:
    """A `typer.Argument` that takes one of `choices`."""
    return typer.Argument(callback=_refuse_others(choices), metavar=metavar, help=" | ".join(choices))


def apply_profile(profile: str | None) -> None:
    """`--profile`: the models of this profile serve every command of this process."""
    if profile is None:
        return
    os.environ["MMDEMO_PROFILE"] = profile
    from mmdemo.serving import registry

    # A registry made earlier in this process (a test, an embedding caller) must follow the flag too.
    if registry.default_registry().profile != profile:
        registry.configure(profile)


def profile_first(argv: Sequence[str]) -> list[str]:
    """Move `--profile P` to the front, where the root command reads it: it may also follow a subcommand
    (`mmdemo models --profile tiny`)."""
    moved: list[str] = []
    rest: list[str] = []
    position = 0
    while position < len(argv):
        arg = argv[position]
        if arg == "--":
            rest.extend(argv[position:])
            break
        if arg == "--profile" and position + 1 < len(argv):
            moved.extend(argv[position : position + 2])
            position += 2
            continue
        (moved if arg.startswith("--profile=") else rest).append(arg)
        position += 1
    return [*moved, *rest]


# -- output ----------------------------------------------------------------------------------------------
def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


@contextlib.contextmanager
def chatter_to_stderr() -> Iterator[None]:
    """Model libraries print while loading, from Python and from native code; stdout carries only the
    command's output (`--json` stays parseable)."""
    with contextlib.ExitStack() as stack:
        if sys.stdout is sys.__stdout__ and sys.stdout is not None:  # not under a test's capture
            stack.enter_context(_fd_to_stderr(sys.stdout))
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        yield


@contextlib.contextmanager
def _fd_to_stderr(stream: Any) -> Iterator[None]:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield
        return
    stream.flush()
    saved = os.dup(fd)
    os.dup2(sys.stderr.fileno(), fd)
    try:
        yield
    finally:
        stream.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, plain: bool) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=_plain_box() if plain else box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        highlight=False,
        header_style="" if plain else "bold",
    )
    for header in headers:
        table.add_column(Text(str(header)), overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: a "[x]" in a cell is not rich markup
    return table


def _plain_box() -> Any:
    """Dashes under the header, no other lines: ASCII, easy to parse."""
    from rich.box import Box

    return Box("    \n    \n -  \n    \n    \n -  \n    \n    \n", ascii=True)


def format_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """The table as plain text: a header line, a line of dashes, one line per row, columns never cut."""
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=100_000, color_system=None, highlight=False, emoji=False, markup=False)
    console.print(_table(headers, rows, plain=True))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def print_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, empty: str = "") -> None:
    """A table on stdout: rich in a terminal, plain text (see `format_table`) for pipes and scripts."""
    if not rows and empty:
        print(empty)
    elif sys.stdout.isatty():
        from rich.console import Console

        Console(highlight=False, emoji=False).print(_table(headers, rows, plain=False))
    else:
        print(format_table(headers, rows))


# -- the one error path ----------------------------------------------------------------------------------
def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "what you asked for cannot be done", as opposed to a bug."""
    from mmdemo.accounts import AccessDenied
    from mmdemo.data import StoreError
    from mmdemo.serving.hub import ModelUnavailable
    from mmdemo.serving.registry import UnknownTask

    return (ValueError, AccessDenied, StoreError, ModelUnavailable, UnknownTask)


def _message(error: BaseException) -> str:
    # str() of a KeyError quotes its message; and stderr gets one line, whatever the message holds
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def report(error: Exception) -> int:
    """One line on stderr (a traceback with MMDEMO_DEBUG=1); the exit code: 2 for a user error, else 1."""
    user_error = isinstance(error, _user_errors())
    if config.env_flag("MMDEMO_DEBUG"):
        traceback.print_exception(error)
    elif user_error:
        print(f"mmdemo: {_message(error)}", file=sys.stderr)
    else:
        hint = "(set MMDEMO_DEBUG=1 for details)"
        print(f"mmdemo: {type(error).__name__}: {_message(error)} {hint}", file=sys.stderr)
    return EXIT_USAGE if user_error else EXIT_FAILED


def run(app: typer.Typer, argv: Sequence[str] | None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return its exit code."""
    command = typer.main.get_command(app)
    try:
        # standalone: usage errors (a bad option, an unknown profile) are printed by click and exit 2
        command.main(args=profile_first(sys.argv[1:] if argv is None else argv), prog_name="mmdemo")
    except SystemExit as done:
        if done.code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this exit code
            print("mmdemo: interrupted", file=sys.stderr)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_FAILED)
    except Exception as error:
        return report(error)
    return 0
