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
    buckets_of_partition,
    check_match_partitions,
    match_bucket,
    match_bucket_of,
)
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, _to_item
from rostersync.domain.records import Kind
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


def test_an_undo_puts_an_image_kept_before_the_index_back_with_its_bucket(
    dynamodb, directory_table, directory, written
):
    # Given the before-image of a guardian link kept by a run made before items carried a bucket
    record = written["guardian_links"][12]
    image = {k: v for k, v in record.to_item(DISTRICT).items() if k != "match_bucket"}

    # When an undo puts it back
    directory.put_item_image(image)

    # Then it is back in the partitions' index
    item = raw(dynamodb, directory_table, "guardian_links", record.id)
    wanted = match_bucket(DISTRICT, "guardian_links", "clever", record.provider_ids["clever"])
    assert item["match_bucket"]["S"] == wanted


# -- districts whose pairs were written before the index -----------------------------------------------------


def test_pairs_written_before_the_index_are_counted_then_bucketed(dynamodb, directory_table, directory, written):
    # Given some enrollments as an older version wrote them: no match_bucket
    old = written["enrollments"][:40]
    for record in old:
        item = {k: v for k, v in record.to_item(DISTRICT).items() if k != "match_bucket"}
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
    assert {r.id for r in old if "clever" in r.provider_ids} <= set().union(*(share(p) for p in range(4)))
    assert sum(directory.pair_index_from_table("enrollments", "clever", 4, p)[1] for p in range(4)) == 0
    assert directory.bucket_pairs() == 0
