"""The container image, built and run here without any registry: the Dockerfile on a Debian 12 base made with
debootstrap (tests/deploy/image_base.py), built with `buildah bud --isolation chroot` from the wheelhouse, and its
webserver entrypoint run with `buildah run --isolation chroot` (the host's network) against the embedded PostgreSQL,
with the image's own production dagster.yaml (EcsRunLauncher included: loading it needs no AWS call)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from fraud.app.packaging import build_wheelhouse
from tests.deploy.image_base import ensure_base
from tests.deploy.test_instance import ASSETS, graphql, image_commands, wait_for
from tests.helpers.figures import figure
from tests.helpers.homes import free_port

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/fraud-dagster:test"
ENTRYPOINT = ["/opt/dagster/entrypoint.sh"]
BUILD_BUDGET = 8 * 60  # seconds: beyond this the image build is too slow for CI (tell the lead)


def _tools_missing() -> str | None:
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} is not installed (make test installs it)"
    return None


def _buildah_runs_here(base: str) -> None:
    """Skip (with buildah's own error) if buildah cannot run a container on this machine at all."""
    container = subprocess.run(["buildah", "from", base], capture_output=True, text=True)
    if container.returncode != 0:
        pytest.skip(f"buildah cannot create a container here: {container.stderr.strip()}")
    name = container.stdout.strip()
    try:
        probe = subprocess.run(
            ["buildah", "run", "--isolation", "chroot", name, "--", "python3", "-c", "print(1)"],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or probe.stdout.strip() != "1":
            pytest.skip(f"buildah cannot run a container here: {probe.stderr.strip()}")
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


@pytest.fixture(scope="module")
def image():
    missing = _tools_missing()
    if missing:
        pytest.skip(missing)
    base = ensure_base()
    _buildah_runs_here(base)
    build_wheelhouse(REPO / "dist")  # pip inside the build cannot reach an index: it installs from these wheels
    subprocess.run(["buildah", "rmi", "-f", IMAGE], capture_output=True)
    started = time.monotonic()
    build = subprocess.run(
        ["buildah", "bud", "--isolation", "chroot", "--build-arg", f"BASE={base}", "--build-arg", "REQUIRE_RDS_CA=0"]
        + ["-t", IMAGE, "-f", "Dockerfile", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    size = json.loads(
        subprocess.run(["buildah", "inspect", "--type", "image", IMAGE], capture_output=True, text=True).stdout
    )
    layers = size.get("OCIv1", {}).get("rootfs", {}).get("diff_ids", [])
    figure("tests/deploy/test_image.py", f"image build {seconds:.0f} s (budget {BUILD_BUDGET} s), {len(layers)} layers")
    print(f"image build: {seconds:.0f} s")
    yield {"name": IMAGE, "build_seconds": seconds}
    subprocess.run(["buildah", "rmi", "-f", IMAGE], capture_output=True)  # ~3 GB; the cached base stays


def test_the_image_builds_within_the_ci_budget(image):
    assert image["build_seconds"] < BUILD_BUDGET, f"image build took {image['build_seconds']:.0f} s"


def test_the_image_is_non_root_and_carries_no_secret(image):
    config = json.loads(
        subprocess.run(["buildah", "inspect", "--type", "image", image["name"]], capture_output=True, text=True).stdout
    )["OCIv1"]["config"]
    assert config["User"] == "dagster"
    assert config["Cmd"] == image_commands()["webserver"]
    assert config["Entrypoint"] == ENTRYPOINT
    assert "3000/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert not any("PASSWORD" in key or "SECRET" in key for key in env), env
    assert env["PGSSLMODE"] == "verify-full" and env["DAGSTER_HOME"] == "/opt/dagster/home"


def test_the_image_serves_the_asset_graph(image, postgres, tmp_path, moto_endpoint):
    """The image's ENTRYPOINT and CMD (port aside: 3000 may be taken on a shared machine) with the image's
    dagster.yaml, against a server holding only the platform's database, as RDS does. The EcsRunLauncher looks
    its run-worker task definition up when the instance loads it: ECS is a moto server holding the definition the
    Pulumi program registers (family in DAGSTER_RUN_TASK_DEFINITION, container `run`)."""
    import boto3

    family = "fraud-test-dagster-run"
    boto3.client(
        "ecs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).register_task_definition(family=family, containerDefinitions=[{"name": "run", "image": IMAGE, "memory": 8192}])
    container = subprocess.run(["buildah", "from", image["name"]], check=True, capture_output=True, text=True)
    name = container.stdout.strip()
    port = free_port()
    command = [str(port) if arg == "3000" else arg for arg in image_commands()["webserver"]]
    env = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres["port"]),
        "DAGSTER_PG_USERNAME": postgres["username"],
        "DAGSTER_PG_PASSWORD": secrets.token_hex(8),  # any: the local server trusts local connections
        "PGSSLMODE": "prefer",  # the local server has no TLS (the image's default is verify-full)
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_ECS": moto_endpoint,  # boto3's per-service endpoint: only ECS goes to moto
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DAGSTER_RUN_TASK_DEFINITION": family,
    }
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    log = open(tmp_path / "image-webserver.log", "w+")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        # buildah run takes no ENTRYPOINT: the command names it, as ECS runs it (it creates the dagster database)
        ["buildah", "run", "--isolation", "chroot", "--network", "host", *flags, name, "--", *ENTRYPOINT, *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        info = wait_for(
            lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).read()),
            240,
            [process],
            "waiting for the image's webserver",
        )
        assert "dagster_webserver_version" in info, info
        nodes = graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
        assert ASSETS <= {"/".join(node["assetKey"]["path"]) for node in nodes}
        launcher = graphql(port, "{ instance { runLauncher { name } } }")["instance"]["runLauncher"]
        assert launcher["name"] == "EcsRunLauncher"  # the image's production dagster.yaml, as is
    except BaseException:
        log.seek(0)
        print(log.read()[-6000:])
        raise
    finally:
        if process.poll() is None:
            # as ECS stops a container: SIGTERM to the container's process (buildah run waits for it and exits
            # with its code), not to buildah itself
            for child in psutil.Process(process.pid).children(recursive=True):
                try:
                    if "dagster-webserver" in " ".join(child.cmdline()):
                        child.send_signal(signal.SIGTERM)
                except (psutil.ZombieProcess, psutil.NoSuchProcess):
                    continue  # a helper that has exited (a zombie until buildah reaps it) has no command line
            try:
                code = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                code = None
        else:
            code = process.returncode
        subprocess.run(["buildah", "rm", name], capture_output=True)
        log.seek(0)
        output = log.read()
        log.close()
    # Stopped within 15 s of SIGTERM, nothing left serving. Its exit status is not asserted: under buildah's chroot
    # isolation the webserver dies of the signal ("subprocess exited on killed", buildah exits 1) where on the host
    # it exits 0 (test_instance.py); not yet understood (deploy/README.md).
    assert code is not None, f"the image's webserver did not stop within 15 s of SIGTERM:\n{output[-4000:]}"
    figure("tests/deploy/test_image.py", f"image webserver: buildah run exit {code} after SIGTERM")
    time.sleep(1)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
