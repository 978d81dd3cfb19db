"""The ByMatchBucket index: every enrollment and guardian link carries its provider id's bucket, and a Match
partition reads exactly its share of them from the index (moto, the table as template.yaml defines it).

The tests here change the table, so each writes the district afresh; test_pair_index_reads.py reads one
district written once for its module."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pair_index_fixture import DISTRICT, RecordingClient, in_bucket, raw, write_district

from rostersync.directory.keys import (
    MATCH_BUCKETS,
    PAIR_COLLECTIONS,
    buckets_of_partition,
    check_match_partitions,
    match_bucket,
    match_bucket_of,
    provider_key,
)
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, _to_item
from rostersync.domain.records import Kind
from rostersync.errors import LinkError
from rostersync.matching.partition import partition_of


@pytest.fixture
def directory(dynamodb: Any, directory_table: str) -> DirectoryRepository:
    return DirectoryRepository(RecordingClient(dynamodb), directory_table, DISTRICT, threads=4)


@pytest.fixture
def written(directory: DirectoryRepository) -> dict[str, list[DirectoryRecord]]:
    return write_district(directory)


# -- the keys -------------------------------------------------------------------------------------------


def test_a_partition_is_its_buckets_for_every_count_that_divides_them():
    # Given provider ids of every shape the providers send
    ids = [f"sec-{n}:stu-{n * 7}" for n in range(2_000)] + [f"{n:024x}" for n in range(2_000)]

    for n in (1, 2, 4, 8, 16, 32, 64):
        # Then a provider id's partition is its bucket's, and a partition's buckets are those b % n == p
        assert all(partition_of(pid, n) == match_bucket_of(pid) % n for pid in ids), n
        shares = [buckets_of_partition(n, p) for p in range(n)]
        assert sorted(b for share in shares for b in share) == list(range(MATCH_BUCKETS))
        assert all(b % n == p for p, share in enumerate(shares) for b in share)


@pytest.mark.parametrize("partitions", [0, 3, 7, 12, 48, 128])
def test_a_partition_count_that_does_not_divide_the_buckets_is_refused(partitions):
    with pytest.raises(ValueError, match=f"MatchPartitions {partitions} does not divide the 64 buckets"):
        check_match_partitions(partitions)


# -- a pair is in ByMatchBucket only; the other records in ByProviderId ---------------------------------------


def _by_provider_id(dynamodb: Any, table: str, collection: str, provider: str, provider_id: str) -> list[Any]:
    key = provider_key(DISTRICT, collection, provider, provider_id)
    return dynamodb.query(
        TableName=table,
        IndexName="ByProviderId",
        KeyConditionExpression="provider_key = :k",
        ExpressionAttributeValues={":k": {"S": key}},
    )["Items"]


def test_a_synced_pair_is_in_its_bucket_and_not_in_the_provider_id_index(dynamodb, directory_table, written):
    # Given the district written as the sync writes it (to_item)
    for collection in PAIR_COLLECTIONS:
        record = written[collection][17]
        provider_id = record.provider_ids["clever"]
        item = raw(dynamodb, directory_table, collection, record.id)

        # Then its item carries its bucket and no provider_key: the index lists it in its bucket only
        assert "provider_key" not in item
        assert record.id in in_bucket(dynamodb, directory_table, collection, "clever", provider_id)
        assert _by_provider_id(dynamodb, directory_table, collection, "clever", provider_id) == []

    # while a person, a classroom and a school are in ByProviderId, and in no bucket
    for collection, record_id, provider_id in (
        ("people", "per_3", "stu-3"),
        ("classrooms", "cls_1", "sec-1"),
        ("schools", "sch_1", "s-1"),
    ):
        item = raw(dynamodb, directory_table, collection, record_id)
        assert "match_bucket" not in item
        found = _by_provider_id(dynamodb, directory_table, collection, "clever", provider_id)
        assert [i["sk"]["S"] for i in found] == [record_id]


def test_a_pair_is_found_by_its_provider_id_through_its_bucket(directory, written):
    # Given synced pairs (in no ByProviderId entry) and the product's own (no link)
    for collection, kind in (("enrollments", Kind.ENROLLMENTS), ("guardian_links", Kind.GUARDIAN_LINKS)):
        record = written[collection][23]

        # Then each is found by its provider id, and an id nobody carries finds nothing
        found = directory.find_by_provider_id(kind, "clever", record.provider_ids["clever"])
        assert found is not None and found.id == record.id and found.fields == record.fields
        assert directory.find_by_provider_id(kind, "clever", "sec-0:stu-nobody") is None
        # a bucket holds other pairs: the one asked for is the one found, of the provider asked for
        other = written[collection][365]  # a oneroster pair
        assert directory.find_by_provider_id(kind, "clever", other.provider_ids["oneroster"]) is None
        assert directory.find_by_provider_id(kind, "oneroster", other.provider_ids["oneroster"]).id == other.id


def test_linking_a_pair_to_an_id_another_pair_carries_is_refused(directory, written):
    # Given a synced enrollment and one of the product's own
    taken = written["enrollments"][41].provider_ids["clever"]

    # Then the product's cannot be linked to the synced one's id: the look-up through the bucket finds it
    with pytest.raises(LinkError, match=f"clever id {taken} is already linked to enrollments record"):
        directory.link_provider_id(Kind.ENROLLMENTS, "enr_product_1", "clever", taken)


def test_a_pair_written_by_an_older_version_leaves_the_provider_id_index_when_the_sync_updates_it(
    dynamodb, directory_table, directory, written
):
    # Given a guardian link as a version before this one wrote it: in ByProviderId as well as in its bucket
    record = written["guardian_links"][5]
    provider_id = record.provider_ids["clever"]
    old = {**record.to_item(DISTRICT), "provider_key": provider_key(DISTRICT, "guardian_links", "clever", provider_id)}
    dynamodb.put_item(TableName=directory_table, Item=_to_item(old))
    assert len(_by_provider_id(dynamodb, directory_table, "guardian_links", "clever", provider_id)) == 1

    # When Upsert updates it
    directory.update_synced(replace(record, fields={"n": "changed"}))

    # Then it is out of ByProviderId and still in its bucket
    assert "provider_key" not in raw(dynamodb, directory_table, "guardian_links", record.id)
    assert _by_provider_id(dynamodb, directory_table, "guardian_links", "clever", provider_id) == []
    assert record.id in in_bucket(dynamodb, directory_table, "guardian_links", "clever", provider_id)


# -- a sync's later writes keep the bucket right ----------------------------------------------------------


def test_an_update_that_rekeys_a_pair_moves_it_to_its_new_bucket(dynamodb, directory_table, directory, written):
    # Given a synced enrollment, relinked by a re-key to a new provider id (its record id stays)
    before = written["enrollments"][3]
    old_bucket = match_bucket_of(before.provider_ids["clever"])
    new_id = next(f"new-sec:stu-{n}" for n in range(100) if match_bucket_of(f"new-sec:stu-{n}") != old_bucket)
    relinked = replace(before, provider_ids={"clever": new_id})

    # When Upsert updates it
    directory.update_synced(relinked)

    # Then its item carries the new bucket, and the index lists it there and no longer in the old one
    item = raw(dynamodb, directory_table, "enrollments", before.id)
    assert item["match_bucket"]["S"] == match_bucket(DISTRICT, "enrollments", "clever", new_id)
    assert before.id in in_bucket(dynamodb, directory_table, "enrollments", "clever", new_id)
    assert before.id not in in_bucket(dynamodb, directory_table, "enrollments", "clever", before.provider_ids["clever"])


def test_an_update_that_drops_the_provider_link_leaves_the_index(dynamodb, directory_table, directory, written):
    before = written["guardian_links"][8]
    directory.update_synced(replace(before, provider_ids={}))

    item = raw(dynamodb, directory_table, "guardian_links", before.id)
    assert "match_bucket" not in item and "provider_key" not in item


def test_linking_and_unlinking_a_pair_sets_and_removes_its_bucket(dynamodb, directory_table, directory, written):
    # Given one of the product's own enrollments (no provider link)
    record_id = "enr_product_2"
    assert "match_bucket" not in raw(dynamodb, directory_table, "enrollments", record_id)

    # When it is linked to a provider id, then unlinked
    directory.link_provider_id(Kind.ENROLLMENTS, record_id, "clever", "sec-9:stu-9999")
    linked = raw(dynamodb, directory_table, "enrollments", record_id)
    directory.unlink_provider_id(Kind.ENROLLMENTS, record_id, "clever")
    unlinked = raw(dynamodb, directory_table, "enrollments", record_id)

    # Then the link brought its bucket and the unlink took it away
    assert linked["match_bucket"]["S"] == match_bucket(DISTRICT, "enrollments", "clever", "sec-9:stu-9999")
    assert "match_bucket" not in unlinked


@pytest.mark.parametrize(
    "kept_by", ["a version before the bucket", "a version before pairs left ByProviderId", "this version"]
)
def test_an_undo_puts_an_image_back_as_the_sync_writes_it_now(dynamodb, directory_table, directory, written, kept_by):
    # Given the before-image of a guardian link linked to two providers, written by a Clever run (its second
    # link), as a run kept it: an older version's without a bucket and with the provider_key pairs carried
    # then, or with both; this version's with its bucket only
    first = written["guardian_links"][12]
    record = replace(first, provider_ids={"oneroster": "o-1", **first.provider_ids})
    provider_id = record.provider_ids["clever"]
    image = record.to_item(DISTRICT, provider="clever")
    assert image["match_bucket"] == match_bucket(DISTRICT, "guardian_links", "clever", provider_id)
    if kept_by != "this version":
        image["provider_key"] = provider_key(DISTRICT, "guardian_links", "clever", provider_id)
    if kept_by == "a version before the bucket":
        del image["match_bucket"]

    # When an undo puts it back
    directory.put_item_image(image)

    # Then it is back in the partitions' index under the link of the run that wrote it, and not in ByProviderId
    item = raw(dynamodb, directory_table, "guardian_links", record.id)
    assert item["match_bucket"]["S"] == match_bucket(DISTRICT, "guardian_links", "clever", provider_id)
    assert "provider_key" not in item
    assert _by_provider_id(dynamodb, directory_table, "guardian_links", "clever", provider_id) == []


# -- districts whose pairs were written before the index -----------------------------------------------------


def test_pairs_written_before_the_index_are_counted_then_bucketed(dynamodb, directory_table, directory, written):
    # Given some enrollments as an older version wrote them: no match_bucket, and in ByProviderId
    old = written["enrollments"][:40]
    for record in old:
        item = {k: v for k, v in record.to_item(DISTRICT).items() if k != "match_bucket"}
        for provider, provider_id in list(record.provider_ids.items())[:1]:
            item["provider_key"] = provider_key(DISTRICT, "enrollments", provider, provider_id)
        dynamodb.put_item(TableName=directory_table, Item=_to_item(item))

    # Then the index misses them, and the partitions reading the table count them
    def share(p: int) -> set[str]:
        return {e.id for e in directory.pair_index("enrollments", "clever", 4, p)}

    assert not set().union(*(share(p) for p in range(4))) & {r.id for r in old}
    counted = [directory.pair_index_from_table("enrollments", "clever", 4, p)[1] for p in range(4)]
    assert sum(counted) == sum(1 for r in old if "clever" in r.provider_ids) > 0

    # When the district's pairs are bucketed (rostersync directory index-pairs)
    bucketed = directory.bucket_pairs()

    # Then every one of them is written once, the index holds them, and nothing is left to count
    assert bucketed == sum(counted)
    # and each write took its item out of ByProviderId, as the sync writes pairs now
    assert not any("provider_key" in raw(dynamodb, directory_table, "enrollments", r.id) for r in old)
    assert {r.id for r in old if "clever" in r.provider_ids} <= set().union(*(share(p) for p in range(4)))
    assert sum(directory.pair_index_from_table("enrollments", "clever", 4, p)[1] for p in range(4)) == 0
    assert directory.bucket_pairs() == 0
