"""`mmdemo models`: which model serves each task in the active profile."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from mmdemo.cli.common import print_json, print_table

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def models(as_json: JsonFlag = False) -> None:
    """List the models of the active profile and whether they are loaded."""
    from mmdemo.serving import registry, reporting

    statuses = registry.default_registry().status()
    if as_json:
        print_json([asdict(s) for s in statuses])
        return
    active = registry.default_registry()
    print(f"profile: {active.profile}  device: {active.device}")
    print_table(reporting.STATUS_COLUMNS, reporting.status_rows(statuses))


def register(app: typer.Typer) -> None:
    app.command()(models)
