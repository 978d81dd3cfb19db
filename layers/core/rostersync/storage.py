"""Run artefacts in S3: the fetched snapshot, the plan, report lines, all as gzipped NDJSON chunks.

Every key lives under ``runs/<district>/<run>/`` (DESIGN §3): a run only reads and writes its own
district's prefix, and steps hand each other keys, never records.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rostersync.contracts import UPLOAD_PREFIX, is_bundle_key


def latest_upload_key(s3: Any, bucket: str, district_id: str) -> str | None:
    """The district's most recent OneRoster upload under ``uploads/<district>/`` (a ``.zip`` or a
    folder's ``manifest.csv``), or None if it never uploaded one. Another district's folder is never read."""
    prefix = f"{UPLOAD_PREFIX}{district_id}/"
    uploads = [
        obj
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if is_bundle_key(obj["Key"])
    ]
    if not uploads:
        return None
    return str(max(uploads, key=lambda obj: (obj["LastModified"], obj["Key"]))["Key"])


def download_bundle(s3: Any, bucket: str, key: str, scratch: Path) -> Path | bytes:
    """An uploaded OneRoster bundle: a zip's bytes, or the CSVs of the folder holding the uploaded
    ``manifest.csv``, copied into ``scratch``."""
    if key.lower().endswith(".zip"):
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    folder = key.rsplit("/", 1)[0] + "/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(folder) :]
            if name.lower().endswith(".csv"):
                s3.download_file(bucket, obj["Key"], str(scratch / name))
    return scratch


def run_prefix(district_id: str, run_id: str) -> str:
    """Return the S3 prefix that holds everything of one run."""
    return f"runs/{district_id}/{run_id}/"


class RunStore:
    """Reads and writes one run's objects in the sync bucket."""

    def __init__(
        self, s3: Any, bucket: str, district_id: str, run_id: str, signer: Callable[[], Any] | None = None
    ) -> None:
        self._s3 = s3
        # The client that signs links, made on first use (only the Report step signs any).
        self._signer = signer or (lambda: s3)
        self.bucket = bucket
        self.prefix = run_prefix(district_id, run_id)
        self.district_prefix = f"runs/{district_id}/"

    def district_key(self, name: str) -> str:
        """The key of a district-wide object beside its runs (the index page, ``index.html``)."""
        return self.district_prefix + name

    def link(self, key: str, seconds: int) -> str:
        """A presigned GET link to one of its district's objects (this run's files, earlier runs' reports, the
        index), valid ``seconds`` (signed by the caller's role: it works only as long as that role may read
        the object and its credentials last)."""
        if not key.startswith(self.district_prefix) or ".." in key:
            raise ValueError("a run links only its own district's objects")
        return str(
            self._signer().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
        )

    def key(self, name: str) -> str:
        return self.prefix + name

    def owns(self, key: str) -> bool:
        """Whether a key handed to a step belongs to this run (a district never reads another's keys)."""
        return key.startswith(self.prefix) and ".." not in key

    def put_json(self, name: str, value: Any) -> str:
        key = self.key(name)
        body = json.dumps(value, separators=(",", ":"), default=str).encode("utf-8")
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def get_json(self, key: str) -> Any:
        return json.loads(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put_bytes(self, name: str, body: bytes, content_type: str) -> str:
        key = self.key(name)
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def put_bytes_if_absent(self, name: str, body: bytes, content_type: str) -> str:
        """Write the object only if no object has the key (``If-None-Match: *``); S3 answers
        ``PreconditionFailed`` otherwise."""
        key = self.key(name)
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        return key

    def list_keys(self, name_prefix: str) -> list[str]:
        """The keys of this run's objects whose name starts with ``name_prefix``, in key order."""
        keys = [
            obj["Key"]
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key(name_prefix)
            )
            for obj in page.get("Contents", [])
        ]
        return sorted(keys)

    def put_district(self, name: str, body: bytes, content_type: str) -> str:
        """Write a district-wide object beside its runs (``district_key``)."""
        key = self.district_key(name)
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def upload_file(self, name: str, fileobj: Any, content_type: str) -> str:
        key = self.key(name)
        self._s3.upload_fileobj(fileobj, self.bucket, key, ExtraArgs={"ContentType": content_type})
        return key

    def read_ndjson(self, key: str) -> Iterator[dict[str, Any]]:
        """Stream the objects of one gzipped NDJSON chunk."""
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        with gzip.GzipFile(fileobj=io.BytesIO(body.read())) as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def read_all(self, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
        for key in keys:
            yield from self.read_ndjson(key)

    def chunk_writer(self, name: str, records_per_chunk: int) -> ChunkWriter:
        return ChunkWriter(self, name, records_per_chunk)


class ChunkWriter:
    """Writes a stream of records as ``<name>-00000.ndjson.gz``, ``<name>-00001…`` of bounded size."""

    def __init__(self, store: RunStore, name: str, records_per_chunk: int) -> None:
        self._store = store
        self._name = name
        self._limit = max(1, records_per_chunk)
        self._buffer: list[bytes] = []
        self.keys: list[str] = []
        self.count = 0

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        self._buffer.append(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        self.count += 1
        if len(self._buffer) >= self._limit:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        body = gzip.compress(b"\n".join(self._buffer) + b"\n", compresslevel=5)
        name = f"{self._name}-{len(self.keys):05d}.ndjson.gz"
        self.keys.append(self._store.put_bytes(name, body, "application/x-ndjson"))
        self._buffer = []

    def close(self) -> list[str]:
        """Flush what is buffered and return the keys of every chunk written."""
        self._flush()
        return self.keys
