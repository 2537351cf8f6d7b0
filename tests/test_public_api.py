"""The public API as a script meets it: `gradio_client` against the served app (lite, offline).

The endpoint list is exactly the documented one, every parameter and output is named, every endpoint
answers good input with plain data and each bad input of the README's input rules with the CLI's message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from mmdemo.labeling import jobs
from mmdemo.services import Services
from mmdemo.ui import api, apidoc
from mmdemo.ui.app import build_app
from tests.conftest import ROOT, served

IMAGES = ROOT / "assets" / "images"
CAT, COFFEE = IMAGES / "cat.jpg", IMAGES / "coffee.jpg"
CLIP = ROOT / "assets" / "videos" / "coffee.mp4"


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are notes, not a photo\n")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(CAT.read_bytes()[:600])  # a JPEG cut short
    huge = tmp_path / "huge.png"
    Image.new("1", (10_001, 10_001)).save(huge)  # 100 megapixels in a small file
    return {"not an image": notes, "corrupt": corrupt, "too large": huge}


def cli_message(*args: str) -> str:
    """The one line `mmdemo` prints on stderr for bad input (exit code 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "mmdemo.cli", "--profile", "lite", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("mmdemo: ")]
    return line.removeprefix("mmdemo: ")


def app_error(call) -> str:
    with pytest.raises(AppError) as raised:
        call()
    message = str(raised.value)
    assert "upstream Gradio app has raised an exception" not in message
    return message


def test_the_documented_endpoints_exactly_each_parameter_and_output_named_and_docs_current():
    demo = build_app(Services.create())  # building loads no model
    info = demo.get_api_info()
    assert list(info["named_endpoints"]) == [f"/{name}" for name in api.ENDPOINTS]
    assert info["unnamed_endpoints"] == {}
    with served(demo) as url:
        listed = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    assert list(listed["named_endpoints"]) == [f"/{name}" for name in api.ENDPOINTS]
    for name, endpoint in listed["named_endpoints"].items():
        for parameter in endpoint["parameters"]:
            assert parameter["parameter_name"] and not parameter["parameter_name"].startswith("value"), name
        for output in endpoint["returns"]:
            assert output["label"] and not output["label"].startswith("value_"), name
    caption = listed["named_endpoints"]["/caption"]["parameters"]
    assert [p["parameter_name"] for p in caption if not p["parameter_has_default"]] == ["image"]
    assert (ROOT / "docs" / "api.md").read_text() == apidoc.render(info["named_endpoints"], _functions(demo))
    assert set(apidoc.EXAMPLES) == set(api.ENDPOINTS)


def _functions(demo):
    return {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name in api.ENDPOINTS}


def test_every_endpoint_answers_data_and_bad_input_gets_the_clis_message(lite, bad_files, tmp_path):
    job = jobs.create_job(None, "photos", "caption", [CAT, COFFEE])
    with served(build_app(Services.create(lite, index_root=tmp_path / "index"))) as url:
        client = Client(url, verbose=False)
        called: set[str] = set()

        def call(name: str, *args, **kwargs):
            called.add(name)
            return client.predict(*args, api_name=f"/{name}", **kwargs)

        found = call("search_text", query="a cup of coffee", k=3)
        assert [r["rank"] for r in found["results"]] == [1, 2, 3] and found["index"] == "default"
        assert call("search_image", image=handle_file(COFFEE), k=2)["results"][0]["name"] == "coffee.jpg"
        judged = call("judge", rank=1, relevant=True)
        visitor = judged.pop("user")  # an anonymous caller is told apart by its session
        assert judged == {"rank": 1, "name": "coffee.jpg", "relevant": True}
        assert re.fullmatch(r"anonymous:[0-9a-f]{16}", visitor)
        assert call("add_images", images=[handle_file(CAT)])["already_indexed"] == ["cat.jpg"]

        captioned = call("caption", image=handle_file(CAT))
        assert "cat" in captioned["caption"] and captioned["model"]["profile"] == "lite"
        batch = call("caption_batch", images=[handle_file(CAT), handle_file(bad_files["corrupt"])])
        assert [c["name"] for c in batch["captions"]] == ["cat.jpg"] and len(batch["skipped"]) == 1
        answered = call("ask", image=handle_file(CAT), question="Is there a cat?")
        assert answered["answer"] == "yes" and answered["top"][0]["answer"] == "yes"
        classified = call("classify_video", clip=handle_file(CLIP), labels="a cup of coffee\na cat", frames=2)
        assert classified["fused"][0]["label"] == "a cup of coffee" and len(classified["timestamps"]) == 2

        assert call("correct_caption", prediction_id=captioned["prediction_id"], caption="a tabby cat")[
            "correction_id"
        ]
        assert call("correct_answer", prediction_id=answered["prediction_id"], answer="yes")["correction_id"]
        corrected = call("correct_video", prediction_id=classified["prediction_id"], label="a mug")
        assert corrected["in_label_set"] is False

        assert [j["job_id"] for j in call("labeling_jobs")] == [job.id]
        item = call("labeling_next", job_id=job.id)
        assert item["done"] is False and item["task"] == "caption" and item["prefill"]
        following = call("labeling_skip", job_id=job.id, item_id=item["item_id"])
        assert following["item_id"] != item["item_id"]
        after = call("labeling_submit", job_id=job.id, item_id=following["item_id"], label="a photo")
        assert after["progress"]["done_by_you"] == 1

        assert {m["task"] for m in call("status")["models"]} >= {"embed", "caption", "vqa"}
        assert call("versions") == []
        assert "nothing to roll back" in app_error(lambda: call("rollback", task="caption"))
        assert "admin" in app_error(lambda: call("export", task="caption"))
        assert call("whoami") == {"user": "anonymous", "role": None}
        assert called == set(api.ENDPOINTS)

        # Bad input: the one line the CLI prints, as a gr.Error (never the generic upstream error).
        for why, bad in bad_files.items():
            expected = cli_message("caption", str(bad))
            assert app_error(lambda bad=bad: call("caption", image=handle_file(bad))) == expected, why
            assert (
                app_error(lambda bad=bad: call("ask", image=handle_file(bad), question="what?")) == expected
            )
            assert app_error(lambda bad=bad: call("search_image", image=handle_file(bad))) == expected
        notes = bad_files["not an image"]
        assert cli_message("classify-video", str(notes), "--labels", "a,b") in app_error(
            lambda: call("classify_video", clip=handle_file(notes))
        )
        assert app_error(lambda: call("ask", image=handle_file(CAT), question="  ")) == cli_message(
            "ask", str(CAT), "  "
        )
        assert "no label set named 'nope'" in app_error(
            lambda: call("classify_video", clip=handle_file(CLIP), label_set="nope")
        )
        assert "no image given" in app_error(lambda: call("caption", image=None))
        assert "Type what you are looking for" in app_error(lambda: call("search_text", query=" "))
        assert "handle_file" in app_error(lambda: call("caption", image=str(CAT)))  # a plain path string
        assert "corrected caption is empty" in app_error(
            lambda: call("correct_caption", prediction_id=captioned["prediction_id"], caption=" ")
        )
