"""The packaging step: builds the Lambda deployment zips and the Glue job's library zip into `dist/`.

    python -m lambdas.package [--function generator|scorer] [--dist DIR] [--force]     (or `fraud package`)

Each Lambda zip holds `lambdas/<name>/`, the `fraud/` package and the third-party distributions its handler
imports, for the Lambda runtime in `TARGET` (Linux x86_64, CPython 3.11). The distributions are copied from
the project's own virtualenv, file by file from their RECORD, instead of being downloaded: that needs no
network, and the copied bytes are exactly the versions the test suite ran against. Because that virtualenv
is not guaranteed to hold wheels built for the Lambda platform, every build is audited, not assumed:
each distribution's wheel tags must be CPython 3.11 / x86_64 (or pure Python), and every shared object's
GLIBC symbol versions are compared with the runtime's glibc. The result goes into `dist/lambda-<name>.json`.

Zips are reproducible (sorted entries, fixed timestamps) and cached by a content hash of everything that
goes into them, so a rebuild only happens when a source file or an installed distribution changes.
"""
from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST_DIR = REPO_ROOT / "dist"
CACHE_DIR = DIST_DIR / ".cache"  # third-party distributions staged once per installed version, for every dist dir
PACKAGER_VERSION = "1"  # bump when the layout or pruning rules change: invalidates every cached zip

# AWS Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code and layers, unzipped
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # zipped, uploaded in the API call; larger zips go through S3


@dataclass(frozen=True)
class LambdaTarget:
    runtime: str
    python: tuple[int, int]
    machine: str
    os_image: str
    glibc: tuple[int, int]  # of the runtime's OS image: shared objects needing newer symbols fail to load


# The python3.11 managed runtime runs on Amazon Linux 2 (glibc 2.26); python3.12+ run on Amazon Linux 2023.
TARGET = LambdaTarget(runtime="python3.11", python=(3, 11), machine="x86_64", os_image="Amazon Linux 2", glibc=(2, 26))


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    requirements: tuple[str, ...]  # what the handler imports; their dependencies are resolved from metadata
    forbidden: tuple[str, ...] = ()  # distributions that must never end up in the zip

    @property
    def handler(self) -> str:
        return f"lambdas.{self.name}.handler.handler"

    @property
    def zip_name(self) -> str:
        return f"lambda-{self.name}.zip"


# boto3 is not shipped: the managed runtime has it (fraud/ imports it lazily, only in aws mode), and its 23 MiB
# would take the scorer far past its size goal.
FUNCTIONS: dict[str, FunctionSpec] = {
    "generator": FunctionSpec("generator", ("numpy", "pandas", "Faker", "pydantic-settings")),
    "scorer": FunctionSpec("scorer", ("ai-edge-litert", "numpy", "pandas", "SQLAlchemy", "psycopg[binary]",
                                      "pydantic-settings", "tenacity"),
                           forbidden=("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "tensorboard")),
}

# Files no handler needs on Lambda: test suites, type stubs, C headers and static libraries (for building
# against a package), and LiteRT's NPU compiler plugins, WebGPU accelerator, AOT and model tools (Lambda has
# neither an NPU nor a GPU; the CPU interpreter does not load them).
PRUNED_PARTS = {"tests", "__pycache__"}
PRUNED_SUFFIXES = (".pyc", ".pyi", ".h", ".c", ".pxd", ".pyx", ".a")
PRUNED_PREFIXES = ("ai_edge_litert/vendors/", "ai_edge_litert/libLiteRtWebGpuAccelerator.so", "ai_edge_litert/aot/",
                   "ai_edge_litert/tools/")

# what the project's packages consist of (pyproject's package data); editor backups and stray files stay out
PROJECT_SUFFIXES = {".py", ".j2", ".ini", ".mako"}

# the Glue job ships the same domain library; Glue 5.0 is Python 3.11
GLUE_LIBRARY_ZIP = "glue-fraud-lib.zip"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)")
WHEEL_TAG = re.compile(r"^Tag:\s*(\S+)-(\S+)-(\S+)\s*$", re.MULTILINE)


@dataclass
class Manifest:
    function: str
    handler: str
    runtime: str
    zip_path: str
    content_hash: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    distributions: dict[str, str]  # name -> version
    glibc_required: str  # the highest GLIBC_x.y any shared object in the zip asks for
    glibc_runtime: str
    needs_newer_glibc: dict[str, str] = field(default_factory=dict)  # zip path -> GLIBC version, above the runtime's
    wheel_tag_problems: dict[str, str] = field(default_factory=dict)

    @property
    def runtime_compatible(self) -> bool:
        return not self.needs_newer_glibc and not self.wheel_tag_problems

    @property
    def within_lambda_limits(self) -> bool:
        return self.unzipped_bytes <= LAMBDA_UNZIPPED_LIMIT

    def to_json(self) -> str:
        data = asdict(self) | {"runtime_compatible": self.runtime_compatible,
                               "within_lambda_limits": self.within_lambda_limits}
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text())
        data.pop("runtime_compatible", None)
        data.pop("within_lambda_limits", None)
        return cls(**data)


