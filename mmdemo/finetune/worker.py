"""Fine-tuning runs in the background: one worker process per run, one run per task at a time.

`start(user, request)` checks the role and the request, then starts `python -m mmdemo.finetune.worker
RUN_DIR`, a small process (no torch) that runs the real `mmdemo finetune TASK` command as its child and
records how it ended. Everything a run has is a folder under `<data dir>/training/`: `request.json`,
`status.json` (written by the starter, then by the worker), `log.txt` (the command's stderr: tqdm bars
and the one-line refusal of a bad run) and `version.json` (the command's `--json` output). The app (or any
process) polls `status(task)`; the app's registry serves an accepted version on its next use, as it serves
one trained from the CLI.

One run per task: the check of the task's latest run and the start of the next happen under a file lock,
across processes; a run whose worker died is no longer counted as training.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from filelock import FileLock

from mmdemo import config

ACTIVE = ("starting", "running")
STATES = (*ACTIVE, "done", "failed")
STARTUP_GRACE_S = 120  # a worker that has not said it runs within this is taken for dead
# tqdm's bar as it reaches the log: "train:  45%|████▌     | 90/200 [00:03<00:04, 25.1step/s]"
_BAR = re.compile(r"(?P<desc>[^\r\n|]*?):\s*(?P<percent>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)")
_children: dict[str, subprocess.Popen[bytes]] = {}  # workers this process started (reaped on poll)


class RunRefused(ValueError):
    """A run that cannot start: another one of the task is training, or the request is bad."""


@dataclass(frozen=True)
class TrainRequest:
    """What an admin asks for; None means the command's own default."""

    task: str
    job_ids: tuple[int, ...] = ()
    steps: int | None = None
    learning_rate: float | None = None
    validation_fraction: float | None = None
    accept_always: bool = False
    profile: str | None = None
    include_unreviewed: bool = False  # items no reviewer decided yet count by their majority label
    include_anonymous: bool = False  # anonymous visitors' labels count too

    def argv(self) -> list[str]:
        """The `mmdemo` command line of the run."""
        args = ["--profile", self.profile] if self.profile else []
        args += ["finetune", self.task, "--json"]
        for option, value in (
            ("--steps", self.steps),
            ("--learning-rate", self.learning_rate),
            ("--validation-fraction", self.validation_fraction),
        ):
            if value is not None:
                args += [option, str(value)]
        for job_id in self.job_ids:
            args += ["--job", str(job_id)]
        flags = (
            ("--include-unreviewed", self.include_unreviewed),
            ("--include-anonymous", self.include_anonymous),
            ("--accept-always", self.accept_always),
        )
        return args + [flag for flag, wanted in flags if wanted]


