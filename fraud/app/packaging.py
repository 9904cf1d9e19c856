"""The packaging step: builds the Lambda deployment zips and the Glue job's library zip into `dist/`.

    python -m fraud.app.packaging [--function generator|scorer] [--target lambda|host] [--dist DIR] [--force]
    (or `fraud package`)

Each Lambda zip holds `lambdas/<name>/`, the `fraud/` package and the third-party distributions its handler
imports, built for one `Target`:

- `LAMBDA` (the default, what `pulumi up` deploys): the `python3.12` runtime on Amazon Linux 2023 (glibc 2.34,
  x86_64). The third-party distributions are the same names and versions as installed in this virtualenv
  (so pyproject's pins stay the single source of truth), each fetched as a CPython 3.12 wheel with
  `pip download` (cached in `dist/.cache/wheels/`) and unpacked. This machine has no Python 3.12, so that zip
  ships sources only: see `compile_tree`.
- `HOST` (for the local cold-start test): this interpreter and this machine's glibc, with the distributions
  copied file by file from the virtualenv (their RECORD) and bytecode precompiled. It goes to `dist/host/`.

Every build is audited, not assumed: each distribution's wheel tags must fit the target's CPython (or be
abi3 / pure Python), and every shared object's GLIBC symbol versions are compared with the target's glibc.
The result goes into the manifest next to the zip, `lambda-<name>.json`.

Zips are reproducible (sorted entries, fixed timestamps) and cached by a content hash of everything that
goes into them (the target included), so a rebuild only happens when a source file or a distribution changes.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST_DIR = REPO_ROOT / "dist"
CACHE_DIR = DIST_DIR / ".cache"  # staged distributions and downloaded wheels, shared by every dist dir
WHEEL_CACHE_DIR = CACHE_DIR / "wheels"
PACKAGER_VERSION = "2"  # bump when the layout or pruning rules change: invalidates every cached zip

# AWS Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code and layers, unzipped
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # zipped, uploaded in the API call; larger zips go through S3


@dataclass(frozen=True)
class Target:
    """What a zip is built for: the interpreter and OS image that will import it."""

    name: str
    runtime: str
    python: tuple[int, int]
    machine: str
    os_image: str
    glibc: tuple[int, int]  # of the OS image: shared objects needing newer symbols fail to load
    from_wheels: bool  # fetch the target's wheels of the installed versions, or copy this virtualenv's files

    @property
    def precompile(self) -> bool:
        """compileall writes bytecode for the interpreter running it: only useful when that is the target's."""
        return self.python == sys.version_info[:2]

    @property
    def cpython(self) -> str:
        return "cp%d%d" % self.python

    def output_dir(self, dist_dir: Path) -> Path:
        """The deployable build goes to `dist/` itself, any other next to it in a folder of its own."""
        return dist_dir if self == LAMBDA else dist_dir / self.name


class PackagingError(RuntimeError):
    pass


def _host_glibc() -> tuple[int, int]:
    """This machine's glibc; (0, 0) without one (e.g. macOS), where any Linux shared object counts as too new
    for a host build, while the lambda target builds as anywhere."""
    library, version = platform.libc_ver()
    if library != "glibc":
        return 0, 0
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# The python3.12+ managed runtimes run on Amazon Linux 2023 (glibc 2.34); python3.11 on Amazon Linux 2
# (glibc 2.26) is too old for numpy 2.4, ml_dtypes 0.6 and ai-edge-litert 2.3, which need 2.27.
LAMBDA = Target(
    name="lambda",
    runtime="python3.12",
    python=(3, 12),
    machine="x86_64",
    os_image="Amazon Linux 2023",
    glibc=(2, 34),
    from_wheels=True,
)
HOST = Target(
    name="host",
    runtime="python%d.%d" % sys.version_info[:2],
    python=sys.version_info[:2],
    machine=platform.machine(),
    os_image="this machine",
    glibc=_host_glibc(),
    from_wheels=False,
)
TARGETS = {target.name: target for target in (LAMBDA, HOST)}


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
    "scorer": FunctionSpec(
        "scorer",
        ("ai-edge-litert", "numpy", "pandas", "SQLAlchemy", "psycopg[binary]", "pydantic-settings", "tenacity"),
        forbidden=("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "tensorboard"),
    ),
}