class PackagingError(RuntimeError):
    pass


# ---- what goes in -----------------------------------------------------------------------------------------

def resolve_distributions(requirements: tuple[str, ...]) -> list[metadata.Distribution]:
    """The requirements and their dependencies as installed, with markers evaluated for the Lambda runtime."""
    environment = {"python_version": "%d.%d" % TARGET.python, "python_full_version": "%d.%d.0" % TARGET.python,
                   "sys_platform": "linux", "platform_system": "Linux", "platform_machine": TARGET.machine,
                   "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    found: dict[str, metadata.Distribution] = {}
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(environment | {"extra": extra}):
            continue
        key = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise PackagingError(f"{requirement.name} is not installed in {sys.prefix}") from None
        extras = sorted(requirement.extras)
        if key in found and not extras:
            continue
        found[key] = dist
        for text in dist.requires or []:
            dependency = Requirement(text)
            if dependency.marker is None:
                pending.append((dependency, ""))
            else:  # an extra's dependency applies only when that extra was asked for
                pending.extend((dependency, e) for e in extras or [""]
                               if dependency.marker.evaluate(environment | {"extra": e}))
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def _pruned(arcname: str) -> bool:
    parts = arcname.split("/")
    return (bool(PRUNED_PARTS.intersection(parts[:-1])) or arcname.endswith(PRUNED_SUFFIXES)
            or arcname.startswith(PRUNED_PREFIXES))


def distribution_files(dist: metadata.Distribution) -> list[tuple[Path, str]]:
    """(installed file, path in the zip) for every file the distribution's RECORD lists inside site-packages."""
    files = []
    for entry in dist.files or []:
        arcname = entry.as_posix()
        if arcname.startswith("../") or _pruned(arcname):  # console scripts live outside site-packages
            continue
        source = Path(dist.locate_file(entry))
        if source.is_file():
            files.append((source, arcname))
    return files


def project_files(function: str) -> list[tuple[Path, str]]:
    """The `fraud/` package (code, templates, migrations) and the handler's own folder."""
    roots = [REPO_ROOT / "fraud", REPO_ROOT / "lambdas" / function]
    files = [(REPO_ROOT / "lambdas" / "__init__.py", "lambdas/__init__.py")]
    for root in roots:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if path.is_file() and path.suffix in PROJECT_SUFFIXES and not _pruned(relative):
                files.append((path, relative))
    return files


def wheel_tag_problem(dist: metadata.Distribution) -> str | None:
    """Why the installed wheel cannot run on the target, or None (pure Python, or CPython 3.11 on x86_64)."""
    wheel = dist.read_text("WHEEL") or ""
    tags = WHEEL_TAG.findall(wheel)
    if not tags:
        return "no WHEEL tags (not installed from a wheel)"
    python = "cp%d%d" % TARGET.python
    for interpreter, abi, platform in tags:
        if platform == "any" and abi == "none" and interpreter.startswith("py"):
            return None  # pure Python
        stable_abi = abi == "abi3" and interpreter.startswith("cp3") and int(interpreter[3:] or 0) <= TARGET.python[1]
        if (interpreter == python or stable_abi) and platform.startswith(("manylinux", "linux")) \
                and platform.endswith(TARGET.machine):
            return None
    return "tags " + ", ".join("-".join(t) for t in tags)


def glibc_needed(data: bytes) -> tuple[int, int] | None:
    """Highest GLIBC_x.y symbol version named in a shared object (its version-needs strings), or None."""
    versions = {(int(major), int(minor)) for major, minor in GLIBC_VERSION.findall(data)}
    return max(versions) if versions else None


def content_hash(spec: FunctionSpec, dists: list[metadata.Distribution], sources: list[tuple[Path, str]]) -> str:
    digest = hashlib.sha256(f"{PACKAGER_VERSION}|{TARGET}|{spec}".encode())
    for source, arcname in sources:
        digest.update(arcname.encode() + b"\0" + source.read_bytes())
    for dist in dists:  # RECORD lists the hash of every installed file: a cheap fingerprint of the install
        digest.update(f"{dist.metadata['Name']}=={dist.version}".encode() + (dist.read_text("RECORD") or "").encode())
    return digest.hexdigest()


# ---- building ---------------------------------------------------------------------------------------------

def compile_tree(root: Path) -> None:
    """Bytecode for every module under `root`, as Lambda will see it under /var/task.

    /var/task is read-only: without bytecode every cold start recompiles every module it imports.
    Unchecked-hash .pyc files are used without comparing source timestamps (the zip has fixed ones)."""
    compileall.compile_dir(root, quiet=2, workers=1, stripdir=str(root), prependdir="/var/task",
                           invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)


def staged_distribution(dist: metadata.Distribution, cache: Path) -> Path:
    """The distribution's pruned files plus bytecode, staged once per installed version in `cache`."""
    record = hashlib.sha256((dist.read_text("RECORD") or "").encode()).hexdigest()[:12]
    folder = cache / f"{canonicalize_name(dist.metadata['Name'])}-{dist.version}-{record}-v{PACKAGER_VERSION}"
    if folder.exists():
        return folder
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=cache))
    for source, arcname in distribution_files(dist):
        (partial / arcname).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, partial / arcname)
    compile_tree(partial)
    partial.rename(folder)  # atomic: a half-staged folder is never reused
    return folder


