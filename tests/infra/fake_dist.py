"""A dist/ as `make package` leaves it, in miniature: tiny files in place of the real zips, with manifests written
by the packager's own Manifest class (so the program's reader is tested against what the packager writes),
built in milliseconds instead of a packaging run."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from fraud.app.packaging import (
    FUNCTIONS,
    GLUE_LIBRARY,
    GLUE_SCRIPT_ARTIFACT,
    GLUE_WHEELS,
    LAMBDA,
    FunctionBuild,
    Manifest,
    WheelFile,
)

# the Glue job's wheel set, in miniature: two tiny files named as wheels
FAKE_WHEELS = {
    "dagster-pipes": ("1.13.27", "py3-none-any"),
    "psycopg-binary": ("3.3.9", "cp311-cp311-manylinux_2_17_x86_64"),
}


def _tiny_zip(path: Path, entries: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path


def write_fake_dist(folder: Path, needs_newer_glibc: dict[str, str] | None = None) -> Path:
    """Every artifact the stack uploads, each a few bytes, with its manifest; `needs_newer_glibc` marks the scorer
    as failing the glibc audit. Returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in FUNCTIONS.items():
        handler = f"lambdas/{name}/handler.py"
        zip_path = _tiny_zip(
            folder / f"{spec.artifact}.zip", {handler: "def handler(event, context):\n    return {}\n"}
        )
        too_new = (needs_newer_glibc or {}) if name == "scorer" else {}
        build = FunctionBuild.of(
            spec, LAMBDA, unzipped_bytes=64, files=1, distributions={}, glibc_required="2.27", needs_newer_glibc=too_new
        )
        Manifest.of_file(spec.artifact, "lambda", zip_path, "fake", {}, function=build).write()
    library = _tiny_zip(folder / f"{GLUE_LIBRARY}.zip", {"fraud/__init__.py": '"""fake"""\n'})
    Manifest.of_file(GLUE_LIBRARY, "glue-library", library, "fake", {}).write()
    script = folder / "process_transactions.py"
    script.write_text("print('the Glue job')\n")
    Manifest.of_file(GLUE_SCRIPT_ARTIFACT, "glue-script", script, "fake", {}).write()
    _fake_wheel_set(folder)
    return folder


def _fake_wheel_set(folder: Path) -> None:
    """dist/glue-wheels/: a requirements.txt and a tiny zip per wheel, with the manifest the packager writes."""
    (folder / GLUE_WHEELS.name).mkdir(exist_ok=True)
    wheels = []
    for name, (version, tags) in FAKE_WHEELS.items():
        path = _tiny_zip(folder / GLUE_WHEELS.name / f"{name.replace('-', '_')}-{version}-{tags}.whl", {"x.py": ""})
        data = path.read_bytes()
        relative = f"{GLUE_WHEELS.name}/{path.name}"
        wheels.append(WheelFile(name, version, relative, hashlib.sha256(data).hexdigest(), len(data)))
    requirements = folder / GLUE_WHEELS.name / "requirements.txt"
    requirements.write_text("".join(f"{w.name}=={w.version}\n" for w in wheels))
    manifest = Manifest.of_file(GLUE_WHEELS.name, "glue-wheels", requirements, "fake", {}, wheels=wheels)
    manifest.folder, manifest.path = folder, f"{GLUE_WHEELS.name}/{requirements.name}"
    manifest.write()


def write_fake_image_context(folder: Path) -> Path:
    """A build context for the Dagster image as the repository has it, in miniature: a Dockerfile, the instance
    config and one module. Returns `folder`."""
    (folder / "deploy").mkdir(parents=True, exist_ok=True)
    (folder / "fraud").mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /app\n")
    (folder / "deploy" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (folder / "fraud" / "__init__.py").write_text('"""fake"""\n')
    return folder


def write_fake_ca_bundle(path: Path) -> Path:
    """A PEM file in the RDS CA bundle's place (deploy/rds-ca/global-bundle.pem); its bytes are never parsed."""
    path.write_text("-----BEGIN CERTIFICATE-----\nZmFrZSBSRFMgQ0E=\n-----END CERTIFICATE-----\n")
    return path
