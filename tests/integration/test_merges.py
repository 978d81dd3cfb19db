"""Merging duplicate students against moto: one transaction or a resumable sequence, never a half-merged
student, idempotent, exact undo, and DynamoDB's 100-item bound on a transaction."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rostersync.cleanup import merge as merge_module
from rostersync.cleanup.merge import MergeChangedError, MergeRefusedError, MergeService
from rostersync.directory.history import DirectoryItems, history_item
from rostersync.directory.product import ProductDirectory, import_product_directory
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, SyncStateRepository, _from_item
from rostersync.domain.records import Kind

D = "d-merge"


@pytest.fixture
def world(dynamodb: Any, directory_table: str, sync_state_table: str) -> dict[str, Any]:
    """A synced student, a hand-made duplicate with history, a second district with the same ids."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sync-bucket")
    product = ProductDirectory.model_validate(
        {
            "district": {"id": D, "name": "Merge District"},
            "schools": [{"id": "sch-1", "name": "One"}],
            "classrooms": [
                {"id": "cls-1", "name": "Art", "school_id": "sch-1"},
                {"id": "cls-2", "name": "Band", "school_id": "sch-1"},
            ],
            "people": [
                {
                    "id": "per-hand",
                    "roles": ["student"],
                    "given_name": "Ava",
                    "family_name": "Lee",
                    "school_ids": ["sch-1"],
                },
                {
                    "id": "per-other",
                    "roles": ["student"],
                    "given_name": "Bo",
                    "family_name": "Lee",
                    "school_ids": ["sch-1"],
                },
                {"id": "per-g", "roles": ["guardian"], "given_name": "Kim", "family_name": "Lee"},
            ],
            "enrollments": [
                {"id": "enr-hand-1", "classroom_id": "cls-1", "person_id": "per-hand"},
                {"id": "enr-hand-2", "classroom_id": "cls-2", "person_id": "per-hand"},
            ],
            "guardian_links": [{"id": "gln-hand", "guardian_id": "per-g", "student_id": "per-hand"}],
            "announcements": [{"id": "ann-1", "title": "Hi", "recipient_ids": ["per-hand", "per-other"]}],
            "backpack_items": [{"id": f"bpk-{n}", "student_id": "per-hand", "title": f"item {n}"} for n in range(3)],
            "student_attributes": [
                {"id": "att-hand-allergy", "student_id": "per-hand", "key": "allergy", "value": "peanuts"},
                {"id": "att-hand-bus", "student_id": "per-hand", "key": "bus", "value": "14"},
            ],
        }
    )
    directory = DirectoryRepository(dynamodb, directory_table, D)
    import_product_directory(product, directory, SyncStateRepository(dynamodb, sync_state_table, D))
    synced = DirectoryRecord(
        id="per-synced",
        kind=Kind.STUDENTS,
        status="active",
        managed_by_sync=True,
        provider_ids={"clever": "c-1"},
        fields={"roles": ["student"], "schools": ["sch-1"], "given_name": "Ava", "family_name": "Lee"},
        parent_id="sch-1",
    )
    in_class = DirectoryRecord(
        id="enr-synced-1",
        kind=Kind.ENROLLMENTS,
        status="active",
        managed_by_sync=True,
        provider_ids={"clever": "s-1:c-1"},
        fields={"classroom": "cls-1", "person": "per-synced", "role": "student"},
        parent_id="cls-1",
    )
    directory.put_records([synced, in_class])
    items = DirectoryItems(dynamodb, directory_table, D)
    attribute = history_item(
        D,
        "student_attributes",
        "att-synced-allergy",
        {"student_id": "per-synced", "key": "allergy", "value": "tree nuts"},
    )
    items.put_new([attribute])
    service = MergeService(items, dynamodb, sync_state_table, s3, "sync-bucket")
    return {"service": service, "items": items, "dynamodb": dynamodb, "table": directory_table}


