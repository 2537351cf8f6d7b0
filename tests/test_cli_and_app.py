from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from mmdemo.cli import main
from tests.conftest import free_port, served


def test_models_json_shows_lite_offline_and_why(capsys):
    assert main(["--profile", "auto", "models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    public = {row["task"]: row for row in rows if row["task"] in ("embed", "caption", "vqa", "audio")}
    assert set(public) == {"embed", "caption", "vqa", "audio"}
    for row in public.values():
        assert row["profile"] == "lite"
        assert "unreachable" in row["why"]
        assert {"name", "source", "device", "dtype", "loaded", "load_seconds", "parameters"} <= set(row)


def test_models_table_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "mmdemo.cli", "--profile", "tiny", "models"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "tiny BlipForConditionalGeneration" in result.stdout and "profile: tiny" in result.stdout


def test_profile_may_follow_the_subcommand(capsys):
    assert main(["models", "--profile", "tiny", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["profile"] for row in rows} == {"tiny"}


def test_bad_profile_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "mmdemo.cli", "--profile", "huge", "models"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_app_serves_http_200_and_the_status_api(tmp_path):
    from gradio_client import Client

    from mmdemo.ui.app import build_app

    with served(build_app()) as url:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        client = Client(url, verbose=False)
        summary, table = client.predict(api_name="/status")
        assert "Profile" in summary
        tasks = [row[0] for row in table["data"]]
        assert {"embed", "caption", "vqa", "audio"} <= set(tasks)


def test_python_app_py_starts_without_loading_models(tmp_path):
    port = free_port()
    env = {**__import__("os").environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    process = subprocess.Popen(
        [sys.executable, "app.py"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("app.py did not answer within 60 s")
        assert (
            "torch"
            not in subprocess.run(
                [sys.executable, "-c", "import sys, app; print(' '.join(sys.modules))"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.split()
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
