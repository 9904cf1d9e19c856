"""The builds: a Lambda zip per function, the Glue job's library zip and its script (its wheels: wheelsets.py),
each written into dist/ with its manifest, and rebuilt only when what goes into it changes."""

from __future__ import annotations

import compileall
import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from fraud.app.packaging.audit import glibc_audit, wheel_tag_problem
from fraud.app.packaging.files import publish_folder, tree_files, write_if_changed, write_zip, zip_bytes
from fraud.app.packaging.manifests import FunctionBuild, Manifest, manifest_path, source_hashes
from fraud.app.packaging.sources import domain_files, glue_script, project_files
from fraud.app.packaging.targets import (
    CACHE_DIR,
    DIST_DIR,
    FUNCTIONS,
    LAMBDA,
    PACKAGER_VERSION,
    PackagingError,
    Target,
    dotted,
)
from fraud.app.packaging.wheels import ThirdParty, distribution_files, resolve_distributions, third_party, unpack_wheel
from fraud.app.packaging.wheelsets import build_glue_wheels

# the Glue job ships the same domain library; Glue 5.0 is Python 3.11
GLUE_LIBRARY = "glue-fraud-lib"
GLUE_SCRIPT_ARTIFACT = "glue-script"


def compile_tree(root: Path, target: Target) -> None:
    """Bytecode for every module under `root`, as Lambda will see it under /var/task.

    /var/task is read-only: without bytecode every cold start recompiles every module it imports.
    Unchecked-hash .pyc files are used without comparing source timestamps (the zip has fixed ones).
    compileall can only write bytecode for the Python running it (3.11 here), which a 3.12 runtime ignores:
    the python3.12 zip ships sources only, and Lambda compiles what it imports at each cold start (in memory).
    Compiling it needs a Python 3.12 build container, which this machine does not have."""
    if not target.precompile:
        return
    compileall.compile_dir(
        root,
        quiet=2,
        workers=1,
        stripdir=str(root),
        prependdir="/var/task",
        invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def staged_distribution(dist: ThirdParty, target: Target, cache: Path) -> Path:
    """The distribution's pruned files (plus bytecode when the target takes it), staged once per version,
    fingerprint and target in `cache`."""
    folder = cache / f"{dist.key}-{dist.fingerprint[:12]}-{target.name}-v{PACKAGER_VERSION}"
    if folder.exists():
        return folder
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=cache))
    if dist.wheel is not None:
        unpack_wheel(dist.wheel, partial)
    else:
        for source, arcname in distribution_files(dist.installed):
            (partial / arcname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, partial / arcname)
    compile_tree(partial, target)
    return publish_folder(partial, folder)


def content_hash(*parts: object, sources: dict[str, str], dists: Sequence[ThirdParty] = ()) -> str:
    """The cache key of a build: the packager's version, what it is built as, its sources and distributions."""
    digest = hashlib.sha256("|".join(map(str, (PACKAGER_VERSION, *parts))).encode())
    for path, sha256 in sources.items():
        digest.update(f"{path}\0{sha256}\n".encode())
    for dist in dists:
        digest.update(f"{dist.name}=={dist.version}|{dist.fingerprint}\n".encode())
    return digest.hexdigest()


def _cached(folder: Path, name: str, digest: str) -> Manifest | None:
    """The manifest of an earlier build of the same inputs, if it and its file are still there."""
    path = manifest_path(folder, name)
    try:
        manifest = Manifest.read(path)
    except (OSError, ValueError):  # none yet, or written by another packager version
        return None
    return manifest if manifest.content_hash == digest and manifest.file.exists() else None


def build_function(name: str, dist_dir: Path = DIST_DIR, force: bool = False, target: Target = LAMBDA) -> Manifest:
    """Build (or reuse) `lambda-<name>.zip` and its manifest for `target` in its folder of `dist_dir`; raise
    when it breaks a hard rule."""
    spec = FUNCTIONS[name]
    installed = resolve_distributions(spec.requirements, target, spec.omitted)
    forbidden = {canonicalize_name(f) for f in spec.forbidden}
    banned = [d.metadata["Name"] for d in installed if canonicalize_name(d.metadata["Name"]) in forbidden]
    if banned:
        raise PackagingError(f"{name}: {', '.join(banned)} must not be packaged (pulled in by {spec.requirements})")
    dists = [third_party(d, target) for d in installed]
    sources = project_files(name)
    hashes = source_hashes(sources)
    digest = content_hash(target, spec, sources=hashes, dists=dists)
    out_dir = target.output_dir(dist_dir)
    if not force and (cached := _cached(out_dir, spec.artifact, digest)):
        return cached
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{spec.artifact}.zip"
    with tempfile.TemporaryDirectory(prefix=f"{spec.artifact}-", dir=CACHE_DIR) as tmp:
        project = Path(tmp)
        for source, arcname in sources:
            (project / arcname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / arcname)
        compile_tree(project, target)
        files = tree_files([staged_distribution(d, target, CACHE_DIR) for d in dists] + [project])
        highest, needs_newer = glibc_audit(files, target)
        unzipped = sum(path.stat().st_size for path in files.values())
        write_zip(files, zip_path)
    build = FunctionBuild.of(
        spec,
        target,
        unzipped_bytes=unzipped,
        files=len(files),
        distributions={d.name: d.version for d in dists},
        glibc_required=dotted(highest),
        needs_newer_glibc=needs_newer,
        wheel_tag_problems={d.name: p for d in dists if (p := wheel_tag_problem(d.wheel_metadata, target))},
    )
    manifest = Manifest.of_file(spec.artifact, "lambda", zip_path, digest, hashes, function=build)
    manifest.write()
    if not build.within_lambda_limits:
        raise PackagingError(f"{name}: {unzipped / 2**20:.0f} MiB unzipped exceeds Lambda's 250 MiB")
    return manifest


def _build_file(name: str, kind: str, file: Path, sources: list[tuple[Path, str]], data: bytes) -> Manifest:
    """A small artifact made whole in memory: written only when its bytes change (so its mtime stays)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    write_if_changed(data, file)
    hashes = source_hashes(sources)
    manifest = Manifest.of_file(name, kind, file, content_hash(kind, sources=hashes), hashes)
    manifest.write()
    return manifest


def build_glue_library(dist_dir: Path = DIST_DIR) -> Manifest:
    """`glue-fraud-lib.zip`: the domain package (no fraud/app) for the Glue job's `--extra-py-files`."""
    sources = domain_files()
    data = zip_bytes({arcname: source for source, arcname in sources})
    return _build_file(GLUE_LIBRARY, "glue-library", dist_dir / f"{GLUE_LIBRARY}.zip", sources, data)


def build_glue_script(dist_dir: Path = DIST_DIR) -> Manifest:
    """A copy of glue/process_transactions.py: the program uploads what was packaged, not the working tree."""
    sources = glue_script()
    [(script, _)] = sources
    return _build_file(GLUE_SCRIPT_ARTIFACT, "glue-script", dist_dir / script.name, sources, script.read_bytes())


def build_all(
    dist_dir: Path = DIST_DIR, force: bool = False, target: Target = LAMBDA, functions: Iterable[str] | None = None
) -> dict[str, Manifest]:
    """Every artifact the stack uploads (the Lambda zips for `target`, all or only `functions`, the Glue job's
    library, script and wheels), by name."""
    manifests = [build_function(name, dist_dir, force, target) for name in sorted(functions or FUNCTIONS)]
    manifests += [build_glue_library(dist_dir), build_glue_script(dist_dir), build_glue_wheels(dist_dir, force)]
    return {manifest.name: manifest for manifest in manifests}
