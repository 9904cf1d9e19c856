"""`fraud ui` / `make ui`: `dagster dev` (webserver + daemon) on 127.0.0.1 over the local instance.

dagster dev runs in its own process group; Ctrl-C or SIGTERM here is forwarded to the whole group as SIGINT
(dagster dev's own clean shutdown), and whatever is left after a grace period is killed, so no webserver,
daemon or code-server process outlives the command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from rich.console import Console

from assets.instance import prepare_instance
from fraud.core.settings import REPO_ROOT, Settings

GRACE_SECONDS = 30


def dagster_dev_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]


def serve_ui(settings: Settings, port: int, console: Console) -> int:
    dagster_home = prepare_instance(settings)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FRAUD_HOME": str(settings.home)}
    process = subprocess.Popen(dagster_dev_command(port), env=env, cwd=REPO_ROOT, start_new_session=True)
    console.print(f"Dagster UI: [bold]http://127.0.0.1:{port}[/]  (instance in {dagster_home}; Ctrl-C to stop)")

    def stop(signum=None, frame=None) -> None:
        raise KeyboardInterrupt

    # explicit handlers: a process started in the background inherits an ignored SIGINT
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    except KeyboardInterrupt:
        console.print("stopping the Dagster UI…")
        _signal_group(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process.pid, signal.SIGKILL)  # stragglers of the group (code servers, run workers)
        process.wait()
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
