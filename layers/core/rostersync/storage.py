"""Run artefacts in S3: the fetched snapshot, the plan, report lines, all as gzipped NDJSON chunks.

Every key lives under ``runs/<district>/<run>/`` (DESIGN §3): a run only reads and writes its own
district's prefix, and steps hand each other keys, never records.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel
from pydantic_core import to_json

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


def upload_name(district_id: str, bundle_key: str) -> str:
    """An upload as the district named it: its path in the district's upload folder (``night-3/bundle.zip``);
    a folder upload, whose run reads its ``manifest.csv``, as the folder (``night-3/``)."""
    name = bundle_key.removeprefix(f"{UPLOAD_PREFIX}{district_id}/")
    if not name.lower().endswith(".zip"):
        name = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    return name or "(the upload folder itself)"


def uploaded_at(s3: Any, bucket: str, bundle_key: str, versions: dict[str, str]) -> str:
    """When the bundle a run read was uploaded (ISO 8601, UTC): the newest ``LastModified`` of the objects it
    read, each at the version it read (``versions``: key → version id; none read: ``bundle_key`` as it is).
    "" when S3 cannot tell any more (an object removed since): a report names its upload either way."""
    newest = None
    for key in versions or [bundle_key]:
        try:
            modified = s3.head_object(Bucket=bucket, Key=key, **_at_version(versions.get(key))).get("LastModified")
        except ClientError:
            continue
        if isinstance(modified, datetime) and (newest is None or modified > newest):
            newest = modified
    return newest.astimezone(UTC).isoformat(timespec="seconds") if newest is not None else ""


# A zip read where it lies (``S3ObjectReader``) is asked for in ranges of this many bytes.
BUNDLE_READ_BYTES = 8 << 20


def _at_version(version: str | None) -> dict[str, str]:
    """A ``GetObject``'s arguments that read an object at ``version``; none: its latest."""
    return {"VersionId": version} if version else {}


class S3ObjectReader(io.RawIOBase):
    """An S3 object as a seekable, read-only file, each read a ranged ``GetObject``: a zip's member is read
    where it lies in the upload, without downloading the whole bundle. Wrap it in ``io.BufferedReader``
    (``open_bundle_object``) so that small reads come from one ranged request.

    Every range comes from one version of the object: the one its first request found (``version_id``), or
    ``version_id`` when given (what an earlier reader of the same run found). An upload may be replaced while
    a run reads it (a district sends its bundle again under the same name); the bucket keeps versions, so the
    run reads the bundle it checked to the end. An object without a version (a bucket without versioning) is
    read only while its ETag holds: a replaced one answers ``PreconditionFailed``, never bytes of another."""

    def __init__(self, s3: Any, bucket: str, key: str, version_id: str | None = None) -> None:
        super().__init__()
        self._s3, self._bucket, self._key = s3, bucket, key
        self._position = 0
        self._pinned = _at_version(version_id)
        self.version_id = version_id
        try:
            first = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-0", **self._pinned)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            self._size = 0  # S3 refuses any range of an empty object
            return
        if not self._pinned:
            self.version_id = first.get("VersionId")
            self._pinned = _at_version(self.version_id) or {"IfMatch": first["ETag"]}
        # "bytes 0-0/SIZE"; an object answering without a range is whole
        content_range = str(first.get("ContentRange") or "")
        self._size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else int(first["ContentLength"])
        first["Body"].close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        last = self._position + wanted - 1
        body = self._s3.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{last}", **self._pinned
        )
        data = body["Body"].read()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_bundle_object(s3: Any, bucket: str, key: str, versions: dict[str, str] | None = None) -> io.BufferedReader:
    """An uploaded zip as a seekable file read in ``BUNDLE_READ_BYTES`` ranges (``S3ObjectReader``).
    ``versions`` (key → version id): the version to read if it names one; the version read is added."""
    reader = S3ObjectReader(s3, bucket, key, (versions or {}).get(key))
    if versions is not None and reader.version_id:
        versions.setdefault(key, reader.version_id)
    return io.BufferedReader(reader, buffer_size=BUNDLE_READ_BYTES)


