"""Eight real `mmdemo` commands started at once on an empty data folder (as a cron job, a worker and a
person at a terminal might): each creates or migrates the schema only if nobody else has, and all succeed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from mmdemo.data import Store
from mmdemo.data.migrations import NAMES, SCHEMA
from tests.conftest import ASSETS, ROOT

PROCESSES = 8


def _mmdemo() -> list[str]:
    script = shutil.which("mmdemo")
    return [script] if script else [sys.executable, "-m", "mmdemo.cli"]


def test_eight_commands_start_at_once_on_an_empty_data_folder(tmp_path):
    data, index = tmp_path / "data", tmp_path / "index"
    images = sorted(ASSETS.glob("*.jpg"))
    env = {
        **os.environ,
        "MMDEMO_DATA_DIR": str(data),
        "MMDEMO_INDEX_DIR": str(index),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    commands = []
    for n in range(PROCESSES):
        if n % 2:
            commands.append([*_mmdemo(), "--profile", "tiny", "caption", str(images[n])])
        else:
            chosen = [str(path) for path in images[n : n + 3]]
            commands.append([*_mmdemo(), "--profile", "tiny", "index", "add", *chosen, "--index", f"idx{n}"])
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    try:
        outputs = [process.communicate(timeout=420) for process in processes]
    finally:
        for process in processes:
            process.kill()
    failed = [
        f"{' '.join(command[-5:])} exited {process.returncode}: {stderr.strip().splitlines()[-1:]}"
        for command, process, (_, stderr) in zip(commands, processes, outputs, strict=True)
        if process.returncode != 0
    ]
    assert failed == [], "\n".join(failed)

    store = Store(data / "mmdemo.db")
    assert [step.name for step in SCHEMA.applied(store.db)] == NAMES  # each step ran once
    assert len(store.predictions("caption")) == PROCESSES // 2
    for n in range(0, PROCESSES, 2):
        assert (index / f"idx{n}").is_dir()
