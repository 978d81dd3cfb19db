"""The embedded S3 keeps each object's body in a file of its own, not in the process's memory.

moto holds an object's body in a ``SpooledTemporaryFile``: in memory up to 5 MiB, which is every chunk,
page and plan file the sync writes. In the benchmark, the embedded AWS shares the process with the
Lambdas it runs, so every object a traced invocation writes counts in that invocation's memory figure,
and a 100,000-student run holds gigabytes of them. S3 keeps a function's objects elsewhere: with
``install`` (``EmbeddedStack(s3_bodies_on_disk=True)``, the benchmarks), each body is a file under a
temporary folder, opened only while it is read or written (no file stays open: a run writes tens of
thousands of objects). A multipart upload is completed part by part into the new object's file (moto
joins every part in memory, and again for the object's checksum): the same parts checks, ETag and
checksum, computed as the parts stream by. moto's S3 behaves as before: the same calls, answers and
errors; only where the bytes wait changes. ``uninstall`` puts moto's own buffer and completion back.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_PIECE = 1 << 20

_INSTALLED: dict[str, Any] = {}
_RETIRED: list[Any] = []
_LOCK = threading.Lock()


class BodyOnDisk:
    """The file-like object moto's ``FakeKey`` keeps its body in (``seek``, ``read``, ``write``, ``truncate``,
    ``close``), backed by a file that is opened for each call and removed on ``close``."""

    def __init__(self, folder: Path) -> None:
        handle, name = tempfile.mkstemp(dir=folder, prefix="body-")
        os.close(handle)
        self._path: str | None = name
        self._position = 0
        self._lock = threading.Lock()

    def _file(self) -> str:
        if self._path is None:
            raise ValueError("I/O operation on closed file")
        return self._path

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        with self._lock:
            if whence == os.SEEK_SET:
                self._position = offset
            elif whence == os.SEEK_CUR:
                self._position += offset
            else:
                self._position = os.path.getsize(self._file()) + offset
            return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        with self._lock, open(self._file(), "rb") as file:
            left = max(0, os.fstat(file.fileno()).st_size - self._position)
            # never more than is left: a read of n bytes first takes n bytes of memory (moto's ETag asks 16 MiB)
            file.seek(self._position)
            data = file.read(left if size is None or size < 0 else min(size, left))
            self._position += len(data)
            return data

    def write(self, data: bytes | bytearray | memoryview | JoinedParts) -> int:
        with self._lock, open(self._file(), "r+b") as file:
            file.seek(self._position)
            if isinstance(data, JoinedParts):  # a completed multipart upload: its parts, a piece at a time
                written = sum(file.write(piece) for piece in data.pieces())
            else:
                written = file.write(data)
            self._position += written
            return written

    def pieces(self) -> Iterator[bytes]:
        """The body from its start, a piece at a time."""
        return _file_pieces(self._file())

    def detach(self) -> str:
        """Hand over the body's file (it is no longer this body's to remove); the body is closed."""
        with self._lock:
            path, self._path = self._file(), None
            return path

    def truncate(self, size: int | None = None) -> int:
        with self._lock:
            end = self._position if size is None else size
            os.truncate(self._file(), end)
            return end

    def close(self) -> None:
        with self._lock:
            if self._path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path)
                self._path = None


class JoinedParts:
    """A completed multipart upload's body as its parts, in order: what ``complete`` hands moto in place of
    the joined bytes; ``BodyOnDisk.write`` copies it piece by piece, ``len`` is its size.

    moto disposes of the upload (and closes its parts' bodies) before it stores the object, so the parts'
    files are taken from them (``BodyOnDisk.detach``) and removed here once copied."""

    def __init__(self, parts: list[Any]) -> None:
        self._size = sum(int(part.contentsize) for part in parts)
        self._sources: list[str | bytes] = []
        for part in parts:
            body = part._value_buffer
            self._sources.append(body.detach() if isinstance(body, BodyOnDisk) else part.value)

    def __len__(self) -> int:
        return self._size

    def pieces(self) -> Iterator[bytes]:
        for source in self._sources:
            if isinstance(source, bytes):  # a part written before ``install``
                yield source
                continue
            yield from _file_pieces(source)
            os.unlink(source)


def _file_pieces(path: str) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while piece := file.read(_PIECE):
            yield piece


class _RunningChecksum:
    """The whole object's checksum as moto computes it (``moto.s3.utils.compute_checksum``: the same
    algorithms and the same fallbacks when a library is missing), fed a piece at a time."""

    def __init__(self, algorithm: str) -> None:
        from moto.core.compat import HAS_CRT

        self._crc: Any = None
        self._hash: Any = None
        self._size = 4
        if algorithm == "SHA1":
            self._hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm in ("CRC32C", "CRC32", "CRC64NVME"):
            self._crc, self._value = binascii.crc32, 0
            if algorithm == "CRC32C":
                try:
                    import crc32c

                    self._crc = lambda data, value: crc32c.crc32c(data, value)
                except ImportError:
                    pass
            elif algorithm == "CRC64NVME" and HAS_CRT:
                from awscrt import checksums

                self._crc, self._size = checksums.crc64nvme, 8
        else:
            self._hash = hashlib.sha256(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._value = self._crc(data, self._value)

    def value(self) -> str:
        digest = self._hash.digest() if self._hash is not None else self._value.to_bytes(self._size, "big")
        return base64.b64encode(digest).decode()


def _complete_part_by_part(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """``FakeMultipart.complete`` without joining the parts: the same checks of the parts named (each known
    with its ETag, all but the last at least 5 MiB), the same ETag (the MD5 of the parts' MD5s, "-N") and
    checksum; the body is the parts themselves (``JoinedParts``)."""
    from moto.s3 import models
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML

    builder = models.MultipartChecksumBuilder(
        self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
    )
    whole = _RunningChecksum(builder.checksum_algorithm) if builder.checksum_type != "COMPOSITE" else None
    parts: list[Any] = []
    md5s = bytearray()
    for number, etag in body:
        part = self.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < models.S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        if whole is None:
            builder.addPart(part.value)  # a part at a time, as moto
        else:
            body = part._value_buffer
            for piece in body.pieces() if isinstance(body, BodyOnDisk) else (part.value,):
                whole.update(piece)
        parts.append(part)
    if not parts:
        raise MalformedXML()
    checksum = builder.build() if whole is None else (builder.checksum_type, whole.value(), 1)
    etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(parts)}"
    return JoinedParts(parts), etag, checksum


def install() -> Path:
    """Have moto's S3 keep the bodies of the objects written from now on in files; returns their folder."""
    from moto.s3 import models

    with _LOCK:
        if "folder" not in _INSTALLED:
            folder = tempfile.TemporaryDirectory(prefix="rostersync-s3-bodies-")
            shim = types.SimpleNamespace(
                SpooledTemporaryFile=lambda *args, **kwargs: BodyOnDisk(Path(folder.name)),
            )
            _INSTALLED.update(folder=folder, tempfile=models.tempfile, complete=models.FakeMultipart.complete)
            models.tempfile = shim  # type: ignore[assignment]
            models.FakeMultipart.complete = _complete_part_by_part  # type: ignore[method-assign]
        return Path(_INSTALLED["folder"].name)


def uninstall() -> None:
    """moto's own in-memory buffer again for the objects written from now on (tests)."""
    from moto.s3 import models

    with _LOCK:
        if "folder" in _INSTALLED:
            models.tempfile = _INSTALLED.pop("tempfile")
            models.FakeMultipart.complete = _INSTALLED.pop("complete")  # type: ignore[method-assign]
            # objects written meanwhile still read their files: the folder goes at exit
            _RETIRED.append(_INSTALLED.pop("folder"))
