"""Every `--json` command's whole stdout is JSON: the real `mmdemo` console script, in a subprocess, on a
fresh data folder, where model libraries print while they load (that chatter goes to stderr)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ASSETS, ROOT

CAT = str(ASSETS / "cat.jpg")
CLIP = str(ROOT / "assets" / "videos" / "clock.mp4")


def console_script() -> str:
    """The `mmdemo` console script of this environment."""
    beside = Path(sys.executable).with_name("mmdemo")
    found = str(beside) if beside.exists() else shutil.which("mmdemo")
    assert found, "the mmdemo console script is not installed (pip install -e .)"
    return found


TINY = ["--profile", "tiny"]
COMMANDS = {
    "search": [*TINY, "search", "a cat", "-k", "3", "--json"],
    # lite's EfficientNet prints "Loaded pretrained weights…" while it loads
    "search-lite": ["--profile", "lite", "search", "a cat", "-k", "3", "--json"],
    "caption": [*TINY, "caption", CAT, "--json"],
    "ask": [*TINY, "ask", CAT, "what is this?", "--json"],
    "classify-video": [*TINY, "classify-video", CLIP, "--labels", "a clock,a cat", "--frames", "2", "--json"],
    "models": [*TINY, "models", "--json"],
    "versions": [*TINY, "versions", "--json"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_json_commands_print_nothing_but_json_on_stdout(name, tmp_path):
    env = {
        **os.environ,
        "MMDEMO_DATA_DIR": str(tmp_path / "data"),
        "MMDEMO_INDEX_DIR": str(tmp_path / "index"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [console_script(), *COMMANDS[name]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)  # the whole of stdout, not its last line
    assert parsed or name == "versions"
    if name.startswith("search"):
        assert [row["rank"] for row in parsed] == [1, 2, 3]
        assert all(Path(row["path"]).is_file() for row in parsed)
    if name in ("caption", "ask"):
        assert "tiny" in json.dumps(parsed)
