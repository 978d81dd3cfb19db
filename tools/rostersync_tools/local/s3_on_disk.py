"""The embedded S3 keeps each object's body in a file of its own, not in the process's memory.

moto holds an object's body in a ``SpooledTemporaryFile``: in memory up to 5 MiB, which is every chunk,
page and plan file the sync writes. In the benchmark, the embedded AWS shares the process with the
Lambdas it runs, so every object a traced invocation writes counts in that invocation's memory figure,
and a 100,000-student run holds gigabytes of them. S3 keeps a function's objects elsewhere: with
``install`` (``EmbeddedStack(s3_bodies_on_disk=True)``, the benchmarks), each body is a file under a
temporary folder, opened only while it is read or written (no file stays open: a run writes tens of
thousands of objects). moto's S3 behaves as before: the same calls, answers and errors; only where the
bytes wait changes. ``uninstall`` puts moto's own buffer back.
"""

from __future__ import annotations

import os
import tempfile
import threading
import types
from pathlib import Path
from typing import Any

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

    def write(self, data: bytes | bytearray | memoryview) -> int:
        with self._lock, open(self._file(), "r+b") as file:
            file.seek(self._position)
            written = file.write(data)
            self._position += written
            return written

    def truncate(self, size: int | None = None) -> int:
        with self._lock:
            end = self._position if size is None else size
            os.truncate(self._file(), end)
            return end

    def close(self) -> None:
        with self._lock:
            if self._path is not None:
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    pass
                self._path = None


def install() -> Path:
    """Have moto's S3 keep the bodies of the objects written from now on in files; returns their folder."""
    from moto.s3 import models

    with _LOCK:
        if "folder" not in _INSTALLED:
            folder = tempfile.TemporaryDirectory(prefix="rostersync-s3-bodies-")
            shim = types.SimpleNamespace(
                SpooledTemporaryFile=lambda *args, **kwargs: BodyOnDisk(Path(folder.name)),
            )
            _INSTALLED.update(folder=folder, tempfile=models.tempfile)
            models.tempfile = shim  # type: ignore[assignment]
        return Path(_INSTALLED["folder"].name)


def uninstall() -> None:
    """moto's own in-memory buffer again for the objects written from now on (tests)."""
    from moto.s3 import models

    with _LOCK:
        if "folder" in _INSTALLED:
            models.tempfile = _INSTALLED.pop("tempfile")
            # objects written meanwhile still read their files: the folder goes at exit
            _RETIRED.append(_INSTALLED.pop("folder"))
