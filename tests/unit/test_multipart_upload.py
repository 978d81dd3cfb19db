"""A report file's multipart upload holds one part, and sends it without copying it (``storage.MultipartUpload``).

At New York City's size the Report step writes about a gigabyte of CSV through it; every copy of a part is
a part's more memory in a function that should hold a part and a piece.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from rostersync.storage import MultipartUpload

KiB, MiB = 1024, 1024 * 1024


class _S3:
    """Takes the upload's requests and keeps only each part's size (the parts themselves are not kept)."""

    def __init__(self) -> None:
        self.parts: list[int] = []
        self.completed: list[dict[str, Any]] = []

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, str]:
        return {"UploadId": "u-1"}

    def upload_part(self, *, Body: bytes | bytearray, PartNumber: int, **kwargs: Any) -> dict[str, str]:  # noqa: N803
        self.parts.append(len(Body))
        return {"ETag": f"e-{PartNumber}"}

    def complete_multipart_upload(self, **kwargs: Any) -> None:
        self.completed.append(kwargs["MultipartUpload"])


def test_a_file_of_several_parts_is_sent_holding_one_part_and_a_piece() -> None:
    # Given an upload of 1 MiB parts, fed 64 KiB pieces (as the report writer feeds it)
    s3 = _S3()
    upload = MultipartUpload(s3, "bucket", "runs/d/r/report/enrollments.csv", "text/csv", MiB)
    piece = b"x" * (64 * KiB)

    # When 3.5 MiB are written and the file completed
    tracemalloc.start()
    try:
        for _ in range(56):
            upload.write(piece)
        upload.complete()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then the parts are 1, 1, 1 and 0.5 MiB, completed in order
    assert s3.parts == [MiB, MiB, MiB, MiB // 2]
    assert [p["PartNumber"] for p in s3.completed[0]["Parts"]] == [1, 2, 3, 4]
    # And memory held a part and a piece at most: a copy of the part to send it would be a part more
    assert peak < MiB + 3 * 64 * KiB, peak