def snapshot(dynamodb: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    items = dynamodb.scan(TableName=table)["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]): _from_item(i) for i in items}


def test_a_merge_moves_everything_in_one_transaction_and_undo_puts_it_back(world: dict[str, Any]) -> None:
    service, items = world["service"], world["items"]
    before = snapshot(world["dynamodb"], world["table"])

    # When the hand-made student is merged into the sync-managed one (named the other way round)
    plan = service.prepare("per-hand", "per-synced", by="tester")
    assert plan.keep == "per-synced" and plan.swapped  # the sync-managed student survives
    service.apply(plan)

    # Then every item moved, one membership stays, the survivor's attribute wins
    assert items.get("enrollments", "enr-hand-1")["status"] == "archived"  # both were in cls-1
    assert items.get("enrollments", "enr-hand-2")["fields"]["person"] == "per-synced"
    assert items.get("guardian_links", "gln-hand")["fields"]["student"] == "per-synced"
    assert items.get("announcements", "ann-1")["fields"]["recipient_ids"] == ["per-synced", "per-other"]
    assert {items.get("backpack_items", f"bpk-{n}")["fields"]["student_id"] for n in range(3)} == {"per-synced"}
    assert items.get("student_attributes", "att-hand-allergy")["status"] == "archived"
    assert items.get("student_attributes", "att-hand-bus")["fields"]["student_id"] == "per-synced"
    assert plan.conflicts[0]["kept"] == "tree nuts" and plan.conflicts[0]["dropped"] == "peanuts"
    gone = items.get("people", "per-hand")
    assert gone["status"] == "archived" and gone["product_fields"]["merged_into"] == "per-synced"
    audit = service.audit(plan.merge_id)
    assert audit["status"] == "merged" and audit["by"] == "tester" and audit["moved"]["backpack_items"] == {"moved": 3}

    # merging again changes nothing
    after = snapshot(world["dynamodb"], world["table"])
    assert service.prepare("per-synced", "per-hand", by="tester") == plan.merge_id
    assert snapshot(world["dynamodb"], world["table"]) == after

    # undo puts back exactly what was there
    service.undo(plan.merge_id, by="tester")
    assert snapshot(world["dynamodb"], world["table"]) == before
    assert service.audit(plan.merge_id)["status"] == "undone"


def test_undo_lists_what_changed_since_and_writes_nothing(world: dict[str, Any]) -> None:
    service, items = world["service"], world["items"]
    plan = service.prepare("per-synced", "per-hand", by="tester")
    service.apply(plan)
    moved = items.get("backpack_items", "bpk-0")
    moved["fields"]["title"] = "edited after the merge"
    items.put_new([moved])
    changed = snapshot(world["dynamodb"], world["table"])

    with pytest.raises(MergeChangedError) as refused:
        service.undo(plan.merge_id, by="tester")

    assert refused.value.changed == ["backpack_items bpk-0"]
    assert snapshot(world["dynamodb"], world["table"]) == changed


@pytest.mark.parametrize(
    ("keep", "merge", "reason"),
    [
        ("per-hand", "per-hand", "into itself"),
        ("per-hand", "per-nobody", "no such person"),
        ("per-hand", "per-g", "not a student"),
    ],
)
def test_bad_pairs_are_refused_and_nothing_is_written(
    world: dict[str, Any], keep: str, merge: str, reason: str
) -> None:
    before = snapshot(world["dynamodb"], world["table"])
    with pytest.raises(MergeRefusedError, match=reason):
        world["service"].prepare(keep, merge, by="tester")
    assert snapshot(world["dynamodb"], world["table"]) == before


def test_two_sync_managed_students_are_never_merged(world: dict[str, Any]) -> None:
    other = world["items"].get("people", "per-other")
    other["managed_by_sync"] = True
    world["items"].put_new([other])
    with pytest.raises(MergeRefusedError, match="both sync-managed"):
        world["service"].prepare("per-synced", "per-other", by="tester")


def test_dynamodb_refuses_a_transaction_of_more_than_100_items(world: dict[str, Any]) -> None:
    # What the merge's chunking relies on: AWS's bound, which moto (and so the embedded stack) enforces
    puts = [
        {"Put": {"TableName": world["table"], "Item": {"pk": {"S": f"{D}#x#00"}, "sk": {"S": f"i{n}"}}}}
        for n in range(101)
    ]
    with pytest.raises(ClientError, match="less than or equal to 100"):
        world["dynamodb"].transact_write_items(TransactItems=puts)
    with pytest.raises(ValueError, match="DynamoDB takes 100"):
        world["items"].transact([{"put": {"pk": f"{D}#x#00", "sk": f"i{n}"}} for n in range(101)])


def test_a_large_merge_is_a_resumable_sequence_that_never_leaves_the_student_half_merged(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, items = world["service"], world["items"]
    items.put_new(
        [
            history_item(D, "interaction_logs", f"log-{n:03d}", {"student_id": "per-hand", "note": "n"})
            for n in range(100)
        ]
    )
    before = snapshot(world["dynamodb"], world["table"])
    plan = service.prepare("per-synced", "per-hand", by="tester")
    assert len(plan.changes) > 100

    # Given the sequence dies after its first chunk of items
    real = DirectoryItems.transact
    calls = {"n": 0}

    def dying(self: DirectoryItems, writes: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("crash")
        real(self, writes)

    monkeypatch.setattr(DirectoryItems, "transact", dying)
    with pytest.raises(RuntimeError):
        service.apply(plan)
    monkeypatch.setattr(DirectoryItems, "transact", real)
    # Then the student is not archived yet and the audit says the merge is in progress
    assert items.get("people", "per-hand")["status"] == "active"
    assert service.audit(plan.merge_id)["status"] == "in_progress"

    # When the same merge runs again, it resumes the same plan and finishes
    resumed = service.prepare("per-synced", "per-hand", by="tester")
    assert resumed.merge_id == plan.merge_id
    service.apply(resumed)
    assert items.get("people", "per-hand")["status"] == "archived"
    assert {
        i["fields"]["student_id"] for i in items.children("per-synced") if i.get("collection") == "interaction_logs"
    } == {"per-synced"}
    assert len([i for i in items.children("per-hand") if i.get("collection") == "interaction_logs"]) == 0
    assert service.audit(plan.merge_id)["status"] == "merged"

    service.undo(plan.merge_id, by="tester")
    assert snapshot(world["dynamodb"], world["table"]) == before
    assert merge_module.ITEMS_PER_TRANSACTION == 97