def download_bundle(
    s3: Any,
    bucket: str,
    key: str,
    scratch: Path,
    only: set[str] | None = None,
    versions: dict[str, str] | None = None,
) -> Path | bytes:
    """An uploaded OneRoster bundle: a zip's bytes, or the CSVs of the folder holding the uploaded
    ``manifest.csv``, copied into ``scratch`` (``only``: just the files of these lower-case names).

    ``versions`` (key → version id): each object is read at the version it names, if any, and the version
    read is added, so a run that read a bundle once reads the same objects again however often the district
    uploads meanwhile (see ``S3ObjectReader``)."""
    if key.lower().endswith(".zip"):
        answer = s3.get_object(Bucket=bucket, Key=key, **_at_version((versions or {}).get(key)))
        if versions is not None and answer.get("VersionId"):
            versions.setdefault(key, answer["VersionId"])
        return bytes(answer["Body"].read())
    folder = key.rsplit("/", 1)[0] + "/"
    pinned = {k: v for k, v in (versions or {}).items() if k.startswith(folder) and "/" not in k[len(folder) :]}
    if pinned:  # the files an earlier read of this run found, at the versions it read (whatever is there now)
        files = list(pinned)
    else:
        files = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
            for obj in page.get("Contents", [])
        ]
    for file_key in files:
        name = file_key[len(folder) :]
        if not name.lower().endswith(".csv") or (only is not None and name.lower() not in only):
            continue
        version = pinned.get(file_key)
        if version is None and versions is not None:
            # the version this download reads, named before it is read (a download may take several ranges)
            version = s3.head_object(Bucket=bucket, Key=file_key).get("VersionId")
            if version:
                versions[file_key] = version
        s3.download_file(bucket, file_key, str(scratch / name), ExtraArgs=_at_version(version) or None)
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

    @property
    def s3(self) -> Any:
        """The S3 client the store reads and writes with."""
        return self._s3

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

    def report_sink(self, part_bytes: int) -> S3ReportSink:
        """Where the report's CSV files go: ``report/<name>``, each a streamed multipart upload."""
        return S3ReportSink(self, part_bytes)

    def read_ndjson(self, key: str) -> Iterator[dict[str, Any]]:
        """Stream the objects of one gzipped NDJSON chunk."""
        for line in self.read_ndjson_lines(key):
            yield json.loads(line)

    def read_ndjson_lines(self, key: str) -> Iterator[bytes]:
        """Stream the lines of one gzipped NDJSON chunk, unparsed (for a reader that parses and validates
        in one pass: pydantic's ``validate_json``)."""
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        with gzip.GzipFile(fileobj=io.BytesIO(body.read())) as lines:
            for line in lines:
                if line.strip():
                    yield line

    def read_all(self, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
        for key in keys:
            yield from self.read_ndjson(key)

    def read_all_lines(self, keys: Iterable[str]) -> Iterator[bytes]:
        for key in keys:
            yield from self.read_ndjson_lines(key)

    def chunk_writer(self, name: str, records_per_chunk: int) -> ChunkWriter:
        return ChunkWriter(self, name, records_per_chunk)


class ChunkWriter:
    """Writes a stream of records as ``<name>-00000.ndjson.gz``, ``<name>-00001…`` of bounded size.

    The lines are compressed as they come, a batch of about ``BATCH_BYTES`` at a time (gzip at level 1, as
    one ``gzip.compress`` of the chunk would be): a chunk waiting for its last records holds their
    compressed bytes (a tenth of the lines for the synthetic district's users and sections, a quarter for
    users with random ids) and one batch, not the lines and then their join. A raw chunk of 10,000 Clever
    sections held 12 MiB of lines and 12 MiB more to join them; a Fetch slice keeps one chunk per list and
    collection. A batch, not each line: each line on its own cost 3.4–5.0 µs (a routed pair's 174 bytes),
    where a batch costs what the chunk compressed at once did (1.3–1.6 µs a line, against 1.4–1.5).
    """

    BATCH_BYTES = 1 << 20

    def __init__(self, store: RunStore, name: str, records_per_chunk: int) -> None:
        self._store = store
        self._name = name
        self._limit = max(1, records_per_chunk)
        self._batch: list[bytes] = []  # lines not compressed yet
        self._batch_bytes = 0
        self._compressor: Any = None  # zlib's compressor of the chunk being written (none while it is empty)
        self._compressed: list[bytes] = []
        self._lines = 0  # in the chunk being written
        self.keys: list[str] = []
        self.count = 0

    def write(self, record: BaseModel | dict[str, Any] | bytes) -> None:
        """Append one record: a model (serialised by pydantic), a dict, or its line of JSON already made."""
        if isinstance(record, bytes):
            line = record
        elif isinstance(record, BaseModel):
            line = record.model_dump_json().encode("utf-8")
        else:
            # pydantic's serialiser: the compact JSON ``json.dumps(record, separators=(",", ":"),
            # ensure_ascii=False)`` makes of the plain dicts written here, byte for byte, in a fifth of the time
            # (a planned write: 3.9 -> 0.8 us; every planned write and report line of a run passes here)
            line = to_json(record)
        self.write_line(line)

    def write_line(self, line: bytes) -> None:
        """Append one record already serialised as a line of JSON (no newline in it)."""
        self._batch.append(line)
        self._batch_bytes += len(line) + 1
        self._lines += 1
        self.count += 1
        if self._lines >= self._limit:
            self._flush()
        elif self._batch_bytes >= self.BATCH_BYTES:
            self._compress_batch()

    def _compress_batch(self) -> None:
        if self._compressor is None:
            # wbits 31: the gzip format (header and trailer), which every reader of a chunk decompresses
            self._compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
        data = self._compressor.compress(b"\n".join(self._batch) + b"\n")
        if data:
            self._compressed.append(data)
        self._batch, self._batch_bytes = [], 0

    def _flush(self) -> None:
        if not self._lines:
            return
        self._compress_batch()
        self._compressed.append(self._compressor.flush())
        body = b"".join(self._compressed)
        self._compressor, self._compressed, self._lines = None, [], 0
        name = f"{self._name}-{len(self.keys):05d}.ndjson.gz"
        self.keys.append(self._store.put_bytes(name, body, "application/x-ndjson"))

    def append_chunks(self, keys: list[str], count: int) -> None:
        """Continue the stream with chunks written elsewhere (``count`` records), after what is buffered."""
        self._flush()
        self.keys.extend(keys)
        self.count += count

    def close(self) -> list[str]:
        """Flush what is buffered and return the keys of every chunk written."""
        self._flush()
        return self.keys


# S3 refuses a multipart upload whose parts, all but the last, are under 5 MiB (EntityTooSmall).
S3_MIN_PART_BYTES = 5 * 1024 * 1024


class MultipartUpload:
    """One S3 object written front to back: parts of ``part_bytes`` are sent as the data arrives, so
    memory holds at most one part. A file that fits in one part is one ``PutObject``. ``abort`` ends an
    unfinished upload (S3 would keep, and bill, its parts otherwise)."""

    def __init__(self, s3: Any, bucket: str, key: str, content_type: str, part_bytes: int) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._content_type = content_type
        self._part_bytes = max(1, part_bytes)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.part_sizes: list[int] = []

    def write(self, data: bytes | memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_bytes:
            # The buffer is sent as the part itself, not copied: what follows the part (less than a piece
            # of the caller's, usually) starts the next buffer.
            part, self._buffer = self._buffer, self._buffer[self._part_bytes :]
            del part[self._part_bytes :]
            self._send(part)

    def _send(self, body: bytes | bytearray) -> None:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, ContentType=self._content_type)
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self.part_sizes.append(len(body))

    def complete(self) -> str:
        """Send what is left and finish the object; return its key."""
        if self._upload_id is None:
            self._s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._buffer, ContentType=self._content_type)
        else:
            if self._buffer:
                self._send(self._buffer)
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buffer = bytearray()
        return self.key

    def abort(self) -> None:
        """Drop an unfinished upload's parts (nothing to do before the first part)."""
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)


