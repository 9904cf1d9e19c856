"""The files the stack uploads, as the packaging step left them in dist/.

`make package` (fraud/app/packaging/) writes each artifact with a manifest beside it, `<name>.manifest.json`:
the file, its SHA-256, the repository files it was made from and, for a Lambda zip, its handler, runtime and
audit; for the Glue job's wheel set (`glue-wheels/`), every wheel with its SHA-256. This module reads the
manifests and nothing else of the packager: building is a step before `pulumi preview`/`up`, not part of the
program. When a manifest or its file is missing, or no longer matches the file or its sources, the program stops
before registering anything, with one message that says to run `make package`.

The folder is `$FRAUD_DIST_DIR`, else the stack's `distDir`, else `dist/`; relative paths start at the repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi

MANIFEST_FORMAT = 1  # what fraud/app/packaging/manifests.py writes; another format is read as "rebuild"
MANIFEST_SUFFIX = ".manifest.json"
DIST_ENV = "FRAUD_DIST_DIR"
# the artifacts' names, as the packager gives them
LAMBDAS = {"generator": "lambda-generator", "scorer": "lambda-scorer"}
GLUE_LIBRARY, GLUE_SCRIPT, GLUE_WHEELS = "glue-fraud-lib", "glue-script", "glue-wheels"


class ArtifactsError(pulumi.RunError):
    """A RunError: Pulumi shows its message alone, without a traceback of the program."""


class _Unusable(Exception):
    """Why one artifact cannot be deployed as it is."""


@dataclass(frozen=True)
class Artifact:
    name: str
    path: Path
    sha256: str  # hex digest of the file, checked against it: names the S3 object, so a change is a new object


@dataclass(frozen=True)
class Bundle(Artifact):
    """A Lambda zip and what it was built for."""

    handler: str
    runtime: str
    glibc_runtime: str
    needs_newer_glibc: dict[str, str]  # zip path -> GLIBC version above the runtime's
    wheel_tag_problems: dict[str, str]

    @property
    def runtime_compatible(self) -> bool:
        return not self.needs_newer_glibc and not self.wheel_tag_problems

    @property
    def code_sha256(self) -> str:  # what Lambda reports as CodeSha256: base64 of the zip's SHA-256
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


@dataclass(frozen=True)
class Wheel(Artifact):
    """One wheel of a wheel set: `name` is its distribution's, `path.name` the wheel's file name (pip needs it)."""

    version: str


@dataclass(frozen=True)
class Artifacts:
    generator: Bundle
    scorer: Bundle
    glue_library: Artifact
    glue_script: Artifact
    glue_wheels: tuple[Wheel, ...]  # the Glue job's third-party distributions, installed with no index


def dist_dir(configured: str | None, repo_root: Path) -> Path:
    """Where the artifacts are: the environment variable (one run, e.g. CI) over the stack's `distDir`."""
    return repo_root / (os.environ.get(DIST_ENV) or configured or "dist")


def _shown(path: Path, repo_root: Path) -> str:
    return path.relative_to(repo_root).as_posix() if path.is_relative_to(repo_root) else str(path)


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _checked(dist: Path, name: str, kind: str, repo_root: Path) -> tuple[Path, dict]:
    """The artifact's file and manifest, once the manifest is readable and both still match what was built."""
    manifest_path = dist / f"{name}{MANIFEST_SUFFIX}"
    shown = _shown(manifest_path, repo_root)
    if not manifest_path.is_file():
        raise _Unusable(f"{shown} missing")
    try:
        manifest = json.loads(manifest_path.read_text())
        usable = manifest.get("format") == MANIFEST_FORMAT and manifest.get("kind") == kind
        path, size, sha256 = dist / manifest["path"], manifest["bytes"], manifest["sha256"]
        sources: dict[str, str] = manifest["sources"]
    except (ValueError, KeyError, TypeError, AttributeError):
        usable = False
    if not usable:
        raise _Unusable(f"{shown} is not a format {MANIFEST_FORMAT} {kind} manifest (from another packager version?)")
    if not path.is_file():
        raise _Unusable(f"{_shown(path, repo_root)} missing")
    if path.stat().st_size != size or _sha256(path) != sha256:
        raise _Unusable(f"{_shown(path, repo_root)} does not match {shown}")
    changed = [source for source, digest in sorted(sources.items()) if _source_digest(repo_root / source) != digest]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise _Unusable(f"{_shown(path, repo_root)} is stale: {changed[0]}{more} changed since it was built")
    return path, manifest


