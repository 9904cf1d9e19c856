"""Wheel sets: folders of wheels that install with `pip install --no-index <folder>/*.whl` (the files themselves,
no index), for places that cannot reach a package index.

- `glue-wheels/` (`build_glue_wheels`): the Glue job's third-party distributions (`GLUE_WHEELS` in targets.py)
  as CPython 3.11 manylinux x86_64 wheels for Glue 5.0, at the versions installed here, with their dependencies,
  without what Glue provides. The program uploads each wheel to the artifacts bucket under its SHA-256 and lists
  their S3 URIs in the job's `--additional-python-modules`, installed with `--no-index` (infra/etl_job.py).
- `wheelhouse/` (`build_wheelhouse`): the container image's: the project's own wheel (`pip wheel . --no-deps`)
  and a wheel of every pinned runtime dependency (not the `dev`/`infra` extras) for this machine's Python and
  platform, so that `pip install --no-index dist/wheelhouse/*.whl` installs the project in a build that has no
  network.

Each folder holds its wheels and a `requirements.txt` (`name==version` a line, the set's whole closure); its
manifest (`<name>.manifest.json` in dist/) names that file and lists every wheel with its SHA-256. Wheels come
from the cache in dist/.cache/wheels/ (downloaded once), and a folder is rewritten only when its set changes.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from fraud.app.packaging.audit import wheel_tag_problem
from fraud.app.packaging.files import replaced_atomically, write_if_changed
from fraud.app.packaging.manifests import Manifest, WheelFile, manifest_path, source_hashes
from fraud.app.packaging.sources import installable_files
from fraud.app.packaging.targets import (
    CACHE_DIR,
    DIST_DIR,
    GLUE,
    GLUE_WHEELS,
    HOST,
    PACKAGER_VERSION,
    REPO_ROOT,
    PackagingError,
    Target,
    WheelSetSpec,
)
from fraud.app.packaging.wheels import build_wheel, resolve_distributions, third_party, wheel_or_build

REQUIREMENTS_FILE = "requirements.txt"
PROJECT = "fraud-platform"
WHEELHOUSE = WheelSetSpec("wheelhouse", (PROJECT,))
# this machine, as a target that takes wheels: the platform the container image's Python runs on
WHEELHOUSE_TARGET = Target(
    name="wheelhouse",
    runtime=HOST.runtime,
    python=HOST.python,
    machine=HOST.machine,
    os_image="this machine",
    glibc=HOST.glibc,
    from_wheels=True,
)


def _digest(*parts: object) -> str:
    """The cache key of a set: the packager's version and everything that decides its content."""
    return hashlib.sha256("|".join(map(str, (PACKAGER_VERSION, *parts))).encode()).hexdigest()


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _place(source: Path, target: Path, sha256: str) -> None:
    """`target` becomes a copy of `source` (a hard link when the cache is on the same file system), unless it
    already is one."""
    if target.is_file() and target.stat().st_size == source.stat().st_size and _sha256(target) == sha256:
        return
    with replaced_atomically(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _write_set(
    dist_dir: Path, spec: WheelSetSpec, kind: str, wheels: list[WheelFile], sources: dict[str, Path], digest: str
) -> Manifest:
    """dist/<name>/ holding exactly `wheels` (copied from `sources`, by wheel file name) and requirements.txt,
    and its manifest."""
    folder = dist_dir / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    names = {Path(wheel.path).name for wheel in wheels}
    for stale in folder.glob("*.whl"):
        if stale.name not in names:
            stale.unlink()
    for wheel in wheels:
        _place(sources[Path(wheel.path).name], folder / Path(wheel.path).name, wheel.sha256)
    requirements = "".join(f"{wheel.name}=={wheel.version}\n" for wheel in wheels).encode()
    write_if_changed(requirements, folder / REQUIREMENTS_FILE)
    manifest = Manifest(
        name=spec.name,
        kind=kind,
        path=f"{spec.name}/{REQUIREMENTS_FILE}",
        sha256=hashlib.sha256(requirements).hexdigest(),
        bytes=len(requirements),
        content_hash=digest,
        sources={},
        folder=dist_dir,
        wheels=wheels,
    )
    manifest.write()
    return manifest


def _cached(dist_dir: Path, spec: WheelSetSpec, digest: str) -> Manifest | None:
    """The manifest of an earlier build of the same set, if its wheels are all still there, unchanged in size."""
    try:
        manifest = Manifest.read(manifest_path(dist_dir, spec.name))
    except (OSError, ValueError):
        return None
    if manifest.content_hash != digest or manifest.wheels is None or not manifest.file.is_file():
        return None
    for wheel in manifest.wheels:
        path = dist_dir / wheel.path
        if not path.is_file() or path.stat().st_size != wheel.bytes:
            return None
    return manifest


def glue_distributions(spec: WheelSetSpec = GLUE_WHEELS, target: Target = GLUE) -> list[metadata.Distribution]:
    """The set's requirements and their dependencies as installed here, without what the runtime provides."""
    provided = {canonicalize_name(name) for name in spec.provided}
    return [
        dist
        for dist in resolve_distributions(spec.requirements, target)
        if canonicalize_name(dist.metadata["Name"]) not in provided
    ]


def build_glue_wheels(dist_dir: Path = DIST_DIR, force: bool = False) -> Manifest:
    """dist/glue-wheels/ and its manifest: the Glue job's third-party wheels for Glue 5.0 (see the module's
    docstring); raise when a wheel does not fit CPython 3.11 on Amazon Linux 2023."""
    dists = [third_party(dist, GLUE) for dist in glue_distributions()]  # fetches each wheel once
    misfits = {d.name: problem for d in dists if (problem := wheel_tag_problem(d.wheel_metadata, GLUE))}
    if misfits:
        raise PackagingError(f"{GLUE_WHEELS.name}: not installable on {GLUE.runtime}: {misfits}")
    digest = _digest(GLUE, GLUE_WHEELS, *(f"{d.name}=={d.version}|{d.fingerprint}" for d in dists))
    if not force and (cached := _cached(dist_dir, GLUE_WHEELS, digest)):
        return cached
    wheels = [
        WheelFile(d.name, d.version, f"{GLUE_WHEELS.name}/{d.wheel.name}", d.fingerprint, d.wheel.stat().st_size)
        for d in dists
        if d.wheel is not None
    ]
    sources = {d.wheel.name: d.wheel for d in dists if d.wheel is not None}
    return _write_set(dist_dir, GLUE_WHEELS, "glue-wheels", wheels, sources, digest)


def project_wheel(cache: Path = CACHE_DIR) -> Path:
    """The project's own wheel (`pip wheel . --no-deps`), built once per content of its sources."""
    hashes = source_hashes(installable_files())
    digest = _digest(PROJECT, sys.version_info[:2], *(f"{path}:{sha256}" for path, sha256 in sorted(hashes.items())))
    folder = cache / "project" / f"{PROJECT}-{digest[:16]}"
    cached = sorted(folder.glob("*.whl"))
    return cached[0] if cached else build_wheel(str(REPO_ROOT), folder)


def build_wheelhouse(dist_dir: Path = DIST_DIR, force: bool = False) -> Manifest:
    """dist/wheelhouse/ and its manifest: the project's wheel and one wheel of every pinned runtime dependency,
    for this machine's Python and platform (see the module's docstring). Downloads each dependency's wheel once
    (into dist/.cache/wheels/); one that publishes no wheel is built here from its source archive."""
    if platform.system() != "Linux" or WHEELHOUSE_TARGET.glibc == (0, 0):
        raise PackagingError("the wheelhouse is built for a glibc Linux image: run on Linux (glibc)")
    try:
        project = metadata.distribution(PROJECT)
    except metadata.PackageNotFoundError:
        raise PackagingError(f"{PROJECT} is not installed in {sys.prefix}: pip install -e .") from None
    installed = resolve_distributions(tuple(project.requires or ()), WHEELHOUSE_TARGET)  # extras' markers: skipped
    files: list[tuple[str, str, Path]] = [(PROJECT, project.version, project_wheel())]
    files += [
        (dist.metadata["Name"], dist.version, wheel_or_build(dist.metadata["Name"], dist.version, WHEELHOUSE_TARGET))
        for dist in installed
        if canonicalize_name(dist.metadata["Name"]) != PROJECT
    ]
    wheels = [
        WheelFile(name, version, f"{WHEELHOUSE.name}/{path.name}", _sha256(path), path.stat().st_size)
        for name, version, path in files
    ]
    digest = _digest(WHEELHOUSE_TARGET, *(f"{w.name}=={w.version}|{w.sha256}" for w in wheels))
    if not force and (cached := _cached(dist_dir, WHEELHOUSE, digest)):
        return cached
    return _write_set(dist_dir, WHEELHOUSE, "wheelhouse", wheels, {path.name: path for _, _, path in files}, digest)
