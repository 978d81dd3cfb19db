"""The lines the people phase routes enrollments and guardian links to Match's partitions in
(``matching.partition.encode_routed`` / ``routed_pairs``), and the raw lines a run's chunks are read as."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from pydantic import ValidationError

from rostersync.domain.records import EnrollmentRecord, GuardianLinkRecord
from rostersync.matching.partition import encode_routed, routed_pairs
from rostersync.storage import ChunkWriter, RunStore

ENROLLMENT = EnrollmentRecord(
    provider="clever", provider_id="sec-1:stu-1", classroom="sec-1", person="stu-1", role="student"
)
LINK = GuardianLinkRecord(
    provider="clever", provider_id="g-1:stu-1", guardian="g-1", student="stu-1", relationship="Parent", contact_type="x"
)
CONTEXT = {
    "ids": {"classrooms": {"sec-1": "c-9"}, "people": {"stu-1": "p-7"}},
    "names": {"c-9": 'Algèbre "1" \\ Room 12', "p-7": "Zoë O’Brien 李"},
    "skipped": [],
}


def test_a_routed_line_gives_back_its_record_and_context() -> None:
    lines = [encode_routed("enrollments", ENROLLMENT, CONTEXT), encode_routed("guardian_links", LINK, {})]
    assert list(routed_pairs(lines, "enrollments")) == [(ENROLLMENT, CONTEXT)]
    assert list(routed_pairs(lines, "guardian_links")) == [(LINK, {})]
    # the record as model_dump(mode="json") gives it, the names unescaped (UTF-8), one line each
    row = json.loads(lines[0])
    assert row == {"collection": "enrollments", "context": CONTEXT, "record": ENROLLMENT.model_dump(mode="json")}
    assert b"\n" not in lines[0] and "Zoë O’Brien 李".encode() in lines[0]


def test_the_other_collections_lines_are_passed_over_unparsed() -> None:
    broken = b'{"collection":"guardian_links","context":{},"record":{"record_type":"guardian_link"'  # cut short
    lines = [encode_routed("enrollments", ENROLLMENT, CONTEXT), broken]
    assert [record for record, _ in routed_pairs(lines, "enrollments")] == [ENROLLMENT]
    with pytest.raises(ValidationError):  # read as its own collection, the line is refused, not skipped
        list(routed_pairs(lines, "guardian_links"))


class _Files:
    """One run's objects, in memory, as the S3 client answers for them."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: object) -> None:  # noqa: N803 - boto3's names
        self.objects[Key] = bytes(Body)

    def get_object(self, Bucket: str, Key: str) -> dict[str, object]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key])}


def test_chunk_lines_written_raw_read_back_raw_and_parsed() -> None:
    files = _Files()
    store = RunStore(files, "bucket", "d-1", "run-1")
    writer = ChunkWriter(store, "plan/p0000/pairs", 2)
    lines = [encode_routed("enrollments", ENROLLMENT, CONTEXT), encode_routed("guardian_links", LINK, {})]
    for line in lines:
        writer.write_line(line)
    writer.write({"plain": "record"})
    keys = writer.close()
    assert len(keys) == 2 and writer.count == 3
    assert gzip.decompress(files.objects[keys[0]]).splitlines() == lines
    assert list(store.read_all_lines(keys)) == [*(line + b"\n" for line in lines), b'{"plain":"record"}\n']
    assert list(store.read_all(keys))[2] == {"plain": "record"}
    assert list(routed_pairs(store.read_all_lines(keys), "guardian_links")) == [(LINK, {})]


def test_a_snapshot_line_routed_as_read_is_the_line_serialising_would_give() -> None:
    # Given the snapshot's lines of an enrollment and a link, as Fetch writes them and Match reads them back
    # (each with its newline)
    files = _Files()
    store = RunStore(files, "bucket", "d-1", "run-1")
    writer = ChunkWriter(store, "snapshot/enrollments", 10)
    for record in (ENROLLMENT, LINK):
        writer.write(record)
    read = list(store.read_all_lines(writer.close()))

    # When each is routed with its line rather than serialised again
    routed = [
        encode_routed(c, r, CONTEXT, line)
        for c, r, line in zip(("enrollments", "guardian_links"), (ENROLLMENT, LINK), read, strict=True)
    ]

    # Then the routed lines are byte for byte those the serialising path makes, one line each
    assert routed == [encode_routed("enrollments", ENROLLMENT, CONTEXT), encode_routed("guardian_links", LINK, CONTEXT)]
    assert all(b"\n" not in line for line in routed)
    assert list(routed_pairs(routed, "guardian_links")) == [(LINK, CONTEXT)]
