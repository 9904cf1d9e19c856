"""`fraud ui` / `make ui`: `dg dev` (Dagster's recommended successor of `dagster dev`: webserver + daemon) on
127.0.0.1 over the local instance.

`dg dev` runs in its own process group. On Ctrl-C or SIGTERM the group gets SIGINT (its clean shutdown), then
SIGTERM, then SIGKILL, each after a short wait: the command is back within STOP_SECONDS even while a browser
holds connections open or a run is in progress, and no webserver, daemon, code server or run worker outlives it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from assets.instance import prepare_instance
from fraud.core.settings import REPO_ROOT, Settings

# (signal to the group, seconds to wait for `dg dev` to exit) before the group is killed
STOP_STEPS = ((signal.SIGINT, 3.0), (signal.SIGTERM, 2.0))
STOP_SECONDS = sum(wait for _, wait in STOP_STEPS)


def dg_executable() -> str:
    """The `dg` script of this interpreter's environment (the package dagster-dg-cli), else the one on PATH."""
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.exists() else (shutil.which("dg") or "dg")


def dev_command(port: int) -> list[str]:
    """`dg dev` with an explicit workspace: it then starts Dagster's dev server as `dagster dev` did, without
    needing a dg project layout."""
    workspace = str(REPO_ROOT / "workspace.yaml")
    return [dg_executable(), "dev", "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]


def serve_ui(settings: Settings, port: int, console: Console) -> int:
    dagster_home = prepare_instance(settings)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FRAUD_HOME": str(settings.home)}
    process = subprocess.Popen(dev_command(port), env=env, cwd=REPO_ROOT, start_new_session=True)
    console.print(f"Dagster UI: [bold]http://127.0.0.1:{port}[/]  (instance in {dagster_home}; Ctrl-C to stop)")

    def stop(signum=None, frame=None) -> None:
        raise KeyboardInterrupt

    # explicit handlers: a process started in the background inherits an ignored SIGINT
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    except KeyboardInterrupt:
        console.print("stopping the Dagster UI…")
        stop_group(process)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_group(process: subprocess.Popen) -> None:
    """SIGINT, then SIGTERM, to the process group, each followed by a short wait for its leader; then SIGKILL for
    whatever is left (code servers and run workers the leader did not wait for). A second Ctrl-C skips the waits."""
    try:
        for signum, wait in STOP_STEPS:
            _signal_group(process.pid, signum)
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    finally:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
