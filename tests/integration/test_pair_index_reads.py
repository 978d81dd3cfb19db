"""The ByMatchBucket index as read: what a sync writes carries its bucket, and a Match partition reads exactly
its share of the pairs from the index (moto, the table as template.yaml defines it).

These tests only read, so one district is written once for the module (test_pair_index.py has the tests
that change the table, each on a district of its own)."""

from __future__ import annotations

from typing import Any

import pytest
from pair_index_fixture import DISTRICT, RecordingClient, clever_share, write_district

from rostersync.directory.keys import (
    MATCH_BUCKETS,
    PAIR_COLLECTIONS,
    buckets_of_partition,
    match_bucket,
    match_bucket_key,
)
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository


# One district for the module: conftest's function-scoped mock would wipe it after each test.
@pytest.fixture(scope="module")
def dynamodb(module_dynamodb: Any) -> Any:
    return module_dynamodb


@pytest.fixture(scope="module")
def directory_table(module_directory_table: str) -> str:
    return module_directory_table


@pytest.fixture(scope="module")
def recording(dynamodb: Any) -> RecordingClient:
    return RecordingClient(dynamodb)


@pytest.fixture(scope="module")
def directory(recording: RecordingClient, directory_table: str) -> DirectoryRepository:
    return DirectoryRepository(recording, directory_table, DISTRICT, threads=4)


@pytest.fixture(scope="module")
def written(directory: DirectoryRepository) -> dict[str, list[DirectoryRecord]]:
    return write_district(directory)


# -- what a sync writes carries its bucket ----------------------------------------------------------------


def test_every_pair_the_sync_writes_carries_its_bucket_and_nothing_else_does(dynamodb, directory_table, written):
    # When every item of the table is read back
    items = [{k: v for k, v in i.items()} for i in dynamodb.scan(TableName=directory_table)["Items"]]

    # Then each enrollment and guardian link linked to a provider carries the bucket of that link
    pairs = [i for i in items if i["pk"]["S"].split("#")[1] in PAIR_COLLECTIONS]
    linked = [i for i in pairs if i["provider_ids"]["M"]]
    assert len(linked) == 2 * 380
    for item in linked:
        collection = item["pk"]["S"].split("#")[1]
        ((provider, provider_id),) = ((p, v["S"]) for p, v in item["provider_ids"]["M"].items())
        assert item["match_bucket"]["S"] == match_bucket(DISTRICT, collection, provider, provider_id)
        assert item["match_bucket"]["S"].startswith(f"{DISTRICT}#{collection}#{provider}#")
    # and the product's own pairs, people, classrooms and schools are not in the index (it is sparse)
    assert all("match_bucket" not in i for i in pairs if not i["provider_ids"]["M"])
    others = [i for i in items if i["pk"]["S"].split("#")[1] not in PAIR_COLLECTIONS]
    assert len(others) == 22 and all("match_bucket" not in i for i in others)


@pytest.mark.parametrize("partitions", [1, 4, 16])
def test_partition_p_of_n_reads_exactly_the_pairs_that_hash_to_it_and_all_of_them_together_the_index(
    directory, written, partitions
):
    for collection, records in written.items():
        # Given the collection's whole index as the table holds it (the provider's entries)
        whole = {e.id: e for e in directory.index(collection) if "clever" in e.provider_ids}

        # When every partition reads its share from the index
        shares = [
            {e.id: e for e in directory.pair_index(collection, "clever", partitions, p)} for p in range(partitions)
        ]

        # Then each holds exactly the entries whose provider id is in its partition, as the table has them
        for p, share in enumerate(shares):
            assert set(share) == clever_share(records, partitions, p), (collection, p)
            assert all(share[i] == whole[i] for i in share)
        # and together they are the whole index, each entry in one partition only
        assert sum(len(s) for s in shares) == len(whole) == 360
        assert set().union(*shares) == set(whole)


def test_a_partition_queries_only_its_buckets_and_reads_only_its_share(directory, recording, written):
    # Given a district's pairs, and partition 5 of 16
    partitions, p = 16, 5

    # When it reads its share of both collections
    recording.queries.clear()
    read = {c: list(directory.pair_index(c, "clever", partitions, p)) for c in PAIR_COLLECTIONS}

    # Then it asked the ByMatchBucket index for its 4 buckets of each collection and nothing else
    asked = sorted((kw.get("IndexName"), kw["ExpressionAttributeValues"][":b"]["S"]) for kw, _ in recording.queries)
    wanted = sorted(
        ("ByMatchBucket", match_bucket_key(DISTRICT, c, "clever", b))
        for c in PAIR_COLLECTIONS
        for b in buckets_of_partition(partitions, p)
    )
    assert asked == wanted and len(asked) == 2 * MATCH_BUCKETS // partitions
    # and DynamoDB read (and billed) only its share's items: a sixteenth of the pairs, not all of them
    scanned = sum(answer["ScannedCount"] for _, answer in recording.queries)
    share = sum(len(clever_share(written[c], partitions, p)) for c in PAIR_COLLECTIONS)
    assert scanned == sum(len(entries) for entries in read.values()) == share
    assert share < sum(len(r) for r in written.values()) / 8


def test_reading_the_table_instead_scans_every_pair(directory, recording, written):
    # The read the index replaces (kept for districts whose older pairs lack their bucket): the same share,
    # but DynamoDB reads every item of every shard for it; this is what the test above would see if a
    # partition read the whole index
    recording.queries.clear()
    entries, unbucketed = directory.pair_index_from_table("enrollments", "clever", 16, 5)

    scanned = sum(answer["ScannedCount"] for _, answer in recording.queries)
    assert {e.id for e in entries} == clever_share(written["enrollments"], 16, 5)
    assert scanned == len(written["enrollments"]) and unbucketed == 0