def _source_digest(path: Path) -> str | None:
    return _sha256(path) if path.is_file() else None


def _bundle(path: Path, manifest: dict) -> Bundle:
    function = manifest["function"]
    if function["target"] != "lambda":  # e.g. distDir pointed at dist/host
        raise _Unusable(f"{path.name} is built for the {function['target']} target, not the Lambda runtime")
    return Bundle(
        name=manifest["name"],
        path=path,
        sha256=manifest["sha256"],
        handler=function["handler"],
        runtime=function["runtime"],
        glibc_runtime=function["glibc_runtime"],
        needs_newer_glibc=function["needs_newer_glibc"],
        wheel_tag_problems=function["wheel_tag_problems"],
    )


def _wheels(dist: Path, manifest: dict, repo_root: Path) -> tuple[Wheel, ...]:
    """Every wheel of a wheel set's manifest, each checked against its SHA-256."""
    wheels = []
    for entry in manifest["wheels"]:
        path = dist / entry["path"]
        if not path.is_file():
            raise _Unusable(f"{_shown(path, repo_root)} missing")
        if path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
            raise _Unusable(f"{_shown(path, repo_root)} does not match {manifest['name']}{MANIFEST_SUFFIX}")
        wheels.append(Wheel(name=entry["name"], path=path, sha256=entry["sha256"], version=entry["version"]))
    if not wheels:
        raise _Unusable(f"{manifest['name']}{MANIFEST_SUFFIX} lists no wheels")
    return tuple(wheels)


def read_artifacts(dist: Path, repo_root: Path) -> Artifacts:
    """Every artifact the stack uploads, checked; one ArtifactsError naming every problem otherwise."""
    problems: list[str] = []

    def read(name: str, kind: str) -> Artifact | tuple[Wheel, ...] | None:
        try:
            path, manifest = _checked(dist, name, kind, repo_root)
            if kind == "lambda":
                return _bundle(path, manifest)
            if kind == "glue-wheels":
                return _wheels(dist, manifest, repo_root)
            return Artifact(name=manifest["name"], path=path, sha256=manifest["sha256"])
        except _Unusable as problem:
            problems.append(str(problem))
        except (KeyError, TypeError):
            problems.append(f"{_shown(dist / (name + MANIFEST_SUFFIX), repo_root)} is incomplete")
        return None

    found = {
        "generator": read(LAMBDAS["generator"], "lambda"),
        "scorer": read(LAMBDAS["scorer"], "lambda"),
        "glue_library": read(GLUE_LIBRARY, "glue-library"),
        "glue_script": read(GLUE_SCRIPT, "glue-script"),
        "glue_wheels": read(GLUE_WHEELS, "glue-wheels"),
    }
    if problems:
        raise ArtifactsError(f"run `make package` first ({'; '.join(problems)})")
    return Artifacts(**found)


RDS_CA_BUNDLE = "deploy/rds-ca/global-bundle.pem"  # where the operator puts it (deploy/README.md), for the image too


def read_ca_bundle(configured: str | None, repo_root: Path) -> Artifact:
    """The RDS CA bundle the Lambda layer and the Glue job ship (the image copies the same file): the stack's
    `rdsCaBundle`, else deploy/rds-ca/global-bundle.pem. Without it no component could verify the database's
    certificate, so the program stops before registering anything."""
    path = repo_root / (configured or RDS_CA_BUNDLE)
    if not path.is_file() or b"BEGIN CERTIFICATE" not in path.read_bytes():
        raise ArtifactsError(
            f"{_shown(path, repo_root)} is missing or holds no certificate: download the RDS CA bundle first "
            "(deploy/README.md)"
        )
    return Artifact(name="rds-ca-bundle", path=path, sha256=_sha256(path))
