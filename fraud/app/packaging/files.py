"""Build outputs written safely: reproducible zips, files and folders that appear whole or not at all."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


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


def write_if_changed(data: bytes, target: Path) -> None:
    """Write `data` to `target` unless it already holds exactly that (an unchanged file keeps its mtime)."""
    if target.exists() and target.read_bytes() == data:
        return
    with replaced_atomically(target) as tmp:
        tmp.write_bytes(data)


def publish_folder(partial: Path, folder: Path) -> Path:
    """Rename a finished folder into place (atomic: a half-written one is never reused); if a concurrent build
    got there first, keep its folder."""
    try:
        partial.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        shutil.rmtree(partial)
    return folder


def tree_files(roots: list[Path]) -> dict[str, Path]:
    """Path in the zip -> file, over folders laid on top of each other (namespace packages merge)."""
    return {path.relative_to(root).as_posix(): path for root in roots for path in root.rglob("*") if path.is_file()}


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


def zip_bytes(files: dict[str, Path]) -> bytes:
    """The zip in memory: for small ones (the fraud/ package is a few hundred KiB) compared before writing."""
    buffer = io.BytesIO()
    zip_into(files, buffer)
    return buffer.getvalue()
