"""Does the app stay responsive while an admin's run trains? The latency of a Labeling API call
(`/labeling_prefill_match` through gradio_client) with nothing training (the baseline), then while a tiny
caption run (20 LoRA steps) trains in the background worker, in one run.
Run: `python bench/train_responsiveness.py [--steps 20]`."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout
os.environ.update(MMDEMO_DATA_DIR=tempfile.mkdtemp(prefix="mmdemo-bench-"), MMDEMO_OFFLINE="1")

from gradio_client import Client

from mmdemo.data import default_store
from mmdemo.finetune import worker
from mmdemo.ui.app import build_app, launch_options
from tests.conftest import free_port
from tests.finetune_helpers import store_caption_corrections

os.environ["MMDEMO_PROFILE"] = "tiny"  # after tests.conftest, which clears it for the tests

ADMIN, PASSWORD = "boss", "bench-password-42"


def timed_calls(client: Client, count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        began = time.perf_counter()
        client.predict(None, api_name="/labeling_prefill_match")
        seconds.append(time.perf_counter() - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--idle-calls", type=int, default=15)
    args = parser.parse_args()
    from mmdemo import accounts

    store_caption_corrections(default_store())
    accounts.add_user(ADMIN, accounts.ADMIN, PASSWORD)
    demo = build_app()
    demo.queue().launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(),
    )
    try:
        client = Client(demo.local_url, auth=(ADMIN, PASSWORD), verbose=False)
        idle = timed_calls(client, args.idle_calls)
        began = time.perf_counter()
        client.predict("caption", [], args.steps, 0, 0.2, True, api_name="/labeling_train")
        busy: list[float] = []
        while worker.status("caption").active:
            busy += timed_calls(client, 1)
            time.sleep(0.2)
        run = worker.status("caption")
    finally:
        demo.close()
    print(f"cores: {os.cpu_count()}; torch threads: default; run {run.state} {run.version or run.error}")
    print(f"run wall time (start to report): {time.perf_counter() - began:.1f} s")
    print("| app call | n | median ms | best ms | max ms |")
    print("|---|---|---|---|---|")
    for name, seconds in (("idle (baseline)", idle), ("while training", busy)):
        print(
            f"| {name} | {len(seconds)} | {statistics.median(seconds) * 1000:.0f} | "
            f"{min(seconds) * 1000:.0f} | {max(seconds) * 1000:.0f} |"
        )


if __name__ == "__main__":
    main()
