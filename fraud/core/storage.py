"""Object store: one small interface, a local-folder implementation laid out like S3, and S3 itself."""

from __future__ import annotations

import os
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


class LocalObjectStore:
    """A bucket as a folder: `<root>/<bucket>/<key>`. Writes are atomic (temp file + rename)."""

    def __init__(self, root: Path, bucket: str):
        self.bucket = bucket
        self.root = Path(root) / bucket
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise ValueError(f"key escapes the bucket: {key!r}")
        return path

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

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