# Files no handler needs on Lambda: test suites, type stubs, C headers and static libraries (for building
# against a package), and LiteRT's NPU compiler plugins, WebGPU accelerator, AOT and model tools (Lambda has
# neither an NPU nor a GPU; the CPU interpreter does not load them).
PRUNED_PARTS = {"tests", "__pycache__"}
PRUNED_SUFFIXES = (".pyc", ".pyi", ".h", ".c", ".pxd", ".pyx", ".a")
PRUNED_PREFIXES = (
    "ai_edge_litert/vendors/",
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "ai_edge_litert/aot/",
    "ai_edge_litert/tools/",
)

# what the project's packages consist of (pyproject's package data); editor backups and stray files stay out
PROJECT_SUFFIXES = {".py", ".j2", ".ini", ".mako"}

# the Glue job ships the same domain library; Glue 5.0 is Python 3.11
GLUE_LIBRARY_ZIP = "glue-fraud-lib.zip"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)")
WHEEL_TAG = re.compile(r"^Tag:\s*(\S+)\s*$", re.MULTILINE)
MANYLINUX_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}  # PEP 513/571/599
MANYLINUX_TAG = re.compile(r"^manylinux_(\d+)_(\d+)_")  # PEP 600


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
    target: str = "lambda"  # a `TARGETS` key
    os_image: str = ""
    precompiled: bool = False  # ships bytecode for the runtime's Python (else sources only)

    @property
    def runtime_compatible(self) -> bool:
        return not self.needs_newer_glibc and not self.wheel_tag_problems

    @property
    def within_lambda_limits(self) -> bool:
        return self.unzipped_bytes <= LAMBDA_UNZIPPED_LIMIT

    def to_json(self) -> str:
        data = asdict(self) | {
            "runtime_compatible": self.runtime_compatible,
            "within_lambda_limits": self.within_lambda_limits,
        }
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text())
        data.pop("runtime_compatible", None)
        data.pop("within_lambda_limits", None)
        return cls(**data)


# ---- what goes in -----------------------------------------------------------------------------------------


