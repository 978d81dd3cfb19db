"""DirectoryRepository and SyncStateRepository against moto, on tables built from template.yaml."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

from rostersync.directory.keys import SHARDS, partition_key, shard_of
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, PackedIndex, SyncStateRepository
from rostersync.domain.records import Kind
from rostersync.errors import LockHeldError

DISTRICT_A = "district-a"
DISTRICT_B = "district-b"
SCHOOL_ID = "sch_lincoln"
CLASSROOM_ID = "cls_algebra"


def student(n: int, **changes: Any) -> DirectoryRecord:
    values: dict[str, Any] = {
        "id": f"per_{n:05d}",
        "kind": Kind.STUDENTS,
        "status": "active",
        "managed_by_sync": True,
        "provider_ids": {"clever": f"stu-{n}"},
        "fields": {"given_name": f"Student{n}", "family_name": "Doe", "grade": "7", "schools": [SCHOOL_ID]},
        "content_hash": f"hash-{n}",
        "parent_id": SCHOOL_ID,
    }
    values.update(changes)
    return DirectoryRecord(**values)


def enrollment(n: int, classroom_id: str = CLASSROOM_ID) -> DirectoryRecord:
    return DirectoryRecord(
        id=f"enr_{n:05d}",
        kind=Kind.ENROLLMENTS,
        status="active",
        managed_by_sync=True,
        provider_ids={"clever": f"sec-1:stu-{n}"},
        fields={"classroom": classroom_id, "person": f"per_{n:05d}", "role": "student"},
        content_hash=f"enr-hash-{n}",
        parent_id=classroom_id,
    )


def by_id(records: Any) -> dict[str, Any]:
    return {r.id: r for r in records}


def raw_item(dynamodb: Any, table: str, district_id: str, collection: str, record_id: str) -> dict[str, Any] | None:
    key = {"pk": {"S": partition_key(district_id, collection, shard_of(record_id))}, "sk": {"S": record_id}}
    return dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def item_count(dynamodb: Any, table: str) -> int:
    return dynamodb.scan(TableName=table, Select="COUNT")["Count"]


@pytest.fixture
def directory(dynamodb: Any, directory_table: str) -> DirectoryRepository:
    return DirectoryRepository(dynamodb, directory_table, DISTRICT_A, threads=4)


@pytest.fixture
def state(dynamodb: Any, sync_state_table: str) -> SyncStateRepository:
    return SyncStateRepository(dynamodb, sync_state_table, DISTRICT_A)


# -- DirectoryRepository: writes and reads ----------------------------------------------------------


def test_records_and_index_round_trip_across_all_shards(dynamodb, directory_table, directory):
    # Given enough students that every one of the 16 shards holds some
    students = [student(n) for n in range(200)]
    assert {shard_of(s.id) for s in students} == set(range(SHARDS))

    # When they are written and read back
    written = directory.put_records(students)
    read = by_id(directory.records("people"))
    index = by_id(directory.index("people"))

    # Then every record comes back whole, from 16 distinct partition keys of the district
    assert written == 200
    assert read == by_id(students)
    partition_keys = {i["pk"]["S"] for i in dynamodb.scan(TableName=directory_table)["Items"]}
    assert partition_keys == {partition_key(DISTRICT_A, "people", shard) for shard in range(SHARDS)}
    # And the index carries what matching needs, and nothing personal
    entry = index["per_00042"]
    assert (entry.kind, entry.status, entry.managed_by_sync, entry.content_hash, entry.provider_ids) == (
        Kind.STUDENTS,
        "active",
        True,
        "hash-42",
        {"clever": "stu-42"},
    )
    assert set(index) == set(read)
    assert not hasattr(entry, "fields")


def test_records_of_one_collection_do_not_include_another(directory):
    # Given students and enrollments of the same district
    directory.put_records([student(1), student(2), enrollment(1)])

    # When each collection is read
    # Then each holds only its own records
    assert set(by_id(directory.records("people"))) == {"per_00001", "per_00002"}
    assert set(by_id(directory.records("enrollments"))) == {"enr_00001"}
    assert list(directory.records("classrooms")) == []


def test_one_district_never_reads_another_districts_records(dynamodb, directory_table, directory):
    # Given two districts in the same table, with the same record ids and provider ids
    other = DirectoryRepository(dynamodb, directory_table, DISTRICT_B)
    directory.put_records([student(n) for n in range(30)])
    other.put_records([student(n, fields={"given_name": "Other"}) for n in range(5)])
    other.put_records([enrollment(1, classroom_id="cls_b_only")])

    # When district B reads
    b_people = by_id(other.records("people"))

    # Then it sees its own five students and none of district A's
    assert set(b_people) == {f"per_{n:05d}" for n in range(5)}
    assert all(r.fields == {"given_name": "Other"} for r in b_people.values())
    assert len(by_id(other.index("people"))) == 5
    assert other.get(Kind.STUDENTS, "per_00020") is None
    assert set(by_id(other.children(SCHOOL_ID))) == set(b_people)
    # And district A does not see B's enrollment, nor B's copy of a shared id
    assert list(directory.children("cls_b_only")) == []
    assert directory.get(Kind.STUDENTS, "per_00001").fields["given_name"] == "Student1"
    assert len(by_id(directory.records("people"))) == 30


def test_the_index_read_as_match_holds_it_is_the_index_packed_as_its_readers_read_it(directory):
    # Given students of every shard: linked to Clever, not linked, archived, linked to two providers, and
    # one whose product copy was edited
    people = [
        *(student(n) for n in range(60)),
        *(student(n, provider_ids={}) for n in range(60, 70)),
        student(70, status="archived"),
        student(71, provider_ids={"clever": "stu-71", "oneroster": "or-71"}),
        student(72, product_edits={"given_name": {"value": "Sam", "at": "2026-11-01T00:00:00Z"}}),
    ]
    directory.put_records(people)

    # When the people's index is read as Match's people phase holds it, and as the plain index
    held = list(directory.held_index("people", "clever"))
    entries = list(directory.index("people"))

    # Then it gives each entry of the plain index, in its order, under its Clever id (None for one not
    # linked to Clever): packed when it is of the shape that packs, whole otherwise
    assert [provider_id for provider_id, _ in held] == [e.provider_ids.get("clever") for e in entries]
    whole = {e.id for _, e in held if not isinstance(e, bytes)}
    assert whole == {*(f"per_{n:05d}" for n in range(60, 70)), "per_00071", "per_00072"}
    # And the packed index made of it looks up every linked entry as the plain index has it
    index = PackedIndex("clever")
    for provider_id, entry in held:
        if provider_id is not None:
            index.add_held(provider_id, entry)
    assert dict(index.items()) == {e.provider_ids["clever"]: e for e in entries if "clever" in e.provider_ids}
    assert index["stu-70"].status == "archived" and index["stu-72"].edited


def _operations(client: Any) -> list[str]:
    """The names of the operations ``client`` sends from now on (a botocore event, no request changed)."""
    sent: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: sent.append(model.name))
    return sent


@pytest.mark.parametrize(("unlinked", "by_key"), [(5, True), (30, False)], ids=["a-few-by-key", "many-by-query"])
def test_unlinked_of_reads_the_records_a_filtered_query_reads_by_key_when_they_are_few(
    dynamodb, directory_table, directory, unlinked, by_key
):
    # Given 100 people of the district, some of them the product's own (no link to Clever, or another
    # provider's), and another district's unlinked people under the same ids
    people = [student(n) for n in range(100 - unlinked)]
    people += [student(n, provider_ids={"oneroster": f"or-{n}"} if n % 2 else {}) for n in range(100 - unlinked, 100)]
    directory.put_records(people)
    other = DirectoryRepository(dynamodb, directory_table, DISTRICT_B)
    other.put_records([student(n, provider_ids={}, fields={"given_name": "Other"}) for n in range(90, 100)])
    entries = list(directory.index("people"))
    without = [e for e in entries if "clever" not in e.provider_ids]
    # and one of them linked to Clever after the index was read
    directory.put_records([student(99)])

    # When the records of the unlinked entries are read, with the operations they take counted
    sent = _operations(dynamodb)
    records = by_id(directory.unlinked_of("people", "clever", [(e.kind, e.id) for e in without], len(entries)))

    # Then they are the records the filtered Query of every shard returns, whole, the relinked one left out
    assert len(without) == unlinked
    assert records == by_id(directory.unlinked("people", "clever"))
    assert set(records) == {f"per_{n:05d}" for n in range(100 - unlinked, 99)}
    assert all(r.fields["family_name"] == "Doe" for r in records.values())
    # read by key (one BatchGetItem) when they are at most an eighth of the collection, else by the Query
    read_by = sent[: len(sent) - SHARDS]  # the reference read above is the last 16 Queries
    assert read_by == (["BatchGetItem"] if by_key else ["Query"] * SHARDS)


def test_unlinked_records_are_made_into_what_the_caller_keeps_as_they_are_read(dynamodb, directory_table, directory):
    # Given 40 people of the district, 30 of them the product's own
    directory.put_records([student(n) for n in range(10)] + [student(n, provider_ids={}) for n in range(10, 40)])
    entries = list(directory.index("people"))
    without = [(e.kind, e.id) for e in entries if "clever" not in e.provider_ids]
    sent = _operations(dynamodb)

    # When they are read with a conversion that keeps a name and drops one of them, the unlinked entries
    # given (a few: by key) or not held (None: too many were seen, so by the Query)
    def convert(record: DirectoryRecord) -> str | None:
        return None if record.id == "per_00012" else record.fields["given_name"]

    few = list(directory.unlinked_of("people", "clever", without[:3], len(entries), convert))
    unheld = sorted(directory.unlinked_of("people", "clever", None, len(entries), convert))

    # Then each comes as its conversion, the dropped one left out, read by key and by the Query
    assert sorted(few) == sorted(f"Student{int(i[4:])}" for _kind, i in without[:3] if i != "per_00012")
    assert unheld == sorted(f"Student{n}" for n in range(10, 40) if n != 12)
    assert sent == ["BatchGetItem"] + ["Query"] * SHARDS


def test_match_holds_the_unlinked_entries_up_to_a_bound_then_reads_them_by_the_query(
    dynamodb, directory_table, directory, monkeypatch
):
    from types import SimpleNamespace

    from rostersync.steps import match

    # Given 12 people of the district, 2 linked to Clever and 10 the product's own
    directory.put_records([student(n) for n in range(2)] + [student(n, provider_ids={}) for n in range(2, 12)])
    ctx = SimpleNamespace(directory=directory)

    # When Match reads the directory, holding at most 10 unlinked entries, then at most 9
    held = match._DirectoryRead.read(ctx, "clever", ["classrooms"])
    monkeypatch.setattr(match, "UNLINKED_HELD_MAX", 9)
    past = match._DirectoryRead.read(ctx, "clever", ["classrooms"])

    # Then it holds their kind and id while they are at most the bound, and none past it (read by the
    # Query then); the linked ones are in the index either way
    assert sorted(held.unlinked_people) == [(Kind.STUDENTS, f"per_{n:05d}") for n in range(2, 12)]
    assert past.unlinked_people is None
    assert held.people_indexed == past.people_indexed == 12 and len(past.index["people"]) == 2


def test_find_by_provider_id_uses_the_provider_index(directory):
    # Given students with Clever ids
    directory.put_records([student(1), student(2)])

    # When one is looked up by its Clever id
    found = directory.find_by_provider_id(Kind.STUDENTS, "clever", "stu-2")

    # Then that student is found whole
    assert found == student(2)


def test_find_by_provider_id_of_an_unknown_id_is_none(directory):
    # Given a student with a Clever id
    directory.put_records([student(1)])

    # When another id, another provider or another collection is looked up
    # Then nothing is found
    assert directory.find_by_provider_id(Kind.STUDENTS, "clever", "stu-999") is None
    assert directory.find_by_provider_id(Kind.STUDENTS, "oneroster", "stu-1") is None
    assert directory.find_by_provider_id(Kind.ENROLLMENTS, "clever", "stu-1") is None


def test_find_by_provider_id_keys_the_provider_index_by_district(dynamodb, directory_table, directory):
    # Given district A has a student with Clever id stu-1
    directory.put_records([student(1)])

    # When district B looks up the same Clever id
    other = DirectoryRepository(dynamodb, directory_table, DISTRICT_B)

    # Then district B finds nothing
    assert other.find_by_provider_id(Kind.STUDENTS, "clever", "stu-1") is None


def test_children_lists_a_classrooms_roster_through_by_parent(directory):
    # Given enrollments in two classrooms, and students whose parent is a school
    directory.put_records([enrollment(n) for n in range(1, 4)] + [enrollment(9, classroom_id="cls_other")])
    directory.put_records([student(1), student(2)])

    # When the roster of one classroom is read
    roster = by_id(directory.children(CLASSROOM_ID))

    # Then it holds exactly that classroom's enrollments, whole
    assert set(roster) == {"enr_00001", "enr_00002", "enr_00003"}
    assert roster["enr_00002"] == enrollment(2)
    # And the school's children are its students
    assert set(by_id(directory.children(SCHOOL_ID))) == {"per_00001", "per_00002"}


def test_update_synced_keeps_what_the_product_owns_on_the_item(dynamodb, directory_table, directory):
    # Given a synced student on whom the product stored its own attribute
    directory.put_records([student(7)])
    dynamodb.update_item(
        TableName=directory_table,
        Key={"pk": {"S": partition_key(DISTRICT_A, "people", shard_of("per_00007"))}, "sk": {"S": "per_00007"}},
        UpdateExpression="SET backpack_items = :n, nickname = :nick",
        ExpressionAttributeValues={":n": {"N": "3"}, ":nick": {"S": "Sam"}},
    )

    # When the sync updates the student's synced fields
    changed = student(7, fields={"given_name": "Samantha", "family_name": "Doe", "grade": "8"}, content_hash="h2")
    directory.update_synced(changed)

    # Then the synced part is replaced and the product's attributes stay
    assert directory.get(Kind.STUDENTS, "per_00007") == changed
    item = raw_item(dynamodb, directory_table, DISTRICT_A, "people", "per_00007")
    assert item["backpack_items"] == {"N": "3"}
    assert item["nickname"] == {"S": "Sam"}
    assert item_count(dynamodb, directory_table) == 1


def test_the_index_follows_updates_and_status_changes(directory):
    # Given a product student that a first sync then took over and changed
    directory.put_records([student(4, managed_by_sync=False, content_hash="")])
    directory.update_synced(student(4, content_hash="synced-hash", fields={"given_name": "New"}))

    # When it is archived and the matching index is read
    directory.set_status(Kind.STUDENTS, "per_00004", "archived")
    (entry,) = directory.index("people")

    # Then the index shows what the record now is, so the next Match neither rewrites nor misses it
    assert (entry.id, entry.managed_by_sync, entry.content_hash, entry.status) == (
        "per_00004",
        True,
        "synced-hash",
        "archived",
    )


def test_update_synced_drops_a_parent_the_record_no_longer_has(directory):
    # Given a staff member who belonged to a school
    directory.put_records([student(3, kind=Kind.STAFF)])

    # When the roster moves them to the district level (no school, no parent)
    directory.update_synced(student(3, kind=Kind.STAFF, parent_id="", fields={"schools": []}))

    # Then the school's children no longer include them
    assert list(directory.children(SCHOOL_ID)) == []
    assert directory.get(Kind.STAFF, "per_00003").parent_id == ""


def test_set_status_archives_a_sync_managed_record_in_place(dynamodb, directory_table, directory):
    # Given a sync-managed student
    directory.put_records([student(1)])

    # When it is archived
    archived = directory.set_status(Kind.STUDENTS, "per_00001", "archived")

    # Then it is archived, not deleted, and its synced data is intact
    assert archived is not None and archived.status == "archived"
    stored = directory.get(Kind.STUDENTS, "per_00001")
    assert stored == student(1, status="archived")
    assert "status_changed_at" in raw_item(dynamodb, directory_table, DISTRICT_A, "people", "per_00001")
    assert item_count(dynamodb, directory_table) == 1

    # And restoring brings the same record back
    assert directory.set_status(Kind.STUDENTS, "per_00001", "active").status == "active"
    assert directory.get(Kind.STUDENTS, "per_00001") == student(1)


def test_set_status_never_touches_a_product_record(dynamodb, directory_table, directory):
    # Given a student the product created (not sync-managed)
    directory.put_records([student(5, managed_by_sync=False)])

    # When sync tries to archive it
    result = directory.set_status(Kind.STUDENTS, "per_00005", "archived")

    # Then nothing changes
    assert result is None
    assert directory.get(Kind.STUDENTS, "per_00005").status == "active"
    assert item_count(dynamodb, directory_table) == 1


def test_set_status_of_a_missing_record_creates_nothing(dynamodb, directory_table, directory):
    # Given an empty directory
    # When sync tries to archive a record that is not there
    # Then it reports None and no item appears
    assert directory.set_status(Kind.STUDENTS, "per_00404", "archived") is None
    assert item_count(dynamodb, directory_table) == 0


def test_set_status_cannot_reach_another_districts_record(dynamodb, directory_table, directory):
    # Given district A's sync-managed student
    directory.put_records([student(1)])

    # When district B tries to archive the same id
    other = DirectoryRepository(dynamodb, directory_table, DISTRICT_B)

    # Then B gets None and A's student stays active
    assert other.set_status(Kind.STUDENTS, "per_00001", "archived") is None
    assert directory.get(Kind.STUDENTS, "per_00001").status == "active"
    assert item_count(dynamodb, directory_table) == 1


def test_write_requests_counts_batches_of_25(directory):
    # Given 60 records
    records = [student(n) for n in range(60)]

    # When they are written
    written = directory.put_records(records)

    # Then they took three BatchWriteItem requests (25 + 25 + 10)
    assert written == 60
    assert directory.write_requests == 3

    # And an update or a status change is one request each
    directory.update_synced(student(1, content_hash="new"))
    directory.set_status(Kind.STUDENTS, "per_00002", "archived")
    assert directory.write_requests == 5


def test_put_records_of_nothing_makes_no_request(directory):
    assert directory.put_records([]) == 0
    assert directory.write_requests == 0


# -- SyncStateRepository: the lock -------------------------------------------------------------------


def test_a_second_run_cannot_take_a_held_lock(state):
    # Given run-a holds the district's lock
    state.acquire_lock("run-a", ttl_seconds=3600, now=1_700_000_000)

    # When run-b tries to take it
    with pytest.raises(LockHeldError) as raised:
        state.acquire_lock("run-b", ttl_seconds=3600, now=1_700_000_100)

    # Then the error names the holder, and run-a still holds the lock
    assert "run-a" in str(raised.value)
    assert DISTRICT_A in str(raised.value)
    assert state.lock_holder()["run_id"] == "run-a"


def test_taking_the_lock_again_with_the_same_run_id_succeeds(state):
    # Given run-a holds the lock
    state.acquire_lock("run-a", ttl_seconds=3600, now=1_700_000_000)

    # When a retried Start takes it again with the same run id
    state.acquire_lock("run-a", ttl_seconds=3600, now=1_700_000_030)

    # Then run-a holds it
    assert state.lock_holder()["run_id"] == "run-a"


def test_an_expired_lock_can_be_taken(state):
    # Given run-a took a one-minute lock and crashed
    state.acquire_lock("run-a", ttl_seconds=60, now=1_000_000)

    # When run-b tries at the expiry second, then just after it
    with pytest.raises(LockHeldError):
        state.acquire_lock("run-b", ttl_seconds=60, now=1_000_060)
    state.acquire_lock("run-b", ttl_seconds=60, now=1_000_061)

    # Then run-b holds the lock, with its own expiry
    holder = state.lock_holder()
    assert (holder["run_id"], holder["expires_at"]) == ("run-b", 1_000_121)


def test_only_the_holder_releases_the_lock(state):
    # Given run-a holds the lock
    state.acquire_lock("run-a", ttl_seconds=3600, now=1_700_000_000)

    # When run-b tries to release it
    # Then nothing is released
    assert state.release_lock("run-b") is False
    assert state.lock_holder()["run_id"] == "run-a"

    # And when run-a releases it, the district is free
    assert state.release_lock("run-a") is True
    assert state.lock_holder() is None
    assert state.release_lock("run-a") is False


def test_locks_are_per_district(dynamodb, sync_state_table, state):
    # Given district A is syncing
    state.acquire_lock("run-a", ttl_seconds=3600, now=1_700_000_000)

    # When district B starts a run
    other = SyncStateRepository(dynamodb, sync_state_table, DISTRICT_B)
    other.acquire_lock("run-b", ttl_seconds=3600, now=1_700_000_000)

    # Then both hold their own lock
    assert state.lock_holder()["run_id"] == "run-a"
    assert other.lock_holder()["run_id"] == "run-b"


# -- SyncStateRepository: run records ------------------------------------------------------------------


def test_run_record_put_update_get(state):
    # Given a started run
    state.put_run("run-7", status="running", trigger="schedule", dry_run=False, settings_version=2)

    # When the report step records the outcome, with a value it does not have
    state.update_run(
        "run-7",
        status="succeeded",
        report_key="runs/district-a/run-7/report/report.json",
        counts={"students": {"created": 3, "updated": 1}},
        failure_reason=None,
    )

    # Then the run carries both, and the missing value was not written
    run = state.get_run("run-7")
    assert run == {
        "pk": DISTRICT_A,
        "sk": "RUN#run-7",
        "run_id": "run-7",
        "status": "succeeded",
        "trigger": "schedule",
        "dry_run": False,
        "settings_version": 2,
        "report_key": "runs/district-a/run-7/report/report.json",
        "counts": {"students": {"created": 3, "updated": 1}},
    }
    assert [r["run_id"] for r in state.runs()] == ["run-7"]


def test_a_run_first_recorded_by_an_update_carries_its_run_id(state):
    # Given a run whose Start died before it recorded the run (found by the fault campaign: its failure
    # report then wrote the record by an update alone)
    state.update_run("run-9", status="failed", failure_reason="The sync stopped on an internal error")

    # Then the record names its run, as every other run record does
    assert state.get_run("run-9")["run_id"] == "run-9"
    assert [r["run_id"] for r in state.runs()] == ["run-9"]


def test_get_run_of_an_unknown_run_is_none(dynamodb, sync_state_table, state):
    # Given district A has a run
    state.put_run("run-1", status="running")

    # Then an unknown run, or the same run id seen from district B, is not found
    assert state.get_run("run-404") is None
    assert SyncStateRepository(dynamodb, sync_state_table, DISTRICT_B).get_run("run-1") is None


def test_update_run_with_only_missing_values_changes_nothing(state):
    # Given a run
    state.put_run("run-8", status="running")

    # When an update carries no value at all
    state.update_run("run-8", failure_reason=None)

    # Then the run is unchanged
    assert state.get_run("run-8")["status"] == "running"


# -- throttling: unprocessed items and throttling errors ----------------------------------------------


class ThrottlingDynamoDB:
    """Wraps the mocked client: BatchWriteItem leaves every item unprocessed ``unprocessed_answers`` times
    before passing requests through; UpdateItem can answer a throttling error."""

    def __init__(self, client: Any, unprocessed_answers: int = 0, update_error: str | None = None) -> None:
        self._client = client
        self.unprocessed_answers = unprocessed_answers
        self.update_error = update_error
        self.batch_calls = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.batch_calls += 1
        if self.unprocessed_answers > 0:
            self.unprocessed_answers -= 1
            return {"UnprocessedItems": RequestItems}
        return self._client.batch_write_item(RequestItems=RequestItems)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        # the first half of the keys read, the rest left unprocessed, ``unprocessed_answers`` times
        self.batch_calls += 1
        ((table, asked),) = RequestItems.items()
        if self.unprocessed_answers <= 0:
            return self._client.batch_get_item(RequestItems=RequestItems)
        self.unprocessed_answers -= 1
        keys = asked["Keys"]
        half = max(1, len(keys) // 2) if len(keys) > 1 else 0
        answer = self._client.batch_get_item(RequestItems={table: {**asked, "Keys": keys[:half]}}) if half else {}
        answer["UnprocessedKeys"] = {table: {**asked, "Keys": keys[half:]}}
        return answer

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        if self.update_error:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": self.update_error, "Message": "slow down"}}, "UpdateItem")
        return self._client.update_item(**kwargs)


def test_unprocessed_items_are_resent_with_growing_jittered_backoff(dynamodb, directory_table):
    # Given DynamoDB leaves a batch unprocessed three times
    throttled = ThrottlingDynamoDB(dynamodb, unprocessed_answers=3)
    sleeps: list[float] = []
    repo = DirectoryRepository(throttled, directory_table, DISTRICT_A, sleep=sleeps.append)

    # When 10 records are written
    written = repo.put_records(student(n) for n in range(10))

    # Then the batch was sent four times, with three waits within the growing ceilings, and all were written
    from rostersync.directory.repository import UNPROCESSED_BASE_SECONDS

    assert written == 10 and throttled.batch_calls == 4 and repo.write_requests == 4
    assert len(sleeps) == 3
    assert all(0 <= wait <= UNPROCESSED_BASE_SECONDS * 2**n for n, wait in enumerate(sleeps, start=1))
    assert item_count(dynamodb, directory_table) == 10


def test_unprocessed_items_past_the_bound_raise_directory_throttled(dynamodb, directory_table):
    from rostersync.directory.repository import UNPROCESSED_MAX_RETRIES
    from rostersync.errors import DirectoryThrottledError

    # Given DynamoDB never processes the batch
    throttled = ThrottlingDynamoDB(dynamodb, unprocessed_answers=1_000)
    sleeps: list[float] = []
    repo = DirectoryRepository(throttled, directory_table, DISTRICT_A, sleep=sleeps.append)

    # When a record is written, Then it gives up after the bound with a clear error, having waited each time
    with pytest.raises(DirectoryThrottledError, match="unprocessed after 8 resends"):
        repo.put_records([student(1)])
    assert throttled.batch_calls == UNPROCESSED_MAX_RETRIES + 1
    assert len(sleeps) == UNPROCESSED_MAX_RETRIES
    assert item_count(dynamodb, directory_table) == 0


def test_reads_by_key_left_unprocessed_are_asked_again_then_raise_directory_throttled(dynamodb, directory_table):
    from rostersync.directory.repository import UNPROCESSED_BASE_SECONDS, UNPROCESSED_MAX_RETRIES
    from rostersync.errors import DirectoryThrottledError

    DirectoryRepository(dynamodb, directory_table, DISTRICT_A).put_records(student(n) for n in range(8))
    ids = [student(n).id for n in range(8)]
    for read in ("get_many", "raw_items"):
        # Given DynamoDB answers half of a BatchGetItem's keys and leaves the rest unprocessed, three times
        throttled = ThrottlingDynamoDB(dynamodb, unprocessed_answers=3)
        sleeps: list[float] = []
        repo = DirectoryRepository(throttled, directory_table, DISTRICT_A, sleep=sleeps.append)

        # When the 8 students are read by key, Then every one comes back, the rest asked again after each wait
        if read == "get_many":
            found = set(repo.get_many(Kind.STUDENTS, ids))
        else:
            found = set(repo.raw_items((Kind.STUDENTS, i) for i in ids))
        assert found == set(ids), read
        assert throttled.batch_calls == 4 and len(sleeps) == 3, read
        assert all(0 <= wait <= UNPROCESSED_BASE_SECONDS * 2**n for n, wait in enumerate(sleeps, start=1)), read

        # And when DynamoDB never processes the last key, the read gives up after the bound with a clear error
        never = ThrottlingDynamoDB(dynamodb, unprocessed_answers=1_000)
        repo = DirectoryRepository(never, directory_table, DISTRICT_A, sleep=lambda _seconds: None)
        with pytest.raises(DirectoryThrottledError, match=f"unprocessed after {UNPROCESSED_MAX_RETRIES} retries"):
            repo.get_many(Kind.STUDENTS, ids) if read == "get_many" else repo.raw_items((Kind.STUDENTS, i) for i in ids)
        assert never.batch_calls == UNPROCESSED_MAX_RETRIES + 1, read


def test_a_throttling_error_after_botocores_retries_becomes_directory_throttled(dynamodb, directory_table):
    from rostersync.errors import DirectoryThrottledError

    # Given the table answers updates with ProvisionedThroughputExceededException (botocore gave up)
    repo = DirectoryRepository(
        ThrottlingDynamoDB(dynamodb, update_error="ProvisionedThroughputExceededException"), directory_table, DISTRICT_A
    )

    # When a record is updated, Then the step raises the error the state machine retries
    with pytest.raises(DirectoryThrottledError, match="ProvisionedThroughputExceededException"):
        repo.update_synced(student(1))


def test_other_client_errors_are_not_taken_for_throttling(dynamodb, directory_table):
    from botocore.exceptions import ClientError

    repo = DirectoryRepository(
        ThrottlingDynamoDB(dynamodb, update_error="ValidationException"), directory_table, DISTRICT_A
    )

    with pytest.raises(ClientError, match="ValidationException"):
        repo.update_synced(student(1))


# -- writes sent side by side: a plan chunk's requests from the repository's threads -----------------

_CALLER = contextvars.ContextVar("caller", default="none")


class GatedDynamoDB:
    """Wraps the mocked client: the first ``parties`` writes each wait until all of them are in flight at once
    (a barrier), so writes sent one after another break it (the first waits alone); notes each write's
    thread and the caller's context it ran in; can fail the write of one record."""

    def __init__(self, client: Any, parties: int, fail_record: str | None = None) -> None:
        self._client = client
        self._barrier = threading.Barrier(parties, timeout=120)  # only a failing test ever waits it out
        self._parties = parties
        self._lock = threading.Lock()
        self.calls = 0
        self.threads: set[int] = set()
        self.contexts: set[str] = set()
        self.fail_record = fail_record

    def _gate(self, record_ids: list[str]) -> None:
        with self._lock:
            self.calls += 1
            first = self.calls <= self._parties
            self.threads.add(threading.get_ident())
            self.contexts.add(_CALLER.get())
        if first:
            self._barrier.wait()
        if self.fail_record in record_ids:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad item"}}, "BatchWriteItem")

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        ((_table, requests),) = RequestItems.items()
        self._gate([r["PutRequest"]["Item"]["sk"]["S"] for r in requests])
        return self._client.batch_write_item(RequestItems=RequestItems)

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self._gate([kwargs["Key"]["sk"]["S"]])
        return self._client.update_item(**kwargs)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        ((_table, asked),) = RequestItems.items()
        self._gate([key["sk"]["S"] for key in asked["Keys"]])
        return self._client.batch_get_item(RequestItems=RequestItems)


