"""A local Debian 12 / Python 3.11 base image for the Dockerfile's `BASE`, made without any container registry:
debootstrap (from the host's own Debian mirror, read from its apt sources) into a folder cached across runs, then
imported into buildah's storage. Usable by hand: `.venv/bin/python -m tests.deploy.image_base` prints the image
name."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")  # python3 of bookworm is 3.11, as the project's
CACHE = Path(os.environ.get("FRAUD_IMAGE_BASE_CACHE", Path.home() / ".cache" / "fraud-image-base"))


def base_key() -> str:
    return hashlib.sha256(f"{SUITE} {' '.join(sorted(PACKAGES))}".encode()).hexdigest()[:12]


def base_image() -> str:
    return f"localhost/fraud-image-base:{base_key()}"


def host_mirror() -> str:
    """The Debian mirror the host's apt uses (no host name written into the repository)."""
    sources = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in sources:
        if not path.exists():
            continue
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):  # deb822: URIs + Suites per stanza
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():  # one-line format
            match = re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
            if match:
                return match.group(1)
    raise RuntimeError(f"no {SUITE} mirror in the host's apt sources")


def _image_exists(name: str) -> bool:
    result = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True)
    return result.returncode == 0


def ensure_rootfs() -> Path:
    """debootstrap the base once per package list; later calls reuse the folder."""
    folder = CACHE / base_key()
    done = folder / "rootfs.tar"
    if done.exists():
        return done
    shutil.rmtree(folder, ignore_errors=True)
    rootfs = folder / "rootfs"
    rootfs.mkdir(parents=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), host_mirror()],
        check=True,
        capture_output=True,
    )
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):  # the image does not need apt's downloads
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    partial = folder / "rootfs.tar.partial"
    with tarfile.open(partial, "w") as tar:
        tar.add(rootfs, arcname=".")
    partial.rename(done)
    shutil.rmtree(rootfs)
    return done


def ensure_base() -> str:
    """The base image in buildah's local storage (imported from the cached rootfs if missing); returns its name."""
    name = base_image()
    if _image_exists(name):
        return name
    tarball = ensure_rootfs()
    container = subprocess.run(["buildah", "from", "scratch"], check=True, capture_output=True, text=True)
    container = container.stdout.strip()
    try:
        subprocess.run(["buildah", "add", container, str(tarball), "/"], check=True, capture_output=True)
        subprocess.run(["buildah", "config", "--cmd", "/bin/bash", container], check=True, capture_output=True)
        subprocess.run(["buildah", "commit", "--quiet", container, name], check=True, capture_output=True)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
    return name


if __name__ == "__main__":
    print(ensure_base())
