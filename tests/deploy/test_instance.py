"""The production instance (deploy/dagster.yaml) and the image's entrypoint commands, run here: `dagster-webserver`
and `dagster-daemon run` start against PostgreSQL (a fresh home's embedded server, reached over TCP as RDS is),
serve the asset graph, heartbeat, and stop cleanly on SIGTERM. The run launcher is the one part replaced (by the
default): EcsRunLauncher needs ECS; its configuration is checked against dagster-aws's schema instead."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers.homes import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
BIN = Path(sys.executable).parent
ASSETS = {"raw_transactions", "processed_transactions", "fraud_model", "fraud_flags", "fraud_report", "customer_alerts"}
STOP_WITHIN = 15.0


def image_commands() -> dict[str, list[str]]:
    """The entrypoint commands as the Dockerfile states them: CMD (the webserver) and the documented daemon and
    run-worker commands (`# daemon: [...]` lines)."""
    text = (REPO / "Dockerfile").read_text()
    commands = {"webserver": json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))}
    for name in ("daemon",):
        commands[name] = json.loads(re.search(rf"^#\s*{name}: (\[.*\])$", text, re.M).group(1))
    return commands


def image_entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT with its image path mapped to the repository's script."""
    text = (REPO / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    assert (
        entrypoint == ["/opt/dagster/entrypoint.sh"] and "COPY deploy/entrypoint.sh /opt/dagster/entrypoint.sh" in text
    )
    return [str(REPO / "deploy" / "entrypoint.sh")]


def test_the_image_runs_the_documented_entrypoints():
    commands = image_commands()
    assert commands["webserver"] == ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]
    assert commands["daemon"] == ["dagster-daemon", "run", "-w", "workspace.yaml"]