def tree_files(roots: list[Path]) -> dict[str, Path]:
    """Path in the zip -> file, over folders laid on top of each other (namespace packages merge)."""
    return {path.relative_to(root).as_posix(): path for root in roots
            for path in root.rglob("*") if path.is_file()}


def write_zip(files: dict[str, Path], target: Path) -> None:
    """A reproducible zip: sorted entries, fixed timestamps, only the executable bit kept. Level 1 deflate:
    the zip goes to S3 (its size counts against no Lambda limit) and level 6 takes three times as long."""
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for arcname in sorted(files):
            path = files[arcname]
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=1)
    tmp.replace(target)


def glibc_audit(files: dict[str, Path]) -> tuple[tuple[int, int], dict[str, str]]:
    """The highest GLIBC version any shared object asks for, and the objects above the runtime's glibc."""
    highest, too_new = (0, 0), {}
    for arcname, path in files.items():
        if ".so" not in path.name:
            continue
        needed = glibc_needed(path.read_bytes())
        if needed is None:
            continue
        highest = max(highest, needed)
        if needed > TARGET.glibc:
            too_new[arcname] = "%d.%d" % needed
    return highest, too_new


def build_function(name: str, dist_dir: Path = DIST_DIR, force: bool = False) -> Manifest:
    """Build (or reuse) `dist/lambda-<name>.zip` and its manifest; raise when it breaks a hard rule."""
    spec = FUNCTIONS[name]
    dists = resolve_distributions(spec.requirements)
    forbidden = {canonicalize_name(f) for f in spec.forbidden}
    banned = [d.metadata["Name"] for d in dists if canonicalize_name(d.metadata["Name"]) in forbidden]
    if banned:
        raise PackagingError(f"{name}: {', '.join(banned)} must not be packaged (pulled in by {spec.requirements})")
    sources = project_files(name)
    digest = content_hash(spec, dists, sources)
    zip_path, manifest_path = dist_dir / spec.zip_name, dist_dir / f"lambda-{name}.json"
    if not force and zip_path.exists() and manifest_path.exists():
        cached = Manifest.read(manifest_path)
        if cached.content_hash == digest:
            return cached
    cache = CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    dist_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"lambda-{name}-", dir=cache) as tmp:
        project = Path(tmp)
        for source, arcname in sources:
            (project / arcname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / arcname)
        compile_tree(project)
        files = tree_files([staged_distribution(d, cache) for d in dists] + [project])
        highest, needs_newer = glibc_audit(files)
        unzipped = sum(path.stat().st_size for path in files.values())
        write_zip(files, zip_path)
    manifest = Manifest(
        function=name, handler=spec.handler, runtime=TARGET.runtime, zip_path=str(zip_path), content_hash=digest,
        zipped_bytes=zip_path.stat().st_size, unzipped_bytes=unzipped, files=len(files),
        distributions={d.metadata["Name"]: d.version for d in dists},
        glibc_required="%d.%d" % highest, glibc_runtime="%d.%d" % TARGET.glibc, needs_newer_glibc=needs_newer,
        wheel_tag_problems={d.metadata["Name"]: p for d in dists if (p := wheel_tag_problem(d))},
    )
    manifest_path.write_text(manifest.to_json())
    if not manifest.within_lambda_limits:
        raise PackagingError(f"{name}: {manifest.unzipped_bytes / 2**20:.0f} MiB unzipped exceeds Lambda's 250 MiB")
    return manifest


