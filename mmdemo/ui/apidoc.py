"""`python -m mmdemo.ui.apidoc > docs/api.md`: the public API's reference, read from the app itself (endpoint
names, parameters, defaults, outputs, docstrings), so it cannot drift; `tests/test_public_api.py` checks
that the committed file matches."""

from __future__ import annotations

import json
from typing import Any

from gradio import utils

from mmdemo.ui import api

# One runnable example per endpoint: the arguments after `client.predict(`, and when it needs one, a note
# on its own line above the call.
NOTES = {
    "judge": "# after a search_text / search_image of this client",
    "rollback": "# admins",
    "export": "# admins; returns the zip file and the row counts",
}
EXAMPLES = {
    "search_text": 'query="a cup of coffee", k=5',
    "search_image": 'image=handle_file("assets/images/coffee.jpg"), k=5',
    "judge": "rank=1, relevant=True",
    "add_images": 'images=[handle_file("assets/images/cat.jpg")]',
    "caption": 'image=handle_file("assets/images/cat.jpg"), strategy="beam", beams=3',
    "caption_batch": 'images=[handle_file("assets/images/cat.jpg"), handle_file("assets/images/coffee.jpg")]',
    "ask": 'image=handle_file("assets/images/cat.jpg"), question="Is there a cat?"',
    "classify_video": 'clip=handle_file("assets/videos/coffee.mp4"), labels="coffee, a cat, a rocket"',
    "correct_caption": 'prediction_id=1, caption="a tabby cat on a sofa"',
    "correct_answer": 'prediction_id=2, answer="yes"',
    "correct_video": 'prediction_id=3, label="a cup of coffee"',
    "labeling_jobs": "",
    "labeling_next": "job_id=1",
    "labeling_submit": 'job_id=1, item_id=4, label="a grey square"',
    "labeling_skip": "job_id=1, item_id=4",
    "status": "",
    "versions": "",
    "rollback": 'task="caption", to_version=""',
    "export": 'task="caption", format="jsonl"',
    "whoami": "",
}

INTRO = """# mmdemo API

Generated from the app by `python -m mmdemo.ui.apidoc > docs/api.md` (a test checks it is current).
Every endpoint takes named parameters and returns plain data (dicts and lists). Bad input raises
`gradio_client.exceptions.AppError` with the same one-line message as the CLI. Media are files: pass
them with `handle_file(path)` (a plain path string is refused with a message saying so).

```python
from gradio_client import Client, handle_file

client = Client("http://localhost:7860/")                        # an open demo
client = Client("http://localhost:7860/", auth=("ana", "secret"))  # once local accounts exist
client = Client("you/mmdemo", token="hf_...")                    # a private Space: a Hugging Face token
```

MCP tools (`launch(mcp_server=True)`, on unless `MMDEMO_MCP=0`): {tools}, at
`http://localhost:7860/gradio_api/mcp/` (streamable HTTP); their schema is at
`/gradio_api/mcp/schema`.
"""


def _type(parameter: dict[str, Any]) -> str:
    python_type = parameter.get("python_type", {}).get("type", "")
    return "file" if "filepath" in python_type or "FileData" in python_type else python_type


def _default(parameter: dict[str, Any]) -> str:
    if not parameter.get("parameter_has_default"):
        return "required"
    return json.dumps(parameter.get("parameter_default"))


def render(endpoints: dict[str, dict[str, Any]], functions: dict[str, Any]) -> str:
    lines = [INTRO.format(tools=", ".join(f"`{name}`" for name in api.MCP_TOOLS))]
    lines += ["| endpoint | parameters | returns |", "|---|---|---|"]
    for name in api.ENDPOINTS:
        info = endpoints[f"/{name}"]
        params = ", ".join(p["parameter_name"] for p in info["parameters"]) or "—"
        returns = ", ".join(r["label"] for r in info["returns"])
        lines.append(f"| [`/{name}`](#{name}) | {params} | {returns} |")
    for name in api.ENDPOINTS:
        info = endpoints[f"/{name}"]
        description, described, returned = utils.get_function_description(functions[name])
        lines += ["", f"## `/{name}`", "", description]
        if name in api.MCP_TOOLS:
            lines += ["", "Also an MCP tool."]
        if info["parameters"]:
            lines += ["", "| parameter | type | default | meaning |", "|---|---|---|---|"]
            for p in info["parameters"]:
                meaning = described.get(p["parameter_name"], "")
                lines.append(f"| `{p['parameter_name']}` | {_type(p)} | `{_default(p)}` | {meaning} |")
        outputs = ", ".join(f"`{r['label']}`" for r in info["returns"])
        lines += ["", f"Returns {outputs}: " + " ".join(returned).strip()]
        lines += [
            "",
            "```python",
            *([NOTES[name]] if name in NOTES else []),
            f'client.predict({EXAMPLES[name]}{", " if EXAMPLES[name] else ""}api_name="/{name}")',
            "```",
        ]
    return "\n".join(lines) + "\n"


def generate() -> str:
    from mmdemo.services import Services
    from mmdemo.serving.registry import Registry
    from mmdemo.ui.app import build_app

    demo = build_app(Services.create(Registry("tiny", device="cpu")))  # building loads no model
    functions = {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name in api.ENDPOINTS}
    return render(demo.get_api_info()["named_endpoints"], functions)


if __name__ == "__main__":
    print(generate(), end="")
