"""Table keys of the directory. Every key starts with the district id (DESIGN §4).

A district's records of one collection are spread over ``SHARDS`` partition keys derived from the
record id, so a million-student district never writes to a single hot partition; readers query the
shards in parallel.
"""

from __future__ import annotations

import hashlib
import zlib

from rostersync.domain.records import Kind

SHARDS = 16

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
