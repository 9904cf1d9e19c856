"""Object store: one small interface, a local-folder implementation laid out like S3, and S3 itself.

Also the one rule for what the platform writes under FRAUD_HOME: files 0600 and folders 0700, whatever the umask
(`private_dir`, `write_private`), since buckets, mail, logs and secrets may hold card numbers or keys; a secret
file is created once, atomically (`private_secret`)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fraud.core.settings import Settings


@dataclass(frozen=True)
class StoredObject:
    key: str
    last_modified: float  # seconds since the epoch: S3's LastModified, a file's mtime


class ObjectStore(Protocol):
    bucket: str

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str = "") -> list[str]: ...
    def list_objects(self, prefix: str = "") -> list[StoredObject]: ...
    def delete(self, key: str) -> None: ...
    def uri(self, key: str = "") -> str:
        """Where Spark (or a person) finds the object: a local path or an s3:// URI."""
        ...


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (0700), with any missing parent created 0700 too (a parent that
    exists keeps its mode). Returns `path`."""
    path = Path(path)
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made by a concurrent writer meanwhile
            pass
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode passes through the umask; chmod's does not
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `path` atomically (temp file in the same folder, then rename) with mode 0600, its folder 0700."""
    path = Path(path)
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp creates the file 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class UnsafeSecretFile(PermissionError):
    """A secret file that others than its owner may read or write."""


def check_private(path: Path) -> None:
    """Refuse a secret file that its group or others may read or write, saying how to fix it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UnsafeSecretFile(
            f"{path} is readable or writable by others than its owner (mode {mode:04o}): "
            f"run `chmod 600 {path}` if the key is still secret, else delete the file to make a new one"
        )


def private_secret(path: Path, make) -> str:
    """The secret in `path`, created once with `make()` if the file is missing: written 0600 to a temporary file
    beside it and hard-linked into place, which fails if the file exists, so two first starts racing keep one
    secret (the loser reads the winner's). The folder is 0700; an existing file open to others is refused."""
    path = Path(path)
    private_dir(path.parent)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process won the race: use its secret
                pass
        finally:
            os.unlink(tmp)
    check_private(path)
    return path.read_text().strip()


class LocalObjectStore:
    """A bucket as a folder: `<root>/<bucket>/<key>`. Writes are atomic (temp file + rename); files 0600, folders
    0700 (`write_private`)."""

    def __init__(self, root: Path, bucket: str):
        self.bucket = bucket
        self.root = private_dir(Path(root) / bucket)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise ValueError(f"key escapes the bucket: {key!r}")
        return path

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        write_private(self._path(key), data)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise KeyError(f"no such object: {self.bucket}/{key}")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        return [item.key for item in self.list_objects(prefix)]

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        objects = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        objects.append(StoredObject(key, path.stat().st_mtime))
                    except FileNotFoundError:  # deleted between the walk and the stat
                        continue
        return sorted(objects, key=lambda item: item.key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


class S3ObjectStore:
    """A real S3 bucket through boto3 (objects are encrypted by the bucket's default SSE-KMS key)."""

    def __init__(self, bucket: str, client):
        self.bucket = bucket
        self.client = client

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey as error:
            raise KeyError(f"no such object: {self.bucket}/{key}") from error

    def exists(self, key: str) -> bool:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in response.get("Contents", []))

    def _iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        # ListObjectsV2 returns at most 1,000 keys per call: the paginator follows the continuation tokens
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], item["LastModified"].timestamp())

    def list_keys(self, prefix: str = "") -> list[str]:
        return [item.key for item in self.list_objects(prefix)]

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        return sorted(self._iter_objects(prefix), key=lambda item: item.key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"


def s3_client(settings: Settings):
    from fraud.core.aws import client

    return client(settings, "s3")


def object_store(settings: Settings, bucket: str) -> ObjectStore:
    if settings.mode == "aws":
        return S3ObjectStore(bucket, s3_client(settings))
    return LocalObjectStore(settings.store_root, bucket)