def test_put_records_sends_its_batches_side_by_side_in_the_callers_context(dynamodb, directory_table):
    # Given a repository with 4 threads, and DynamoDB answering no write until 4 are in flight
    gated = GatedDynamoDB(dynamodb, parties=4)
    repo = DirectoryRepository(gated, directory_table, DISTRICT_A, threads=4)

    # When 1,000 students are written (40 requests) by a caller with its own context (an invocation's role)
    _CALLER.set("upsert-invocation")
    written = repo.put_records(student(n) for n in range(1_000))

    # Then they were all written, 25 a request, from 4 threads at once, each in the caller's context
    assert written == 1_000 and item_count(dynamodb, directory_table) == 1_000
    assert gated.calls == 40 and repo.write_requests == 40
    assert len(gated.threads) == 4
    assert gated.contexts == {"upsert-invocation"}


def test_update_many_sends_its_updates_side_by_side(dynamodb, directory_table, directory):
    # Given 30 students written, then changed
    directory.put_records(student(n) for n in range(30))
    gated = GatedDynamoDB(dynamodb, parties=3)
    repo = DirectoryRepository(gated, directory_table, DISTRICT_A, threads=3)

    # When they are updated with a repository of 3 threads, DynamoDB answering none until 3 are in flight
    changed = {"given_name": "Changed", "family_name": "Doe", "grade": "8", "schools": [SCHOOL_ID]}
    written = repo.update_many((student(n, fields=changed, content_hash=f"new-{n}"), ()) for n in range(30))

    # Then every one is updated, one request each, counted exactly
    assert written == 30 and repo.write_requests == 30 and gated.calls == 30
    assert {
        r.fields["given_name"] for r in directory.get_many(Kind.STUDENTS, [student(n).id for n in range(30)]).values()
    } == {"Changed"}


