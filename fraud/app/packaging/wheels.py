"""Third-party distributions: which ones a handler needs, at the versions installed here, and their files for a
target (the target's wheel of the same version, fetched once, or this virtualenv's own files)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fraud.app.packaging.files import publish_folder
from fraud.app.packaging.sources import pruned
from fraud.app.packaging.targets import LAMBDA, WHEEL_CACHE_DIR, PackagingError, Target, dotted


def resolve_distributions(
    requirements: tuple[str, ...], target: Target = LAMBDA, omitted: tuple[str, ...] = ()
) -> list[metadata.Distribution]:
    """The requirements and their dependencies as installed, with markers evaluated for the target's Python;
    `omitted` distributions (and what only they need) are left out."""
    environment = {
        "python_version": dotted(target.python),
        "python_full_version": dotted(target.python) + ".0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": target.machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    found: dict[str, metadata.Distribution] = {}
    skipped = {canonicalize_name(name) for name in omitted}
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(environment | {"extra": extra}):
            continue
        key = canonicalize_name(requirement.name)
        if key in skipped:
            continue
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


def wheel_cache_folder(name: str, version: str, target: Target, cache: Path = WHEEL_CACHE_DIR) -> Path:
    """Where the target's wheel of `name==version` is kept once fetched (or built)."""
    platform_folder = f"{target.cpython}-{target.machine}-glibc{dotted(target.glibc)}"
    return cache / platform_folder / f"{canonicalize_name(name)}-{version}"


def fetch_wheel(name: str, version: str, target: Target, cache: Path = WHEEL_CACHE_DIR) -> Path:
    """The target's wheel of `name==version`, downloaded once into its own cache folder and reused."""
    folder = wheel_cache_folder(name, version, target, cache)
    cached = sorted(folder.glob("*.whl"))
    if cached:
        return cached[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    command = [
        *(sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps", "--only-binary=:all:"),
        *("--python-version", dotted(target.python), "--implementation", "cp"),
        *("--abi", target.cpython, "--abi", "abi3", "--abi", "none"),
        *[flag for tag in pip_platforms(target) for flag in ("--platform", tag)],
        *("--dest", str(partial), "--disable-pip-version-check", "--no-input", "--progress-bar", "off"),
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
    return publish_folder(partial, folder) / wheels[0].name


def build_wheel(requirement: str, folder: Path, timeout: int = 1800) -> Path:
    """`pip wheel <requirement> --no-deps` for this interpreter, into `folder` (published whole): for the
    project itself (a path) and for a distribution that publishes no wheel (only a source archive)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    command = [
        *(sys.executable, "-m", "pip", "wheel", requirement, "--no-deps", "--wheel-dir", str(partial)),
        *("--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--quiet"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    wheels = sorted(partial.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        shutil.rmtree(partial)
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise PackagingError(f"pip wheel {requirement} exited {result.returncode} ({len(wheels)} wheels): {tail}")
    return publish_folder(partial, folder) / wheels[0].name


def wheel_or_build(name: str, version: str, target: Target, cache: Path = WHEEL_CACHE_DIR) -> Path:
    """The target's published wheel of `name==version`, else one built here from its source archive (this
    interpreter builds for its own platform: only for a target that is this machine)."""
    folder = wheel_cache_folder(name, version, target, cache)
    cached = sorted(folder.glob("*.whl"))
    if cached:
        return cached[0]
    try:
        return fetch_wheel(name, version, target, cache)
    except PackagingError:
        return build_wheel(f"{name}=={version}", folder)


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


def distribution_files(dist: metadata.Distribution) -> list[tuple[Path, str]]:
    """(installed file, path in the zip) for every file the distribution's RECORD lists inside site-packages."""
    files = []
    for entry in dist.files or []:
        arcname = entry.as_posix()
        if arcname.startswith("../") or pruned(arcname):  # console scripts live outside site-packages
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
            if arcname is None or pruned(arcname):
                continue
            destination = into / arcname
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(archive.read(info))
            destination.chmod(0o755 if (info.external_attr >> 16) & 0o111 else 0o644)