def resolve_distributions(requirements: tuple[str, ...], target: Target = LAMBDA) -> list[metadata.Distribution]:
    """The requirements and their dependencies as installed, with markers evaluated for the target's Python."""
    environment = {
        "python_version": "%d.%d" % target.python,
        "python_full_version": "%d.%d.0" % target.python,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": target.machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
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
                pending.extend(
                    (dependency, e) for e in extras or [""] if dependency.marker.evaluate(environment | {"extra": e})
                )
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


@dataclass(frozen=True)
class ThirdParty:
    """One distribution as it goes into a zip: the installed one, or the target's wheel of the same version."""

    name: str
    version: str
    installed: metadata.Distribution
    wheel: Path | None  # None: the installed files are copied
    fingerprint: str  # SHA-256 of the wheel, or of the installed RECORD (which lists the hash of every file)
    wheel_metadata: str  # the WHEEL file: the tags the audit checks

    @property
    def key(self) -> str:
        return f"{canonicalize_name(self.name)}-{self.version}"


def third_party(dist: metadata.Distribution, target: Target) -> ThirdParty:
    name, version = dist.metadata["Name"], dist.version
    if not target.from_wheels:
        record = (dist.read_text("RECORD") or "").encode()
        return ThirdParty(name, version, dist, None, hashlib.sha256(record).hexdigest(), dist.read_text("WHEEL") or "")
    wheel = fetch_wheel(name, version, target)
    return ThirdParty(name, version, dist, wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(), wheel_metadata(wheel))


def pip_platforms(target: Target) -> list[str]:
    """Every manylinux tag the target's glibc satisfies, newest first (the order pip prefers them in): pip
    does not expand `manylinux_2_34` to the older tags by itself when given --platform."""
    major, minor = target.glibc
    newest_first = [f"manylinux_{major}_{m}_{target.machine}" for m in range(minor, 16, -1)]
    return newest_first + [f"manylinux2014_{target.machine}"]


def fetch_wheel(name: str, version: str, target: Target, cache: Path = WHEEL_CACHE_DIR) -> Path:
    """The target's wheel of `name==version`, downloaded once into its own cache folder and reused."""
    folder = (
        cache
        / f"{target.cpython}-{target.machine}-glibc{target.glibc[0]}.{target.glibc[1]}"
        / f"{canonicalize_name(name)}-{version}"
    )
    cached = sorted(folder.glob("*.whl"))
    if cached:
        return cached[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"{name}=={version}",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "%d.%d" % target.python,
        "--implementation",
        "cp",
        "--abi",
        target.cpython,
        "--abi",
        "abi3",
        "--abi",
        "none",
        *[flag for tag in pip_platforms(target) for flag in ("--platform", tag)],
        "--dest",
        str(partial),
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    wheels = sorted(partial.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        shutil.rmtree(partial)
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise PackagingError(
            f"{name}=={version}: no {target.cpython} wheel for {target.os_image} "
            f"(pip download exited {result.returncode}, {len(wheels)} wheels): {tail}"
        )
    return _publish(partial, folder) / wheels[0].name


def _publish(partial: Path, folder: Path) -> Path:
    """Rename a finished folder into place (atomic: a half-written one is never reused); if a concurrent build
    got there first, keep its folder."""
    try:
        partial.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        shutil.rmtree(partial)
    return folder


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)]
        return archive.read(names[0]).decode() if len(names) == 1 else ""


def installed_path(wheel_entry: str) -> str | None:
    """Where a wheel entry lands relative to site-packages: `<name>.data/purelib|platlib/…` at the root,
    the rest of `<name>.data/` (scripts, headers, data) outside site-packages, so nowhere in the zip."""
    path = PurePosixPath(wheel_entry)
    if path.is_absolute() or ".." in path.parts:
        raise PackagingError(f"wheel entry outside its root: {wheel_entry}")
    if not path.parts[0].endswith(".data"):
        return wheel_entry
    if len(path.parts) > 2 and path.parts[1] in ("purelib", "platlib"):
        return PurePosixPath(*path.parts[2:]).as_posix()
    return None


def _pruned(arcname: str) -> bool:
    parts = arcname.split("/")
    return (
        bool(PRUNED_PARTS.intersection(parts[:-1]))
        or arcname.endswith(PRUNED_SUFFIXES)
        or arcname.startswith(PRUNED_PREFIXES)
    )


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


def unpack_wheel(wheel: Path, into: Path) -> None:
    """The wheel's site-packages files, pruned, with the executable bit the wheel records."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            arcname = None if info.is_dir() else installed_path(info.filename)
            if arcname is None or _pruned(arcname):
                continue
            destination = into / arcname
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(archive.read(info))
            destination.chmod(0o755 if (info.external_attr >> 16) & 0o111 else 0o644)


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


def _tag_glibc(platform_tag: str) -> tuple[int, int] | None:
    legacy = platform_tag.split("_", 1)[0]
    if legacy in MANYLINUX_GLIBC:
        return MANYLINUX_GLIBC[legacy]
    match = MANYLINUX_TAG.match(platform_tag)
    return (int(match[1]), int(match[2])) if match else None


def wheel_tag_problem(wheel: str, target: Target) -> str | None:
    """Why a wheel (the text of its WHEEL file) cannot run on the target, or None: pure Python, or built for
    the target's CPython (or the stable ABI of an older one) on Linux for its machine and glibc."""
    tags = [tag for line in WHEEL_TAG.findall(wheel) for tag in parse_tag(line)]
    if not tags:
        return "no WHEEL tags (not installed from a wheel)"
    for tag in tags:
        pure = re.fullmatch(r"py3(\d*)", tag.interpreter)
        if pure and tag.platform == "any" and tag.abi == "none" and int(pure[1] or 0) <= target.python[1]:
            return None  # pure Python
        stable_abi = (
            tag.abi == "abi3"
            and tag.interpreter.startswith("cp3")
            and int(tag.interpreter[3:] or 0) <= target.python[1]
        )
        same_abi = tag.interpreter == target.cpython and tag.abi in (target.cpython, "none")
        tag_glibc = _tag_glibc(tag.platform)
        for_this_os = tag.platform.endswith("_" + target.machine) and (
            tag.platform == f"linux_{target.machine}" or (tag_glibc is not None and tag_glibc <= target.glibc)
        )
        if (same_abi or stable_abi) and for_this_os:
            return None
    return "tags " + ", ".join(sorted(str(t) for t in tags))


def glibc_needed(data: bytes) -> tuple[int, int] | None:
    """Highest GLIBC_x.y symbol version named in a shared object (its version-needs strings), or None."""
    versions = {(int(major), int(minor)) for major, minor in GLIBC_VERSION.findall(data)}
    return max(versions) if versions else None


def content_hash(spec: FunctionSpec, target: Target, dists: list[ThirdParty], sources: list[tuple[Path, str]]) -> str:
    digest = hashlib.sha256(f"{PACKAGER_VERSION}|{target}|{spec}".encode())
    for source, arcname in sources:
        digest.update(arcname.encode() + b"\0" + source.read_bytes())
    for dist in dists:
        digest.update(f"{dist.name}=={dist.version}|{dist.fingerprint}".encode())
    return digest.hexdigest()


# ---- building ---------------------------------------------------------------------------------------------


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
    return _publish(partial, folder)


def tree_files(roots: list[Path]) -> dict[str, Path]:
    """Path in the zip -> file, over folders laid on top of each other (namespace packages merge)."""
    return {path.relative_to(root).as_posix(): path for root in roots for path in root.rglob("*") if path.is_file()}


@contextmanager
def replaced_atomically(target: Path) -> Iterator[Path]:
    """A fresh temporary file beside `target`, renamed onto it when the block succeeds and removed when it fails.
    Readers never see half a file, and concurrent builds of the same (reproducible) file each finish whole:
    a fixed temporary name would have one build rename the other's file away."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)  # as any build output, not mkstemp's 0600
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def zip_into(files: dict[str, Path], out: Path | io.BytesIO) -> None:
    """A reproducible zip: sorted entries, fixed timestamps, only the executable bit kept. Level 1 deflate:
    the zip goes to S3 (its size counts against no Lambda limit) and level 6 takes three times as long."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for arcname in sorted(files):
            path = files[arcname]
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=1)