def build_glue_library(dist_dir: Path = DIST_DIR) -> Path:
    """`dist/glue-fraud-lib.zip`: the `fraud/` package for the Glue job's `--extra-py-files` (rewritten only on change)."""
    files = {arcname: source for source, arcname in project_files("generator") if arcname.startswith("fraud/")}
    target = dist_dir / GLUE_LIBRARY_ZIP
    dist_dir.mkdir(parents=True, exist_ok=True)
    candidate = dist_dir / (GLUE_LIBRARY_ZIP + ".new")
    write_zip(files, candidate)
    if target.exists() and target.read_bytes() == candidate.read_bytes():
        candidate.unlink()  # unchanged: keep the file (and its mtime) as it was
    else:
        candidate.replace(target)
    return target


def build_all(dist_dir: Path = DIST_DIR, force: bool = False) -> dict[str, Manifest]:
    manifests = {name: build_function(name, dist_dir, force) for name in FUNCTIONS}
    build_glue_library(dist_dir)
    return manifests


def describe(manifest: Manifest) -> str:
    line = (f"{manifest.zip_path}: {manifest.zipped_bytes / 2**20:.1f} MiB zipped, "
            f"{manifest.unzipped_bytes / 2**20:.1f} MiB unzipped (limit 250), {manifest.files} files, "
            f"handler {manifest.handler}, needs glibc {manifest.glibc_required}")
    if not manifest.runtime_compatible:
        worst = sorted(manifest.needs_newer_glibc.items(), key=lambda kv: kv[0])[:3]
        line += (f"\n  WARNING: not loadable on {manifest.runtime} ({TARGET.os_image}, glibc {manifest.glibc_runtime}): "
                 + ", ".join(f"{path} needs GLIBC_{version}" for path, version in worst)
                 + (f" (+{len(manifest.needs_newer_glibc) - 3} more)" if len(manifest.needs_newer_glibc) > 3 else "")
                 + "".join(f"; {name}: {problem}" for name, problem in manifest.wheel_tag_problems.items()))
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", choices=sorted(FUNCTIONS), action="append", help="default: every function")
    parser.add_argument("--dist", type=Path, default=DIST_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even when the content hash is unchanged")
    args = parser.parse_args(argv)
    for name in args.function or sorted(FUNCTIONS):
        print(describe(build_function(name, args.dist, args.force)))
    print(f"{build_glue_library(args.dist)}: the fraud/ package for the Glue job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