def test_the_run_launcher_config_is_valid_for_ecs_run_launcher():
    from dagster._config import process_config
    from dagster._config.field import resolve_to_config_type
    from dagster_aws.ecs import EcsRunLauncher

    launcher = yaml.safe_load(DEPLOY_YAML.read_text())["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    env = {name: "x" for name in launcher["config"]["env_vars"]}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        result = process_config(resolve_to_config_type(EcsRunLauncher.config_type()), launcher["config"])
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    assert result.success, [error.message for error in result.errors]
    config = result.value
    assert config["use_current_ecs_task_config"] is True and config["include_sidecars"] is False
    assert config["secrets_tag"] is None  # no Secrets Manager tag scan at each launch
    assert {"cpu", "memory"} <= set(config["run_resources"])


def test_the_run_queue_matches_the_local_instance():
    from assets.instance import POOL_LIMIT, TAG_LIMITS

    config = yaml.safe_load(DEPLOY_YAML.read_text())
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == TAG_LIMITS
    assert config["concurrency"]["pools"]["default_limit"] == POOL_LIMIT
    assert config["telemetry"] == {"enabled": False}
    assert "postgres_url" not in config["storage"]["postgres"]  # no URL (so no password) written in the file


def instance_env(postgres, dagster_home: Path, sslmode: str) -> dict[str, str]:
    """The environment the image's task gets (DAGSTER_PG_*, libpq's TLS mode), pointed at the local server."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FRAUD_HOME": str(postgres["home"]),
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres["port"]),
        "DAGSTER_PG_USERNAME": postgres["username"],
        "DAGSTER_PG_PASSWORD": secrets.token_hex(8),  # any: the local server trusts local connections
        "DAGSTER_PG_DB": "dagster",
        "PGSSLMODE": sslmode,  # production: verify-full with the RDS CA bundle (Dockerfile)
    }


def local_dagster_home(tmp_path: Path) -> Path:
    """DAGSTER_HOME with deploy/dagster.yaml as is, but for the run launcher (the default one: no ECS here)."""
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    del config["run_launcher"]
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def wait_for(check, timeout: float, processes: list[subprocess.Popen], what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args[0]} exited with {process.returncode} while {what}"
        try:
            result = check()
            if result:
                return result
        except (OSError, AssertionError) as error:
            last = error
        time.sleep(1)
    raise AssertionError(f"timed out {what}: {last}")


def stop(process: subprocess.Popen) -> tuple[int, float]:
    """SIGTERM to the process group (as ECS stops a task); returns (exit code, seconds to exit)."""
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"{process.args[0]} did not stop within {STOP_WITHIN:.0f} s of SIGTERM") from None
    return code, time.monotonic() - started


def test_the_storage_follows_libpq_tls_mode(postgres, tmp_path):
    """PGSSLMODE reaches the instance's connections: `require` against a server without TLS is refused."""
    home = local_dagster_home(tmp_path)
    probe = "from dagster import DagsterInstance; DagsterInstance.get().get_runs_count()"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=instance_env(postgres, home, "require"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "server does not support SSL" in result.stderr


@pytest.mark.parametrize("sslmode", ["prefer"])
def test_webserver_and_daemon_serve_the_graph_and_stop_cleanly(postgres, tmp_path, sslmode):
    home = local_dagster_home(tmp_path)
    env = instance_env(postgres, home, sslmode)
    commands = image_commands()
    port = free_port()
    webserver_command = [str(port) if arg == "3000" else arg for arg in commands["webserver"]]
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("webserver", "daemon")}
    started = time.monotonic()
    processes = {
        name: subprocess.Popen(
            command, cwd=REPO, env=env, stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True
        )
        for name, command in (
            ("webserver", [*image_entrypoint(), *webserver_command]),
            ("daemon", [*image_entrypoint(), *commands["daemon"]]),
        )
    }
    try:
        nodes = wait_for(
            lambda: graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"],
            180,
            list(processes.values()),
            "waiting for the webserver's asset graph",
        )
        served = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert ASSETS <= served, served
        serving_after = time.monotonic() - started

        def daemons_healthy():
            statuses = graphql(
                port, "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
            )["instance"]["daemonHealth"]["allDaemonStatuses"]
            required = {s["daemonType"]: s["healthy"] for s in statuses if s["required"]}
            return required if required and all(required.values()) else None

        daemons = wait_for(daemons_healthy, 180, list(processes.values()), "waiting for the daemons' heartbeats")
        assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= set(daemons), daemons
    except BaseException:
        for name, log in logs.items():
            log.seek(0)
            print(f"--- {name} ---\n{log.read()[-6000:]}")
        raise
    finally:
        exits = {}
        for name, process in processes.items():
            if process.poll() is None:
                exits[name] = stop(process)
            else:
                exits[name] = (process.returncode, 0.0)
    # the storage really is the PostgreSQL database: the daemons' heartbeats are rows in it
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres["url"].set(drivername="postgresql+psycopg", database="dagster"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM daemon_heartbeats")).scalar() >= 3
    engine.dispose()
    for name, (code, _) in exits.items():
        logs[name].seek(0)
        output = logs[name].read()
        assert code == 0, f"{name} exited with {code} after SIGTERM:\n{output[-4000:]}"
        assert "Traceback" not in output, f"{name}:\n{output[-4000:]}"
    stopped = ", ".join(f"{name} {seconds:.1f} s" for name, (_, seconds) in exits.items())
    print(f"serving after {serving_after:.1f} s; stopped in {stopped}")


def test_the_local_instance_file_holds_no_database_password(postgres, tmp_path, monkeypatch):
    """assets/instance.py with a database URL that carries a password (the local server trusts local connections,
    so any password works): dagster.yaml names the variable, not the URL; the instance opens through the
    environment; the file is 0600 in a 0700 folder."""
    import stat

    from assets.instance import DATABASE_URL_VARIABLE, local_instance, prepare_instance
    from fraud.core.settings import Settings

    password = "pw-" + secrets.token_hex(8)
    url = postgres["url"].set(password=password).render_as_string(hide_password=False)
    settings = Settings(home=tmp_path / "home", database_url=url)
    monkeypatch.delenv(DATABASE_URL_VARIABLE, raising=False)
    home = prepare_instance(settings)
    written = (home / "dagster.yaml").read_text()
    assert password not in written and "postgresql" not in written  # no URL at all
    assert yaml.safe_load(written)["storage"]["postgres"]["postgres_url"] == {"env": DATABASE_URL_VARIABLE}
    assert password in os.environ[DATABASE_URL_VARIABLE]  # the process carries it, for what it starts
    assert stat.S_IMODE((home / "dagster.yaml").stat().st_mode) == 0o600 and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert local_instance(settings).get_runs_count() == 0  # the instance opens through the environment
    # the embedded server's own URL has no password: written as it is, so a bare `dagster` command can open it
    plain_url = postgres["url"].render_as_string(hide_password=False)
    plain = prepare_instance(Settings(home=tmp_path / "plain", database_url=plain_url))
    assert isinstance(yaml.safe_load((plain / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_url"], str)
