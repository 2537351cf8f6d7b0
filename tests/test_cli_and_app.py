from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from mmdemo.cli import CLI_USER, format_table, main
from tests.conftest import ASSETS, free_port, served


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


def test_profile_with_an_equals_sign_after_the_subcommand(capsys):
    assert main(["models", "--json", "--profile=tiny"]) == 0
    assert {row["profile"] for row in json.loads(capsys.readouterr().out)} == {"tiny"}


def test_a_bad_option_is_a_usage_error(capsys):
    assert main(["models", "--bogus"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "No such option: --bogus" in captured.err


def test_a_user_error_is_one_line_and_exit_2_and_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MMDEMO_INDEX_DIR", str(tmp_path))
    monkeypatch.delenv("MMDEMO_DEBUG", raising=False)
    argv = ["index", "rm", "--all", "--index", "nope"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"mmdemo: no index named 'nope' in {tmp_path}\n"

    monkeypatch.setenv("MMDEMO_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "IndexNotFound: no index named 'nope'" in err


def test_an_unexpected_error_is_one_line_and_exit_1_and_ctrl_c_130(capsys, monkeypatch, tmp_path):
    from mmdemo.search import manifest as index_manifest

    def broken(root):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setenv("MMDEMO_INDEX_DIR", str(tmp_path))
    monkeypatch.delenv("MMDEMO_DEBUG", raising=False)
    monkeypatch.setattr(index_manifest, "list_indexes", broken)
    assert main(["index", "info"]) == 1
    err = capsys.readouterr().err
    assert err == "mmdemo: RuntimeError: disk on fire second line (set MMDEMO_DEBUG=1 for details)\n"

    def interrupted(root):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_manifest, "list_indexes", interrupted)
    assert main(["index", "info"]) == 130
    assert capsys.readouterr().err == "mmdemo: interrupted\n"


def test_tables_are_plain_text_for_scripts():
    long_path = "/very/long/" + "x" * 300 + ".jpg"
    lines = format_table(["rank", "path [x]"], [[1, "[bold]a[/bold]"], [2, long_path]]).splitlines()
    assert lines[0].split() == ["rank", "path", "[x]"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["1", "[bold]a[/bold]"]  # cells are text, not rich markup
    assert lines[3].split() == ["2", long_path]  # never cut or wrapped
    assert all(line == line.rstrip() and line.isascii() for line in lines)


def test_the_cli_offers_the_choices_the_code_accepts():
    from mmdemo import accounts
    from mmdemo.cli import index as index_commands
    from mmdemo.cli import labeling as labeling_commands
    from mmdemo.cli import predict as predict_commands
    from mmdemo.labeling import export
    from mmdemo.search import index
    from mmdemo.tasks import captioning

    assert labeling_commands.ROLES == accounts.ROLES
    assert labeling_commands.FORMATS == export.FORMATS
    assert index_commands.INDEX_TYPES == index.INDEX_TYPES
    assert predict_commands.STRATEGIES == captioning.STRATEGIES


def test_help_loads_no_model_library():
    probe = "import sys; from mmdemo.cli import main; code = main(['--help']); print(code, *sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: mmdemo" in result.stdout and "classify-video" in result.stdout
    modules = result.stdout.splitlines()[-1].split()
    assert modules[0] == "0" and not {"torch", "gradio", "faiss", "transformers"} & set(modules)


def test_predictions_from_the_cli_are_recorded_as_the_cli_user(capsys, monkeypatch):
    from mmdemo.data import default_store
    from mmdemo.services import default_services
    from tests.conftest import process_services

    monkeypatch.delenv("MMDEMO_PROFILE", raising=False)
    cat = str(ASSETS / "cat.jpg")
    with process_services(default_services()):  # the CLI's --profile replaces them; put them back after
        assert main(["--profile", "tiny", "caption", cat, "--max-length", "3"]) == 0
    assert capsys.readouterr().out.startswith(f"{cat}\t")
    [prediction] = default_store().predictions("caption")
    assert prediction.user == CLI_USER == "cli"


def test_app_serves_http_200_and_the_status_api(tmp_path):
    from gradio_client import Client

    from mmdemo.ui.app import build_app

    with served(build_app()) as url:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        client = Client(url, verbose=False)
        status = client.predict(api_name="/status")
        assert status["profile"]
        tasks = [row["task"] for row in status["models"]]
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