def write_zip(files: dict[str, Path], target: Path) -> None:
    with replaced_atomically(target) as tmp:
        zip_into(files, tmp)


def glibc_audit(files: dict[str, Path], target: Target) -> tuple[tuple[int, int], dict[str, str]]:
    """The highest GLIBC version any shared object asks for, and the objects above the target's glibc."""
    highest, too_new = (0, 0), {}
    for arcname, path in files.items():
        if ".so" not in path.name:
            continue
        needed = glibc_needed(path.read_bytes())
        if needed is None:
            continue
        highest = max(highest, needed)
        if needed > target.glibc:
            too_new[arcname] = "%d.%d" % needed
    return highest, too_new


def build_function(name: str, dist_dir: Path = DIST_DIR, force: bool = False, target: Target = LAMBDA) -> Manifest:
    """Build (or reuse) `lambda-<name>.zip` and its manifest for `target` in its folder of `dist_dir`; raise
    when it breaks a hard rule."""
    spec = FUNCTIONS[name]
    installed = resolve_distributions(spec.requirements, target)
    forbidden = {canonicalize_name(f) for f in spec.forbidden}
    banned = [d.metadata["Name"] for d in installed if canonicalize_name(d.metadata["Name"]) in forbidden]
    if banned:
        raise PackagingError(f"{name}: {', '.join(banned)} must not be packaged (pulled in by {spec.requirements})")
    dists = [third_party(d, target) for d in installed]
    sources = project_files(name)
    digest = content_hash(spec, target, dists, sources)
    out_dir = target.output_dir(dist_dir)
    zip_path, manifest_path = out_dir / spec.zip_name, out_dir / f"lambda-{name}.json"
    if not force and zip_path.exists() and manifest_path.exists():
        cached = Manifest.read(manifest_path)
        if cached.content_hash == digest:
            return cached
    cache = CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"lambda-{name}-", dir=cache) as tmp:
        project = Path(tmp)
        for source, arcname in sources:
            (project / arcname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / arcname)
        compile_tree(project, target)
        files = tree_files([staged_distribution(d, target, cache) for d in dists] + [project])
        highest, needs_newer = glibc_audit(files, target)
        unzipped = sum(path.stat().st_size for path in files.values())
        write_zip(files, zip_path)
    manifest = Manifest(
        function=name,
        handler=spec.handler,
        runtime=target.runtime,
        zip_path=str(zip_path),
        content_hash=digest,
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        files=len(files),
        distributions={d.name: d.version for d in dists},
        glibc_required="%d.%d" % highest,
        glibc_runtime="%d.%d" % target.glibc,
        needs_newer_glibc=needs_newer,
        wheel_tag_problems={d.name: p for d in dists if (p := wheel_tag_problem(d.wheel_metadata, target))},
        target=target.name,
        os_image=target.os_image,
        precompiled=target.precompile,
    )
    with replaced_atomically(manifest_path) as tmp:
        tmp.write_text(manifest.to_json())
    if not manifest.within_lambda_limits:
        raise PackagingError(f"{name}: {manifest.unzipped_bytes / 2**20:.0f} MiB unzipped exceeds Lambda's 250 MiB")
    return manifest


