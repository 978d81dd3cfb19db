"""The clean-up state machine's steps against moto: conditional archiving school by school, a retried
child, the report, and undo that restores exactly and leaves alone what changed since."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from rostersync.cleanup.batches import (
    CleanupMapItem,
    CleanupReportRequest,
    archive_school_students,
    undo_batch,
    write_cleanup_report,
    write_plan,
)
from rostersync.directory.keys import partition_key, shard_of
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository
from rostersync.domain.records import Kind

D, BATCH, BUCKET = "d-clean", "cln-20260101T000000-abc123", "sync-bucket"


def key(pid: str) -> dict[str, Any]:
    return {"pk": {"S": partition_key(D, "people", shard_of(pid))}, "sk": {"S": pid}}


def student(pid: str, managed: bool = False) -> DirectoryRecord:
    return DirectoryRecord(pid, Kind.STUDENTS, "active", managed, {}, {"roles": ["student"], "schools": ["sch-1"]})


@pytest.fixture
def world(dynamodb: Any, directory_table: str, sync_state_table: str) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    directory = DirectoryRepository(dynamodb, directory_table, D)
    directory.put_records([student("p-1"), student("p-2"), student("p-3")])
    preview = {
        "schools": [
            {
                "school_id": "sch-1",
                "school_name": "One",
                "to_archive": [{"id": p, "name": p, "stamp": "s"} for p in ("p-1", "p-2", "p-3")],
            }
        ]
    }
    manifest_key = write_plan(s3, BUCKET, D, BATCH, preview)
    dynamodb.put_item(TableName=sync_state_table, Item={"pk": {"S": D}, "sk": {"S": f"CLEANUP#{BATCH}"}})
    return {"s3": s3, "dynamodb": dynamodb, "directory": directory, "manifest_key": manifest_key}


def test_a_school_is_archived_conditionally_and_undo_restores_exactly(
    world: dict[str, Any], directory_table: str, sync_state_table: str
) -> None:
    s3, dynamodb, directory = world["s3"], world["dynamodb"], world["directory"]
    (entry,) = json.loads(s3.get_object(Bucket=BUCKET, Key=world["manifest_key"])["Body"].read())
    item = CleanupMapItem.model_validate(entry)
    before = {r.id: r for r in directory.records("people")}
    # Given the sync took p-3 over after the preview
    directory.put_records([student("p-3", managed=True)])

    # When the school's step runs, and runs again (a retried child)
    counts = archive_school_students(item, dynamodb, directory_table, s3, BUCKET)
    again = archive_school_students(item, dynamodb, directory_table, s3, BUCKET)

    # Then p-1 and p-2 are archived once; the sync-managed p-3 is skipped with the reason
    assert counts == again == {"archived": 2, "skipped": 1}
    statuses = {r.id: r.status for r in directory.records("people")}
    assert statuses == {"p-1": "archived", "p-2": "archived", "p-3": "active"}
    result = write_cleanup_report(
        CleanupReportRequest(district_id=D, batch_id=BATCH, manifest_key=world["manifest_key"]),
        dynamodb,
        sync_state_table,
        s3,
        BUCKET,
    )
    assert (result.status, result.archived, result.skipped) == ("succeeded", 2, 1)
    csv_text = s3.get_object(Bucket=BUCKET, Key=f"cleanups/{D}/{BATCH}/report/students.csv")["Body"].read().decode()
    assert "sync-managed since the preview" in csv_text

    # When an admin restores p-2 by hand, then the batch is undone
    directory._client.update_item(
        TableName=directory_table,
        Key=key("p-2"),
        UpdateExpression="SET #s = :a",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":a": {"S": "active"}},
    )
    restored, changed = undo_batch(D, BATCH, dynamodb, directory_table, s3, BUCKET)

    # Then p-1 is exactly as before; p-2 is listed, not touched
    assert restored == ["p-1"] and changed == ["p-2: restored or changed since"]
    raw = dynamodb.get_item(TableName=directory_table, Key=key("p-1"))["Item"]
    assert "cleanup_batch" not in raw and "status_changed_at" not in raw
    assert {r.id: r for r in directory.records("people")}["p-1"] == before["p-1"]


def test_a_school_key_outside_the_batch_is_refused(world: dict[str, Any], directory_table: str) -> None:
    item = CleanupMapItem(district_id=D, batch_id=BATCH, school_key=f"cleanups/other/{BATCH}/plan/school-000.json")
    with pytest.raises(ValueError, match="outside clean-up"):
        archive_school_students(item, world["dynamodb"], directory_table, world["s3"], BUCKET)
