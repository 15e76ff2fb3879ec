"""The lake as the checks read it: where a partition lands, what files there are, and each file's state.

What it holds: :class:`LocalLake` (a directory, ``file://``, the LocalExecutor run) and
:class:`S3Lake` (a prefix of a versioned bucket on an S3-protocol server, the CeleryExecutor run):
objects listed by key relative to the lake root, read whole, and a :class:`FileState` per object
that changes whenever the object is written again (SHA-256 and size, plus the inode and
modification time on disk, or the version id and last-modified time in the bucket).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


def partition_key(account_id: str, day: dt.date) -> str:
    """A partition's key under the lake root, as the example DAG names it."""
    return f"usage_v2/account_id={account_id}/charge_date={day.isoformat()}/usage.jsonl"


def manifest_key(key: str) -> str:
    """The manifest written next to an object: ``_<name>.manifest.json``."""
    folder, _, name = key.rpartition("/")
    return f"{folder}/_{name}.manifest.json"


@dataclass(frozen=True)
class FileState:
    sha256: str
    size: int
    identity: tuple[object, ...]  # what changes on any rewrite: (inode, mtime) or (version id, last modified)


class Lake(Protocol):
    identity_label: str

    def describe(self, key: str) -> str: ...

    def keys(self) -> list[str]: ...

    def read(self, key: str) -> bytes | None: ...

    def state(self, key: str) -> FileState: ...


class LocalLake:
    """A lake on local disk."""

    identity_label = "inode and mtime"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def describe(self, key: str) -> str:
        return str(self.root / key)

    def keys(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def state(self, key: str) -> FileState:
        path = self.root / key
        data = path.read_bytes()
        stat = path.stat()
        return FileState(hashlib.sha256(data).hexdigest(), len(data), (stat.st_ino, stat.st_mtime_ns))


class S3Lake:
    """A lake under a prefix of a versioned bucket, read with boto3 (not through Airflow)."""

    identity_label = "version id and last-modified time"

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{key}"

    def keys(self) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            found.extend(item["Key"][len(self.prefix) + 1 :] for item in page.get("Contents", []))
        return sorted(found)

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}"))
        except self.client.exceptions.NoSuchKey:
            return None

    def read(self, key: str) -> bytes | None:
        answer = self._get(key)
        return None if answer is None else bytes(answer["Body"].read())

    def state(self, key: str) -> FileState:
        answer = self._get(key)
        if answer is None:
            raise FileNotFoundError(self.describe(key))
        data = answer["Body"].read()
        identity = (answer.get("VersionId"), str(answer.get("LastModified")))
        return FileState(hashlib.sha256(data).hexdigest(), len(data), identity)
