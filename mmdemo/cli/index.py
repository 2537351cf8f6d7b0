"""`mmdemo index add|info|rm|rebuild` and `mmdemo search`: named vector indexes of images."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer

from mmdemo import config
from mmdemo.cli.common import UserError, chatter_to_stderr, choice_option, print_json, print_table

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq")  # search.index.INDEX_TYPES, without importing FAISS
ENGINES = ("local", "ray")  # search.distributed.ENGINES, without importing it

IndexName = Annotated[str, typer.Option("--index", help="index name")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]

index_app = typer.Typer(name="index", help="build and manage vector indexes of images", no_args_is_help=True)


def _print_ingest(report: Any) -> None:
    for _, why in report.failed:
        print(f"mmdemo: skipped {why}", file=sys.stderr)
    print(report.summary())


@index_app.command("add")
def add(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="image files and folders")],
    index: IndexName = "default",
    index_type: Annotated[
        str,
        choice_option(INDEX_TYPES, help_text="for a new index"),
    ] = "auto",
    batch_size: Annotated[int, typer.Option(help="images embedded at once")] = 16,
    engine: Annotated[
        str, choice_option(ENGINES, help_text="ray: embed on a Ray cluster (a local one if none is given)")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="with --engine ray: the cluster to join (default: RAY_ADDRESS)")
    ] = None,
    workers: Annotated[int, typer.Option(help="with --engine ray: embedder actors, one model each")] = 2,
) -> None:
    """Embed the images under files/folders into an index."""
    from mmdemo.services import default_services

    if workers < 1:
        raise UserError("--workers must be at least 1")
    if engine != "ray" and ray_address:
        raise UserError("--ray-address needs --engine ray")
    with chatter_to_stderr():
        if engine == "ray":
            from mmdemo.search import distributed  # imports Ray: only when asked for

            report = distributed.ingest(
                default_services().index,
                paths,
                index,
                options=distributed.RayOptions(ray_address, workers, batch_size),
                index_type=index_type,
                show_bar=True,
            )
        else:
            report = default_services().index.ingest(
                paths, index, index_type=index_type, batch_size=batch_size, show_bar=True
            )
    _print_ingest(report)


@index_app.command("info")
def info(
    index: Annotated[str | None, typer.Option("--index", help="one index (default: all)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the manifest and counts of indexes."""
    from mmdemo.search import manifest as index_manifest

    root = config.index_dir()
    names = [index] if index else index_manifest.list_indexes(root)
    if not names:
        print(f"no indexes in {root} yet; `mmdemo index add PATH` or `mmdemo search` builds one")
        return
    manifests = [asdict(index_manifest.read_manifest(name, root)) for name in names]
    if as_json:
        print_json(manifests)
        return
    for manifest in manifests:
        print(f"{root / manifest['name']}")
        print_table(["field", "value"], [[key, value] for key, value in manifest.items()])


@index_app.command("rm")
def remove(
    paths: Annotated[list[str] | None, typer.Argument(metavar="[PATH]...", help="images or folders")] = None,
    index: IndexName = "default",
    remove_all: Annotated[bool, typer.Option("--all", help="delete the whole index")] = False,
) -> None:
    """Remove images (by content) or a whole index."""
    from mmdemo.search import manifest as index_manifest
    from mmdemo.services import default_services

    if remove_all:
        index_manifest.remove_index(index, config.index_dir())
        print(f"removed index {index!r}")
        return
    if not paths:
        raise UserError("name the images (or folders) to remove, or --all to remove the whole index")
    with chatter_to_stderr():
        removed, absent = default_services().index.remove(paths, index)
    for path in absent:
        print(f"mmdemo: not in the index: {path}", file=sys.stderr)
    print(f"removed {removed} item(s) from index {index!r}")


@index_app.command("rebuild")
def rebuild(index: IndexName = "default") -> None:
    """Re-embed an index with the active embedder."""
    from mmdemo.services import default_services

    with chatter_to_stderr():
        report = default_services().index.rebuild(index, show_bar=True)
    _print_ingest(report)


def search(
    query: Annotated[str | None, typer.Argument(metavar="[TEXT]", help="what to look for")] = None,
    text: Annotated[str | None, typer.Option(help="what to look for (the same as TEXT)")] = None,
    image: Annotated[str | None, typer.Option(help="an image file to find similar images to")] = None,
    index: IndexName = "default",
    k: Annotated[int, typer.Option("-k", help="number of results")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help='print [{"path", "score", "rank"}, ...]')] = False,
) -> None:
    """Search an index by text or by image."""
    from mmdemo.search.retrieval import why_no_results
    from mmdemo.services import default_services

    if query is not None and text is not None:
        raise UserError("give the text to look for once: as TEXT or as --text")
    text = text if text is not None else query
    if (text is None) == (image is None):
        raise UserError("give one of TEXT (or --text) or --image")
    if k < 1:
        raise UserError("-k must be at least 1")
    with chatter_to_stderr():
        found = default_services().index.search(text=text, image=image, k=k, name=index)
    rows = [{"path": r.path, "score": round(r.score, 4), "rank": r.rank} for r in found.results]
    if as_json:
        print_json(rows)
    else:
        table = [[r["rank"], f"{r['score']:.4f}", r["path"]] for r in rows]
        print_table(["rank", "score", "path"], table, empty=f"no results: {why_no_results(found)}")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app)
    app.command()(search)
