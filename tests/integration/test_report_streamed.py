"""The report's CSVs stream to S3 as multipart uploads: the same bytes as before, in bounded memory."""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError
from report_lines_fixture import mixed_errors, mixed_lines

from rostersync.config import RuntimeConfig
from rostersync.reports.writer import CsvReportWriter
from rostersync.storage import S3_MIN_PART_BYTES, RunStore

# sha256 and size of each file the spooled writer (before the CSVs were streamed) wrote for
# mixed_lines(6000) and mixed_errors(400) with max_error_lines=300: the streamed files must equal them.
TODAYS_FILES = {
    "schools.csv": ("24a6516110d7677647d85929d410f3814577c2432e54f2853158b655f8710cc2", 86369),
    "classrooms.csv": ("36e9ec92cbf6e1192b343ff03e62006377fba9b83c947844d84d594840035ead", 74780),
    "students.csv": ("2817e254060db99edc33fc033f26c0a484e834a808221887eb91523c9bbe5efd", 82693),
    "teachers.csv": ("cf62f65e69aa889ba530e46cb1ce783daf19027531628997fc562c030b1b0164", 69797),
    "staff.csv": ("ca7235fe51b5aa1bb21f5ebe3ed74f55ec550f4043a1acdea06f4394f006970d", 87093),
    "guardians.csv": ("58a036bf620da5aca749d93bfb7797899e71c102c3b8dda0db670a5db40fd247", 67541),
    "enrollments.csv": ("426dbb015a7b57101854b9d2d89c86870796e982dbbbcc577790c681e22d1f3c", 75045),
    "guardian_links.csv": ("193b36cc39cdb9eb129617ea0c0fa3dfe337e6f9a7d44891e5e58ba35f4e49fa", 71773),
    "errors.csv": ("60109bc760680d7926a601d857182a403e16e18dad05890c4705120270b3d5f1", 28248),
}
PART = 16 * 1024  # the test's part size: S3's 5 MiB rule scaled down (moto is told the same minimum)
BUCKET = "sync-bucket"
# Rows set aside past 128 KiB: 223 segments for _write's lines, in every file and every action group that
# has rows, each S3 request one moto call (64 KiB gave 472, in the same groups, at twice the calls).
SET_ASIDE_PAST = 128 * 1024