def build_glue_library(dist_dir: Path = DIST_DIR) -> Path:
    """`dist/glue-fraud-lib.zip`: the `fraud/` package for the Glue job's `--extra-py-files` (rewritten only on change)."""
    files = {arcname: source for source, arcname in project_files("generator") if arcname.startswith("fraud/")}
    target = dist_dir / GLUE_LIBRARY_ZIP
    dist_dir.mkdir(parents=True, exist_ok=True)
    candidate = io.BytesIO()  # the fraud/ package: a few hundred KiB
    zip_into(files, candidate)
    if not (target.exists() and target.read_bytes() == candidate.getvalue()):  # unchanged: keep it and its mtime
        with replaced_atomically(target) as tmp:
            tmp.write_bytes(candidate.getvalue())
    return target


def build_all(dist_dir: Path = DIST_DIR, force: bool = False, target: Target = LAMBDA) -> dict[str, Manifest]:
    manifests = {name: build_function(name, dist_dir, force, target) for name in FUNCTIONS}
    build_glue_library(dist_dir)
    return manifests


def describe(manifest: Manifest) -> str:
    line = (
        f"{manifest.zip_path}: {manifest.zipped_bytes / 2**20:.1f} MiB zipped, "
        f"{manifest.unzipped_bytes / 2**20:.1f} MiB unzipped (limit 250), {manifest.files} files, "
        f"handler {manifest.handler}, {manifest.runtime} ({manifest.os_image}), needs glibc "
        f"{manifest.glibc_required} of {manifest.glibc_runtime}"
        + ("" if manifest.precompiled else ", sources only (no bytecode)")
    )
    if not manifest.runtime_compatible:
        worst = sorted(manifest.needs_newer_glibc.items(), key=lambda kv: kv[0])[:3]
        line += (
            f"\n  WARNING: not loadable on {manifest.runtime} ({manifest.os_image}, "
            f"glibc {manifest.glibc_runtime}): "
            + ", ".join(f"{path} needs GLIBC_{version}" for path, version in worst)
            + (f" (+{len(manifest.needs_newer_glibc) - 3} more)" if len(manifest.needs_newer_glibc) > 3 else "")
            + "".join(f"; {name}: {problem}" for name, problem in manifest.wheel_tag_problems.items())
        )
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", choices=sorted(FUNCTIONS), action="append", help="default: every function")
    parser.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default=LAMBDA.name,
        help=f"lambda: {LAMBDA.runtime} on {LAMBDA.os_image} (deployed); host: this interpreter, "
        "into DIST/host (for local tests)",
    )
    parser.add_argument("--dist", type=Path, default=DIST_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even when the content hash is unchanged")
    args = parser.parse_args(argv)
    for name in args.function or sorted(FUNCTIONS):
        print(describe(build_function(name, args.dist, args.force, TARGETS[args.target])))
    print(f"{build_glue_library(args.dist)}: the fraud/ package for the Glue job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