@dataclass(frozen=True)
class Progress:
    stage: str  # tqdm's description of the current bar ("train", "validate", ...)
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class RunStatus:
    id: str
    task: str
    user: str
    state: str  # one of STATES
    started_at: str
    request: dict[str, Any]
    pid: int | None = None
    finished_at: str | None = None
    returncode: int | None = None
    version: str | None = None  # the model version the run made ("v3"), once done
    error: str | None = None  # why a failed run failed: the command's one-line message
    progress: Progress | None = field(default=None, compare=False)
    log_tail: str = field(default="", compare=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def progress_text(progress: Progress | None) -> str:
    return f" ({progress.stage}: {progress.done}/{progress.total})" if progress else ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def runs_dir() -> Path:
    return config.data_dir() / "training"


def _write_json(path: Path, value: Any) -> None:
    """Whole or not at all: a poller never reads half a file."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(partial, path)


def _save(folder: Path, status: RunStatus) -> None:
    saved = asdict(status)
    for computed in ("progress", "log_tail"):
        saved.pop(computed)
    _write_json(folder / "status.json", saved)


def _alive(run: RunStatus) -> bool:
    if run.id in _children:  # ours: poll() also reaps it, so an exited worker is no zombie
        return _children[run.id].poll() is None
    pid = run.pid
    if pid is None:  # started by another process; its worker has not said it runs yet
        started = datetime.fromisoformat(run.started_at)
        return (datetime.now(timezone.utc) - started).total_seconds() < STARTUP_GRACE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parse_progress(log: str) -> Progress | None:
    """The last tqdm bar state in a run's log."""
    bars = list(_BAR.finditer(log))
    if not bars:
        return None
    found = bars[-1]
    return Progress(found["desc"].strip() or "train", int(found["n"]), int(found["total"]))


def readable(log: str) -> str:
    """The log as a terminal shows it: of a bar redrawn with carriage returns, its last state."""
    shown = (line.rstrip("\r").rsplit("\r", 1)[-1] for line in log.split("\n"))
    return "\n".join(line for line in shown if line.strip())


def _last_line(log: str) -> str:
    lines = [line.strip() for line in re.split(r"[\r\n]+", log) if line.strip() and not _BAR.search(line)]
    return lines[-1].removeprefix("mmdemo: ") if lines else ""  # the CLI's one error line, unprefixed


def read_status(folder: Path) -> RunStatus:
    saved = json.loads((folder / "status.json").read_text())
    log_path = folder / "log.txt"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    status = RunStatus(**saved, progress=parse_progress(log), log_tail=readable(log)[-2000:])
    if status.active and not _alive(status):
        # The worker is gone without a word (killed, the machine restarted): the run is over.
        status = replace(status, state="failed", error=_last_line(log) or "the worker process stopped")
    return status


def runs(task: str | None = None) -> list[RunStatus]:
    """Every background run (of `task`), newest first."""
    root = runs_dir()
    if not root.exists():
        return []
    found = [read_status(folder) for folder in root.iterdir() if (folder / "status.json").exists()]
    found = [run for run in found if task is None or run.task == task]
    return sorted(found, key=lambda run: run.id, reverse=True)


def status(task: str) -> RunStatus | None:
    """The task's latest run, None before the first."""
    found = runs(task)
    return found[0] if found else None


def takes_jobs(task: str) -> bool:
    """Whether a run of `task` can be restricted to labeling jobs (`--job`)."""
    return _job_option(task)[0]


@cache
def _job_option(task: str) -> tuple[bool, bool]:
    """Whether `mmdemo finetune TASK` takes `--job` (a run restricted to labeling jobs), and more than one."""
    import typer

    from mmdemo.cli import app

    group = typer.main.get_command(app).commands["finetune"]  # type: ignore[attr-defined]
    for param in group.commands[task].params:
        if "--job" in param.opts:
            return True, bool(getattr(param, "multiple", False))
    return False, False


def check(request: TrainRequest) -> TrainRequest:
    from mmdemo.tasks import table

    spec = table.get(request.task)
    if request.steps is not None and request.steps < 1:
        raise RunRefused("steps must be at least 1")
    if request.learning_rate is not None and request.learning_rate <= 0:
        raise RunRefused("the learning rate must be above 0")
    if request.validation_fraction is not None and not 0 < request.validation_fraction < 1:
        raise RunRefused("the validation share must be between 0 and 1")
    if request.job_ids:
        from mmdemo.data import labels, store

        labels.jobs_of(store.default_store(), spec.name, request.job_ids)  # a ValueError names a wrong one
        takes_job, takes_several = _job_option(spec.name)
        if not takes_job:
            raise RunRefused(
                f"{spec.name} runs train on all stored labels; they cannot be restricted to jobs"
            )
        if len(set(request.job_ids)) > 1 and not takes_several:
            raise RunRefused(f"a {spec.name} run trains on one job's labels; pick one job")
    return replace(request, task=spec.name, job_ids=tuple(dict.fromkeys(request.job_ids)))


def start(user: str, request: TrainRequest) -> RunStatus:
    """Start a run in a worker process and return its status at once. Admins only; refused while the
    task's previous run is training."""
    from mmdemo import accounts

    accounts.require_role(user, accounts.ADMIN)
    return launch(user, request)


def launch(by: str, request: TrainRequest) -> RunStatus:
    """Start a run for `by` (an admin, or a job's auto-retrain) with no role check: `start` checks it."""
    request = check(request)
    root = runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f"{request.task}.lock", timeout=30):
        current = status(request.task)
        if current is not None and current.active:
            raise RunRefused(
                f"a {request.task} run is already training, started by {current.user} at "
                f"{current.started_at}{progress_text(current.progress)}; start the next when it ends"
            )
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        run_id = f"{stamp}-{request.task}"
        folder = root / run_id
        folder.mkdir()
        run = RunStatus(run_id, request.task, by, "starting", _now(), asdict(request))
        _save(folder, run)
        with open(folder / "worker.log", "wb") as worker_log:  # the child keeps its own copy
            worker = subprocess.Popen(
                [sys.executable, "-m", "mmdemo.finetune.worker", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=worker_log,
                start_new_session=True,  # Ctrl-C in the app's terminal does not kill a run halfway
            )
        _children[run_id] = worker  # the worker itself records its pid and that it runs
    return replace(run, pid=worker.pid)


def wait(task: str, timeout: float, interval: float = 0.5) -> RunStatus:
    """Poll until the task's latest run ends (for tests and scripts)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        run = status(task)
        if run is None or not run.active or time.monotonic() > deadline:
            return run  # type: ignore[return-value]
        time.sleep(interval)


@dataclass(frozen=True)
class RunReport:
    version: Any  # the `ModelVersion` the run made
    markdown: str  # the run's report.md: the before/after table, accepted or not
    plots: tuple[Path, ...]  # the PNGs the run drew (the video head's confusion matrices)


def report(run: RunStatus) -> RunReport | None:
    """The report of a finished run; None while it trains or when it failed."""
    if run.state != "done" or not run.version:
        return None
    from mmdemo.data import store

    version = store.default_store().model_version(run.task, run.version)
    if version is None:
        return None
    folder = Path(version.path)
    text = (folder / "report.md").read_text() if (folder / "report.md").exists() else ""
    # Its plots are shown beside it: a relative image link would not resolve in the app.
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("!["))
    return RunReport(version, text, tuple(sorted(folder.glob("*.png"))))


# -- the worker process ---------------------------------------------------------------------------------
def _work(folder: Path) -> int:
    run = read_status(folder)
    request = TrainRequest(**{**run.request, "job_ids": tuple(run.request["job_ids"])})
    run = replace(run, state="running", pid=os.getpid())
    _save(folder, run)
    with open(folder / "log.txt", "wb") as log, open(folder / "version.json", "wb") as out:
        code = subprocess.call(
            [sys.executable, "-m", "mmdemo.cli", *request.argv()],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=log,
        )
    version = None
    if code == 0:
        version = json.loads((folder / "version.json").read_text())["version"]
    text = (folder / "log.txt").read_text(errors="replace")
    error = None if code == 0 else (_last_line(text) or f"the run exited with status {code}")
    run = replace(run, state="done" if code == 0 else "failed", finished_at=_now(), returncode=code)
    _save(folder, replace(run, version=version, error=error))
    return code


if __name__ == "__main__":
    sys.exit(_work(Path(sys.argv[1])))
