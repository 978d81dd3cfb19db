"""Table keys of the directory. Every key starts with the district id (DESIGN §4).

A district's records of one collection are spread over ``SHARDS`` partition keys derived from the
record id, so a million-student district never writes to a single hot partition; readers query the
shards in parallel.

Enrollments and guardian links also carry a ``match_bucket`` (the ``ByMatchBucket`` index): one of
``MATCH_BUCKETS`` buckets of their provider id, so a Match partition reads only its share of them.
"""

from __future__ import annotations

import hashlib
import zlib

from rostersync.domain.records import Kind

SHARDS = 16
# Buckets of the provider id that enrollments and guardian links are indexed by (``ByMatchBucket``). Match
# runs in a number of partitions that divides it, so a partition's share is a set of whole buckets.
MATCH_BUCKETS = 64
# The collections that carry ``match_bucket`` (the index is sparse: nothing else is in it).
PAIR_COLLECTIONS = ("enrollments", "guardian_links")

# People of every role share one collection, so a person whose role changes keeps one item.
COLLECTION_OF_KIND = {
    Kind.SCHOOLS: "schools",
    Kind.CLASSROOMS: "classrooms",
    Kind.STUDENTS: "people",
    Kind.TEACHERS: "people",
    Kind.STAFF: "people",
    Kind.GUARDIANS: "people",
    Kind.ENROLLMENTS: "enrollments",
    Kind.GUARDIAN_LINKS: "guardian_links",
}
COLLECTIONS = ("schools", "classrooms", "people", "enrollments", "guardian_links")

_ID_PREFIX = {
    "schools": "sch",
    "classrooms": "cls",
    "people": "per",
    "enrollments": "enr",
    "guardian_links": "gln",
}


def shard_of(record_id: str) -> int:
    return zlib.crc32(record_id.encode("utf-8")) % SHARDS


def partition_key(district_id: str, collection: str, shard: int) -> str:
    return f"{district_id}#{collection}#{shard:02d}"


def provider_key(district_id: str, collection: str, provider: str, provider_id: str) -> str:
    """The ``ByProviderId`` index key: look a record up by (provider, provider id)."""
    return f"{district_id}#{collection}#{provider}:{provider_id}"


def parent_key(district_id: str, parent_id: str) -> str:
    """The ``ByParent`` index key: a classroom's roster, a school's students."""
    return f"{district_id}#{parent_id}"


def synced_record_id(district_id: str, collection: str, provider: str, provider_id: str) -> str:
    """The id a sync gives a record it creates: derived from its provider id, so re-running a step
    writes the same item again instead of a duplicate."""
    digest = hashlib.sha256(f"{district_id}/{collection}/{provider}/{provider_id}".encode()).hexdigest()
    return f"{_ID_PREFIX[collection]}_{digest[:20]}"


def match_bucket_of(provider_id: str) -> int:
    """The bucket of an enrollment's or guardian link's provider id (a stable hash, as
    ``matching.partition.partition_of``: ``partition_of(pid, n) == match_bucket_of(pid) % n`` for every ``n``
    that divides ``MATCH_BUCKETS``)."""
    return zlib.crc32(provider_id.encode("utf-8")) % MATCH_BUCKETS


def match_bucket_key(district_id: str, collection: str, provider: str, bucket: int) -> str:
    """The ``ByMatchBucket`` index key: one bucket of a district's enrollments or guardian links of one
    provider (``district#collection#provider#BB``)."""
    return f"{district_id}#{collection}#{provider}#{bucket:02d}"


def match_bucket(district_id: str, collection: str, provider: str, provider_id: str) -> str:
    """The ``match_bucket`` attribute of a pair item linked to ``provider_id``."""
    return match_bucket_key(district_id, collection, provider, match_bucket_of(provider_id))


def buckets_of_partition(partitions: int, partition: int) -> list[int]:
    """The buckets Match partition ``partition`` of ``partitions`` reads: those ``b`` with ``b % partitions ==
    partition``. ``ValueError`` unless ``partitions`` divides ``MATCH_BUCKETS``."""
    check_match_partitions(partitions)
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} is not one of {partitions}")
    return list(range(partition, MATCH_BUCKETS, partitions))


def check_match_partitions(partitions: int) -> None:
    """``ValueError`` unless Match's partitions are a whole number of buckets each."""
    if partitions < 1 or MATCH_BUCKETS % partitions:
        allowed = ", ".join(str(n) for n in range(1, MATCH_BUCKETS + 1) if MATCH_BUCKETS % n == 0)
        raise ValueError(
            f"MatchPartitions {partitions} does not divide the {MATCH_BUCKETS} buckets of the enrollments' and "
            f"guardian links' index: use one of {allowed}"
        )