@pytest.fixture
def s3(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", PART)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _write(writer: CsvReportWriter) -> dict[str, Any]:
    writer.add_all(mixed_lines(6000))
    for error in mixed_errors(400):
        writer.add_error(error)
    return writer.finish()


def test_streamed_csvs_are_byte_identical_to_the_spooled_ones_and_sent_in_full_parts(s3: Any) -> None:
    # Given a run store and a report sink with 16 KiB parts, rows set aside past 128 KiB (every file's
    # action groups go out in a few segments of 2 to 3 KB, so a part joins several and a segment may span two)
    store = RunStore(s3, BUCKET, "d-1", "r-1")
    sink = store.report_sink(PART)

    # When the mixed lines are written
    with CsvReportWriter(sink, max_error_lines=300, buffer_bytes=SET_ASIDE_PAST) as writer:
        keys = _write(writer)

    # Then each file is byte for byte what the spooled writer wrote, under report/
    got = {}
    for name, key in keys.items():
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        got[name] = (hashlib.sha256(body).hexdigest(), len(body))
        assert key == f"runs/d-1/r-1/report/{name}"
    assert got == TODAYS_FILES
    # and each file went up in several parts, every part but the last exactly the part size
    assert writer.segments_written > 10
    for upload in sink.uploads:
        assert len(upload.part_sizes) > 1, upload.key
        assert set(upload.part_sizes[:-1]) == {PART}
        assert 0 < upload.part_sizes[-1] <= PART
    # and nothing is left behind: no set-aside segments, no unfinished upload
    left = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/d-1/r-1/report/segments/").get("KeyCount", 0)
    assert left == 0
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_file_that_fails_midway_is_aborted(s3: Any) -> None:
    # Given a sink whose segments cannot be read back once the first file has sent a part
    store = RunStore(s3, BUCKET, "d-1", "r-2")
    sink = store.report_sink(PART)

    def broken(ref: str) -> list[bytes]:
        if any(upload.part_sizes for upload in sink.uploads):
            raise ConnectionError("S3 went away")
        return [gzip.decompress(s3.get_object(Bucket=BUCKET, Key=ref)["Body"].read())]

    sink.read_segment = broken  # type: ignore[method-assign]

    # When the report is written, Then the error reaches the caller
    with (
        CsvReportWriter(sink, max_error_lines=300, buffer_bytes=SET_ASIDE_PAST) as writer,
        pytest.raises(ConnectionError),
    ):
        _write(writer)

    # and the multipart upload that had begun was aborted: S3 keeps no parts of it
    assert any(upload.part_sizes for upload in sink.uploads)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_small_file_is_one_put() -> None:
    # Given a memory-only S3 stand-in that records calls
    calls: list[str] = []

    class Client:
        def put_object(self, **kwargs: Any) -> None:
            calls.append("PutObject")

        def create_multipart_upload(self, **kwargs: Any) -> None:
            calls.append("CreateMultipartUpload")

    store = RunStore(Client(), BUCKET, "d-1", "r-3")
    # When a report of a few lines is written
    with CsvReportWriter(store.report_sink(S3_MIN_PART_BYTES)) as writer:
        writer.add_all(mixed_lines(20))
        writer.finish()
    # Then each file is one PutObject (9 files: 8 kinds and errors.csv)
    assert calls == ["PutObject"] * 9


def test_production_parts_are_never_under_s3s_5_mib_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the template's environment, with a part size under S3's minimum
    for name, value in {"DIRECTORY_TABLE": "d", "SYNC_STATE_TABLE": "s", "SYNC_BUCKET": "b"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REPORT_PART_BYTES", str(S3_MIN_PART_BYTES - 1))
    # When the configuration is read, Then it is refused
    with pytest.raises(ValidationError):
        RuntimeConfig()  # type: ignore[call-arg]
    # and the default is at least the minimum
    monkeypatch.delenv("REPORT_PART_BYTES")
    assert RuntimeConfig().report_part_bytes >= S3_MIN_PART_BYTES  # type: ignore[call-arg]


class _DiskSink:
    """Segments on disk, files hashed as they stream: holds nothing in memory of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.digests: dict[str, str] = {}

    def put_segment(self, name: str, body: bytes) -> str:
        (self.folder / name).write_bytes(body)
        return name

    def read_segment(self, ref: str) -> list[bytes]:
        return [(self.folder / ref).read_bytes()]

    def discard_segments(self, refs: list[str]) -> None:
        for ref in refs:
            (self.folder / ref).unlink()

    def open_file(self, name: str) -> Any:
        sink = self

        class Upload:
            digest = hashlib.sha256()

            def write(self, data: bytes) -> None:
                self.digest.update(data)

            def complete(self) -> str:
                sink.digests[name] = self.digest.hexdigest()
                return name

            def abort(self) -> None:
                pass

        return Upload()


def _peak_writing(lines: int, folder: Path) -> int:
    tracemalloc.start()
    try:
        with CsvReportWriter(_DiskSink(folder), buffer_bytes=256 * 1024) as writer:
            writer.add_all(mixed_lines(lines))
            writer.finish()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_lines(tmp_path: Path) -> None:
    # Given 8,000 and 20,000 lines (about 1 and 2.5 MB of CSV; both fill report.json's lists of 50 lines),
    # rows set aside past 256 KiB
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    # When each is written
    small = _peak_writing(8_000, tmp_path / "a")
    large = _peak_writing(20_000, tmp_path / "b")

    # Then the peak grows by less than 512 KiB (under 44 bytes a line more): holding the files whole adds
    # the 1.4 MB the larger report's CSVs have more, streaming them adds under 0.05 MB (the peak of both is
    # mostly report.html's first 50 lines per kind and action)
    assert large - small < 512 * 1024, (small, large)
