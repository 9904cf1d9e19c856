"""`fraud ui`: `dg dev` over the workspace, and a Ctrl-C that stops the whole process group within seconds even
when its processes ignore the polite signals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.api import wait_healthy
from fraud.app.ui import STOP_SECONDS, dev_command, stop_group
from fraud.core.settings import REPO_ROOT
from tests.helpers.homes import free_port, make_home


def test_dev_command_is_dg_dev_on_the_workspace():
    command = dev_command(3123)
    assert Path(command[0]).name == "dg" and command[1] == "dev"
    assert command[command.index("-w") + 1] == str(REPO_ROOT / "workspace.yaml")
    assert command[command.index("-h") + 1] == "127.0.0.1" and command[command.index("-p") + 1] == "3123"
    assert Path(command[0]).exists(), "dagster-dg-cli is not installed (pyproject.toml pins it)"


def test_stop_group_kills_a_group_that_ignores_sigint_and_sigterm():
    # a leader and a child that both ignore SIGINT and SIGTERM, as a wedged server would
    process = subprocess.Popen(
        ["sh", "-c", "trap '' INT TERM; sh -c \"trap '' INT TERM; sleep 300\" & sleep 300"], start_new_session=True
    )
    time.sleep(0.5)
    group = psutil.Process(process.pid).children(recursive=True)
    started = time.monotonic()
    stop_group(process)
    assert time.monotonic() - started < STOP_SECONDS + 1
    time.sleep(0.2)
    assert not [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_ctrl_c_stops_fraud_ui_within_seconds():
    """The real thing: `fraud ui` up and serving, then SIGINT as a terminal's Ctrl-C sends it."""
    home, port = make_home("fraud-ui-stop-"), free_port()
    log = home / "ui.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "fraud.app.cli", "ui", "--port", str(port)],
            env={**os.environ, "FRAUD_HOME": str(home)},
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}", process, timeout=300, path="/server_info", interval=1, log=log)
            started_processes = psutil.Process(process.pid).children(recursive=True)
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
            stopped = time.monotonic() - started
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            from fraud.db.engine import stop_embedded

            stop_embedded(home / "pg")
    assert stopped < STOP_SECONDS + 3, f"stopped in {stopped:.1f} s"
    assert not [p for p in started_processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert "superseded" not in log.read_text()  # dg dev, not the deprecated `dagster dev`
