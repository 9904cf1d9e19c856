"""The audit of every build: can the target's interpreter and OS load what is in the zip? Wheel tags must fit
the target's CPython (or be abi3 / pure Python), and no shared object may ask for a newer glibc than the
target's OS image has."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.tags import parse_tag

from fraud.app.packaging.targets import Target, dotted

GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)")
WHEEL_TAG = re.compile(r"^Tag:\s*(\S+)\s*$", re.MULTILINE)
MANYLINUX_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}  # PEP 513/571/599
MANYLINUX_TAG = re.compile(r"^manylinux_(\d+)_(\d+)_")  # PEP 600


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
            too_new[arcname] = dotted(needed)
    return highest, too_new
