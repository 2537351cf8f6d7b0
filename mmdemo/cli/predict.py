"""`mmdemo caption`, `mmdemo ask`, `mmdemo classify-video`: predictions, recorded in the store."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from mmdemo.cli.common import CLI_USER, chatter_to_stderr, choice_option, print_json

STRATEGIES = ("beam", "sample")  # captioning.STRATEGIES, without importing the models


def _registry() -> Any:
    from mmdemo.services import default_services

    return default_services().registry


def _notes(notes: list[str]) -> None:
    for note in notes:
        print(f"mmdemo: note: {note}", file=sys.stderr)


def caption(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="image files")],
    as_json: Annotated[bool, typer.Option("--json", help='print [{"path", "caption", "model"}]')] = False,
    strategy: Annotated[str, choice_option(STRATEGIES, help_text="decoding")] = "beam",
    beams: Annotated[int, typer.Option(help="beams for beam search")] = 3,
    max_length: Annotated[int, typer.Option(help="most new tokens in a caption")] = 30,
    prefix: Annotated[str, typer.Option(help="text the caption starts with (conditional)")] = "",
    seed: Annotated[int, typer.Option(help="random seed for sampling")] = 0,
) -> None:
    """Caption images: one line per image."""
    from mmdemo.tasks import captioning

    options, notes = captioning.caption_options(
        strategy=strategy, num_beams=beams, max_length=max_length, prefix=prefix, seed=seed
    )
    with chatter_to_stderr():
        results, _ = captioning.caption_images(images, options, user=CLI_USER, registry=_registry())
    _notes([*notes, *(note for result in results for note in result.notes)])
    if as_json:
        print_json(
            [
                {"path": path, "caption": r.caption, "model": r.model.name}
                for path, r in zip(images, results, strict=True)
            ]
        )
        return
    for path, result in zip(images, results, strict=True):
        print(f"{path}\t{result.caption}")
    print(f"model: {results[0].model_label}", file=sys.stderr)


def ask(
    image: Annotated[str, typer.Argument(metavar="IMAGE")],
    question: Annotated[str, typer.Argument(metavar="QUESTION")],
    as_json: Annotated[bool, typer.Option("--json", help='print {"answer", "model", "top": [...]}')] = False,
    top_k: Annotated[int, typer.Option(help="how many ranked answers to give")] = 5,
) -> None:
    """Answer a question about an image."""
    from mmdemo.tasks import vqa

    with chatter_to_stderr():
        result = vqa.ask(image, question, user=CLI_USER, top_k=top_k, registry=_registry())
    _notes(result.notes)
    if as_json:
        top = [{"answer": answer, "score": round(score, 4)} for answer, score in result.top]
        print_json({"answer": result.answer, "model": result.model.name, "top": top})
        return
    print(result.answer)
    print(f"model: {result.model_label}", file=sys.stderr)


def classify_video(
    video: Annotated[str, typer.Argument(help="a video (or audio) file")],
    labels: Annotated[str, typer.Option(help="comma-separated labels, e.g. cat,dog,rocket")],
    frames: Annotated[int | None, typer.Option(help="frames sampled over the clip (default 8)")] = None,
    visual_weight: Annotated[
        float | None, typer.Option(help="fusion weight of the frames (default 0.5)")
    ] = None,
    audio_weight: Annotated[
        float | None, typer.Option(help="fusion weight of the sound (default 0.5)")
    ] = None,
    top: Annotated[int, typer.Option(help="labels shown per ranking")] = 5,
    user: Annotated[str, typer.Option(help="who asked (stored with the prediction)")] = CLI_USER,
    as_json: Annotated[
        bool, typer.Option("--json", help="print JSON: fused, visual and audio scores")
    ] = False,
) -> None:
    """Classify a video clip from its frames and sound against your labels."""
    from mmdemo.tasks.fusion import DEFAULT_WEIGHTS
    from mmdemo.tasks.video_classify import DEFAULT_FRAMES
    from mmdemo.tasks.video_classify import classify_video as classify

    weights = {
        "visual": DEFAULT_WEIGHTS["visual"] if visual_weight is None else visual_weight,
        "audio": DEFAULT_WEIGHTS["audio"] if audio_weight is None else audio_weight,
    }
    n_frames = DEFAULT_FRAMES if frames is None else frames
    with chatter_to_stderr():
        result = classify(
            video, labels.split(","), weights, n_frames=n_frames, user=user, registry=_registry()
        )
    if as_json:
        print_json(result.as_json())
        return
    for name in ("fused", "visual", "audio"):
        ranking = result.top(name, top)
        print(f"{name}:" + ("" if ranking else " (not scored)"))
        for label, score in ranking:
            print(f"  {score:7.2%}  {label}")
    for note in result.notes:
        print(f"note: {note}")
    if result.model is not None:
        print(f"made by: {result.model.name} (version {result.model.version})")
    print(f"prediction #{result.prediction_id} (frames at {', '.join(f'{t:g}s' for t in result.timestamps)})")


def register(app: typer.Typer) -> None:
    app.command()(caption)
    app.command()(ask)
    app.command("classify-video")(classify_video)