def test_records_are_read_by_key_side_by_side(dynamodb, directory_table, directory):
    # Given 1,000 students (ten BatchGetItems of 100), and DynamoDB answering no read until 5 are in flight
    directory.put_records(student(n) for n in range(1_000))
    ids = [student(n).id for n in range(1_000)] + ["per_absent"]

    # When a repository of 5 threads reads them by key, whole records and whole items
    for read in ("get_many", "raw_items"):
        gated = GatedDynamoDB(dynamodb, parties=5)
        repo = DirectoryRepository(gated, directory_table, DISTRICT_A, threads=5)
        if read == "get_many":
            found = {i: r.fields["given_name"] for i, r in repo.get_many(Kind.STUDENTS, ids).items()}
        else:
            found = {
                i: item["fields"]["given_name"] for i, item in repo.raw_items((Kind.STUDENTS, i) for i in ids).items()
            }

        # Then every one is found, under its id, the absent one left out, in 11 requests from 5 threads
        assert found == {student(n).id: f"Student{n}" for n in range(1_000)}, read
        assert gated.calls == 11 and len(gated.threads) == 5, read


def test_a_failed_write_among_concurrent_ones_fails_the_call_and_stops_the_sending(dynamodb, directory_table):
    from botocore.exceptions import ClientError

    # Given DynamoDB refuses the first batch of 1,000 students (40 batches), sent from 4 threads
    gated = GatedDynamoDB(dynamodb, parties=1, fail_record=student(5).id)
    repo = DirectoryRepository(gated, directory_table, DISTRICT_A, threads=4)

    # When the students are written, Then the refusal is raised (the chunk fails, and is retried whole)
    with pytest.raises(ClientError, match="ValidationException"):
        repo.put_records(student(n) for n in range(1_000))
    # and the refused batch wrote nothing, and the batches not yet sent when it failed never were
    assert raw_item(dynamodb, directory_table, DISTRICT_A, "people", student(5).id) is None
    assert gated.calls < 40 and item_count(dynamodb, directory_table) < 1_000 - 25
    # and writing them again (the retry) writes every one
    gated.fail_record = None
    assert repo.put_records(student(n) for n in range(1_000)) == 1_000
    assert item_count(dynamodb, directory_table) == 1_000


def test_get_many_reads_records_by_id_in_batches_and_leaves_out_the_missing(dynamodb, directory_table, directory):
    # Given 230 students (three BatchGetItem calls of at most 100), and another district's student
    directory.put_records(student(n) for n in range(230))
    DirectoryRepository(dynamodb, directory_table, DISTRICT_B).put_records([student(999)])

    # When the before-images of some of them, an unknown id and the other district's id are read
    wanted = [f"per_{n:05d}" for n in range(0, 230, 2)] + ["per_nobody", "per_00999"]
    found = directory.get_many(Kind.STUDENTS, wanted)

    # Then each existing record of this district comes back with its fields, nothing else
    assert set(found) == {f"per_{n:05d}" for n in range(0, 230, 2)}
    assert found["per_00228"].fields["given_name"] == "Student228"
