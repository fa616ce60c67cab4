"""Where steps keep bytes: one small interface over a folder (file://) and object storage (s3://).

Place in the flow: the artifact store (workflows/store.py) and the data catalog
(workflows/datasets.py) read and write through `open_location(uri)`, so the same steps run on one
machine (`file:///home/.../store`, or a ReadWriteMany volume mounted at the same path in every pod)
and on a cluster (`s3://bucket/prefix`). S3 settings come from the standard AWS environment
variables only: AWS_ENDPOINT_URL (for an S3-compatible server), AWS_REGION or AWS_DEFAULT_REGION,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (in a pod: from a Kubernetes Secret).

A key is a relative path of safe segments (`sha256/<hex>.skops`). A missing object raises
ObjectMissing and an unreachable or refusing store raises StoreUnavailable: infrastructure, so a
step that meets them ends Errored (retried), never Failed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from workflows.steps.common import write_atomic

KEY_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"})
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class ObjectMissing(LookupError):
    """The store has no object under that key (infrastructure: Errored, not Failed)."""


class StoreUnavailable(RuntimeError):
    """The store cannot be reached, refuses our credentials, or has no such bucket (Errored)."""


class Location(Protocol):
    """A place for bytes by key. `uri` names it in messages: a folder's path or s3://bucket/prefix."""

    uri: str

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> list[str]: ...


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(not KEY_SEGMENT_RE.match(p) for p in parts):
        raise ValueError(f"object key {key!r} must be '/'-separated segments of [A-Za-z0-9._-] not starting with '.'")
    return key


class LocalLocation:
    """A folder: the embedded default's store, or a shared ReadWriteMany volume on a cluster."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.uri = str(self.root)  # messages name a folder by its path

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.uri}/{key} does not exist") from None

    def put(self, key: str, data: bytes) -> None:
        write_atomic(self._path(key), data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}" for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _s3_client() -> Any:
    """A boto3 S3 client configured from the standard AWS environment variables only.

    Making one costs ~0.3 s (botocore loads its service model), so one is kept per distinct
    setting of those variables for the life of the process.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or ""
    # The cache key holds a digest of the secret, never the secret itself.
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()
    return _client_for(endpoint, region, os.environ.get("AWS_ACCESS_KEY_ID") or "", fingerprint)


@functools.lru_cache(maxsize=8)
def _client_for(endpoint: str | None, region: str, access_key: str, secret_fingerprint: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session()  # credentials: the AWS_* variables, as boto3 reads them
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


class S3Location:
    """`s3://bucket/prefix`: objects under the prefix, over the S3 API (AWS or S3-compatible)."""

    def __init__(self, bucket: str, prefix: str, client: Any | None = None) -> None:
        if not BUCKET_RE.match(bucket):
            raise ValueError(f"s3://{bucket}: not a valid bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _s3_client()
        return self._client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, exc: Exception, key: str) -> Exception:
        """Turn a botocore error into ObjectMissing or StoreUnavailable with a clear one-line reason."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"{self.uri}/{key}"
        if isinstance(exc, NoCredentialsError):
            return StoreUnavailable(f"{where}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in MISSING_CODES:
                return ObjectMissing(f"{where} does not exist")
            if code == "NoSuchBucket":
                return StoreUnavailable(f"{where}: the bucket {self.bucket} does not exist")
            if code in DENIED_CODES or status == 403:
                return StoreUnavailable(
                    f"{where}: the S3 server refused the credentials ({code or status}); "
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
            return StoreUnavailable(f"{where}: S3 error {code or status}: {error.get('Message', '')}".strip())
        if isinstance(exc, BotoCoreError):
            endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS"
            return StoreUnavailable(f"{where}: cannot reach S3 at {endpoint}: {exc}")
        return exc

    def get(self, key: str) -> bytes:
        full = self._key(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
            data: bytes = body.read()
        except Exception as exc:
            raise self._fail(exc, key) from None
        return data

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
        except Exception as exc:
            raise self._fail(exc, key) from None

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            failure = self._fail(exc, key)
            if isinstance(failure, ObjectMissing):
                return False
            raise failure from None
        return True

    def keys(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            found = [item["Key"] for page in pages for item in page.get("Contents", [])]
        except Exception as exc:
            raise self._fail(exc, prefix) from None
        start = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[start:] for k in found)


def open_location(where: str | Path | Location) -> Location:
    """`file:///abs/path`, `s3://bucket/prefix`, a Path, or a Location (returned as it is)."""
    if isinstance(where, Path):
        return LocalLocation(where)
    if not isinstance(where, str):
        return where
    parts = urlsplit(where)
    if parts.scheme == "s3":
        if parts.query or parts.fragment:
            raise ValueError(f"{where!r}: an s3:// URI takes no query or fragment")
        return S3Location(parts.netloc, unquote(parts.path))
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{where!r}: a file URI must not name a host ({parts.netloc!r})")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"{where!r}: the path must be absolute")
        return LocalLocation(Path(path))
    if parts.scheme:
        raise ValueError(f"{where!r}: only file:///absolute/path and s3://bucket/prefix are supported")
    return LocalLocation(Path(where))