SEGMENT_PIECE_BYTES = 1 << 20


class S3ReportSink:
    """The report's CSV files in S3 (``reports.writer.ReportSink``): each file a ``MultipartUpload`` under
    ``report/``; rows that wait for their file are gzipped segments under ``report/segments/``, deleted
    once every file is written."""

    SEGMENTS = "report/segments/"

    def __init__(self, store: RunStore, part_bytes: int) -> None:
        self._store = store
        self._part_bytes = part_bytes
        self.uploads: list[MultipartUpload] = []

    def put_segment(self, name: str, body: bytes | bytearray) -> str:
        return self._store.put_bytes(
            f"{self.SEGMENTS}{name}.csv.gz", gzip.compress(body, compresslevel=1), "application/gzip"
        )

    def read_segment(self, ref: str) -> Iterator[bytes]:
        if not self._store.owns(ref):
            raise ValueError("a report reads only its own run's segments")
        return self._pieces(self._store.s3.get_object(Bucket=self._store.bucket, Key=ref)["Body"].read())

    @staticmethod
    def _pieces(body: bytes) -> Iterator[bytes]:
        """The rows of a gzipped segment, a piece at a time: the segment is never held unzipped whole."""
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as rows:
            while piece := rows.read(SEGMENT_PIECE_BYTES):
                yield piece

    def discard_segments(self, refs: list[str]) -> None:
        # One DeleteObject each (free on S3): IAM allows DeleteObject on report/segments/ alone, which a
        # DeleteObjects batch (a request on the bucket) could not be narrowed to.
        for ref in refs:
            if self._store.owns(ref):
                self._store.s3.delete_object(Bucket=self._store.bucket, Key=ref)

    def open_file(self, name: str) -> MultipartUpload:
        upload = MultipartUpload(
            self._store.s3,
            self._store.bucket,
            self._store.key(f"report/{name}"),
            "text/csv; charset=utf-8",
            self._part_bytes,
        )
        self.uploads.append(upload)
        return upload
