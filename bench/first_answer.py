"""Time to the first answer: `python app.py` in a fresh data dir, then its first search, caption and video.

Baseline of the same run: `python -c "import gradio"` (best of `--repeats`), what any Gradio app pays before
it can serve. Then `python app.py` (lite profile, fresh data and index folders) is started and timed until
`/` answers HTTP 200; after `--think-time` seconds (a visitor reading the page: the warm-up runs in the
background meanwhile) the first `/search_text`, `/caption` and `/classify_video` calls are timed one after
another through `gradio_client`. The last line reads `first search after start: X.XX s`.

    python bench/first_answer.py
    python bench/first_answer.py --think-time 0     # call the moment the page is served
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from mmdemo.cli.common import format_table  # noqa: E402

IMAGE = ROOT / "assets" / "images" / "cat.jpg"
CLIP = sorted((ROOT / "assets" / "videos").glob("*.mp4"))[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def import_gradio_s(repeats: int, env: dict[str, str]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gradio"], env=env, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def wait_for_page(url: str, app: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise SystemExit(f"python app.py exited with code {app.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="lite")
    parser.add_argument("--think-time", type=float, default=10.0, help="seconds between page and first call")
    parser.add_argument("--repeats", type=int, default=2, help="best of N for `import gradio`")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    fresh = Path(tempfile.mkdtemp(prefix="mmdemo-first-answer-"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MMDEMO_PROFILE": args.profile,
        "MMDEMO_DATA_DIR": str(fresh / "data"),
        "MMDEMO_INDEX_DIR": str(fresh / "index"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    gradio_s = import_gradio_s(args.repeats, env)
    started = time.perf_counter()
    log = open(fresh / "app.log", "wb")  # noqa: SIM115 - closed with the app
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_page(url, app, args.timeout)
        start_s = time.perf_counter() - started
        time.sleep(args.think_time)
        client = Client(url, verbose=False)
        calls = {  # keyword arguments: the public API's parameter names, as a script would call it
            "/search_text": lambda: client.predict(query="a cup of coffee", k=4, api_name="/search_text"),
            "/caption": lambda: client.predict(image=handle_file(IMAGE), api_name="/caption"),
            "/classify_video": lambda: client.predict(
                clip=handle_file(CLIP), labels="a cup of coffee\na clock\na camera", frames=8,
                api_name="/classify_video",
            ),
        }  # fmt: skip
        seconds = {}
        for name, call in calls.items():
            call_started = time.perf_counter()
            call()
            seconds[name] = time.perf_counter() - call_started
    except Exception:
        print(f"the app's log: {fresh / 'app.log'}", file=sys.stderr)
        raise
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()

    print(
        f"profile {args.profile}; fresh data dir; think time {args.think_time:.0f} s; cpus {os.cpu_count()}"
    )
    rows = [
        ["python -c 'import gradio' (baseline)", f"{gradio_s:.2f}", ""],
        ["python app.py until HTTP 200", f"{start_s:.2f}", f"{start_s - gradio_s:+.2f} s vs import gradio"],
        *[[f"first {name}", f"{value:.2f}", "target <= 2 s"] for name, value in seconds.items()],
    ]
    print(format_table(["step", "seconds", "note"], rows))
    print(f"first search after start: {seconds['/search_text']:.2f} s")


if __name__ == "__main__":
    main()
