"""The manifests: one JSON file beside each artifact the stack uploads, `<name>.manifest.json`, saying what the
file is, its SHA-256 and what the Pulumi program needs to deploy it. The program reads these (infra/artifacts.py)
and never the packager itself; it refuses a dist/ whose files or sources no longer match them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fraud.app.packaging.files import write_if_changed
from fraud.app.packaging.targets import LAMBDA_UNZIPPED_LIMIT, FunctionSpec, Target, dotted

# Bump when a field infra/artifacts.py reads changes: the program then asks for a rebuild instead of misreading.
MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"

# what each kind of artifact is, for people reading `fraud package`'s output
KINDS = {
    "lambda": "a Lambda function's code",
    "glue-library": "the fraud/ package for the Glue job (--extra-py-files)",
    "glue-script": "the Glue job's script",
    "glue-wheels": "the Glue job's third-party wheels (--additional-python-modules, installed with --no-index)",
    "wheelhouse": "the project's wheels for the container image (pip install --no-index of its wheel files)",
}


def manifest_path(folder: Path, name: str) -> Path:
    return folder / f"{name}{MANIFEST_SUFFIX}"


def source_hashes(sources: list[tuple[Path, str]]) -> dict[str, str]:
    """Repository path -> SHA-256 of the files an artifact is made of: the program re-hashes them to tell a
    dist/ built before the last edit."""
    return {path: hashlib.sha256(file.read_bytes()).hexdigest() for file, path in sources}


@dataclass
class FunctionBuild:
    """What a Lambda zip was built for, and what the audit found in it."""

    name: str
    handler: str
    runtime: str
    target: str  # a `TARGETS` key
    os_image: str
    unzipped_bytes: int
    files: int
    distributions: dict[str, str]  # name -> version
    glibc_required: str  # the highest GLIBC_x.y any shared object in the zip asks for
    glibc_runtime: str
    needs_newer_glibc: dict[str, str] = field(default_factory=dict)  # zip path -> GLIBC version, above the runtime's
    wheel_tag_problems: dict[str, str] = field(default_factory=dict)
    precompiled: bool = False  # ships bytecode for the runtime's Python (else sources only)

    @classmethod
    def of(cls, spec: FunctionSpec, target: Target, **audit) -> FunctionBuild:
        """What `spec` built for `target` is: the rest (sizes, distributions, the audit's findings) from `audit`."""
        return cls(
            name=spec.name,
            handler=spec.handler,
            runtime=target.runtime,
            target=target.name,
            os_image=target.os_image,
            glibc_runtime=dotted(target.glibc),
            precompiled=target.precompile,
            **audit,
        )

    @property
    def runtime_compatible(self) -> bool:
        return not self.needs_newer_glibc and not self.wheel_tag_problems

    @property
    def within_lambda_limits(self) -> bool:
        return self.unzipped_bytes <= LAMBDA_UNZIPPED_LIMIT


@dataclass
class WheelFile:
    """One wheel of a wheel set, as the program uploads it (content-addressed by its SHA-256)."""

    name: str  # the distribution
    version: str
    path: str  # relative to the manifest's folder, e.g. glue-wheels/<wheel file name>
    sha256: str
    bytes: int


@dataclass
class Manifest:
    """One artifact the stack uploads."""

    name: str  # e.g. "lambda-scorer": the manifest is <name>.manifest.json
    kind: str  # a `KINDS` key
    path: str  # the artifact's file, relative to the manifest's folder
    sha256: str  # of that file (hex): names its S3 object; Lambda's CodeSha256 is the same digest in base64
    bytes: int
    content_hash: str  # of everything that went in (target and wheels included): the packager's cache key
    sources: dict[str, str]  # see source_hashes
    folder: Path = field(compare=False)  # where it was written or read from: not in the JSON, which is relative
    function: FunctionBuild | None = None  # for kind "lambda"
    format: int = MANIFEST_FORMAT
    wheels: list[WheelFile] | None = None  # for a wheel set: its file is the set's requirements.txt

    @classmethod
    def of_file(cls, name: str, kind: str, file: Path, content_hash: str, sources: dict[str, str], **extra) -> Manifest:
        data = file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        return cls(name, kind, file.name, digest, len(data), content_hash, sources, file.parent, **extra)

    @property
    def file(self) -> Path:
        return self.folder / self.path

    def to_json(self) -> str:
        data = asdict(self)
        del data["folder"]
        if self.wheels is None:  # the other artifacts' manifests stay as they were
            del data["wheels"]
        if self.function is not None:  # the audit's verdicts, spelled out for people and the program
            data["function"] |= {
                "runtime_compatible": self.function.runtime_compatible,
                "within_lambda_limits": self.function.within_lambda_limits,
            }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self) -> Path:
        """Beside its artifact."""
        path = manifest_path(self.folder, self.name)
        write_if_changed(self.to_json().encode(), path)
        return path

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at `path`; ValueError when it is not one this packager writes."""
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path}: not a format {MANIFEST_FORMAT} manifest")
        try:
            function = data.pop("function", None)
            if function is not None:
                function.pop("runtime_compatible", None)
                function.pop("within_lambda_limits", None)
                data["function"] = FunctionBuild(**function)
            if data.get("wheels") is not None:
                data["wheels"] = [WheelFile(**wheel) for wheel in data["wheels"]]
            return cls(**data, folder=path.parent)
        except (TypeError, AttributeError) as error:
            raise ValueError(f"{path}: {error}") from None


def describe(manifest: Manifest) -> str:
    """One line per artifact for `fraud package` (and a warning when a zip will not load on its runtime)."""
    build = manifest.function
    if manifest.wheels is not None:
        total = sum(wheel.bytes for wheel in manifest.wheels)
        return (
            f"{manifest.file.parent}/: {KINDS[manifest.kind]}, {len(manifest.wheels)} wheels, "
            f"{total / 2**20:.1f} MiB: "
            + ", ".join(f"{w.name}=={w.version}" for w in manifest.wheels[:12])
            + (f" (+{len(manifest.wheels) - 12} more)" if len(manifest.wheels) > 12 else "")
        )
    if build is None:
        return f"{manifest.file}: {KINDS[manifest.kind]}, {manifest.bytes / 2**10:.0f} KiB"
    line = (
        f"{manifest.file}: {manifest.bytes / 2**20:.1f} MiB zipped, "
        f"{build.unzipped_bytes / 2**20:.1f} MiB unzipped (limit 250), {build.files} files, "
        f"handler {build.handler}, {build.runtime} ({build.os_image}), needs glibc "
        f"{build.glibc_required} of {build.glibc_runtime}"
        + ("" if build.precompiled else ", sources only (no bytecode)")
    )
    if not build.runtime_compatible:
        worst = sorted(build.needs_newer_glibc.items())[:3]
        more = len(build.needs_newer_glibc) - len(worst)
        line += (
            f"\n  WARNING: not loadable on {build.runtime} ({build.os_image}, glibc {build.glibc_runtime}): "
            + ", ".join(f"{path} needs GLIBC_{version}" for path, version in worst)
            + (f" (+{more} more)" if more > 0 else "")
            + "".join(f"; {name}: {problem}" for name, problem in build.wheel_tag_problems.items())
        )
    return line
