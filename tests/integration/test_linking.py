"""Linking product records to provider ids (``DirectoryRepository.link_provider_id``), against moto."""

from __future__ import annotations

from typing import Any

import pytest

from rostersync.directory.keys import partition_key, shard_of
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository
from rostersync.domain.records import Kind
from rostersync.errors import LinkError

DISTRICT = "d-link"


@pytest.fixture
def directory(dynamodb: Any, directory_table: str) -> DirectoryRepository:
    """A district with two product schools (unlinked) and a product teacher, none sync-managed."""
    repo = DirectoryRepository(dynamodb, directory_table, DISTRICT)
    repo.put_records(
        [
            DirectoryRecord("sch-a", Kind.SCHOOLS, "active", False, {}, {"name": "A"}, product_fields={"tz": "UTC"}),
            DirectoryRecord("sch-b", Kind.SCHOOLS, "active", False, {}, {"name": "B"}),
            DirectoryRecord("per-t", Kind.TEACHERS, "active", False, {}, {"roles": ["teacher"]}),
        ]
    )
    return repo


def test_a_linked_school_is_found_by_its_provider_id_and_keeps_its_own_fields(directory: DirectoryRepository) -> None:
    assert directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1") is True

    found = directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-1")
    assert found is not None and found.id == "sch-a"
    assert found.provider_ids == {"clever": "c-1"}
    assert found.product_fields == {"tz": "UTC"} and found.fields == {"name": "A"} and not found.managed_by_sync


def test_linking_the_same_pair_twice_writes_nothing(directory: DirectoryRepository) -> None:
    directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1")
    writes = directory.write_requests

    assert directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1") is False
    assert directory.write_requests == writes


def test_a_provider_id_already_carried_by_another_record_is_refused(directory: DirectoryRepository) -> None:
    directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1")

    with pytest.raises(LinkError, match="clever id c-1 is already linked to schools record sch-a"):
        directory.link_provider_id(Kind.SCHOOLS, "sch-b", "clever", "c-1")
    assert directory.get(Kind.SCHOOLS, "sch-b").provider_ids == {}  # type: ignore[union-attr]


def test_relinking_to_another_id_needs_replace(directory: DirectoryRepository) -> None:
    directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1")

    with pytest.raises(LinkError, match="already linked to clever id c-1"):
        directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-2")
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-1").id == "sch-a"  # type: ignore[union-attr]

    assert directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-2", replace=True) is True
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-1") is None
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-2").id == "sch-a"  # type: ignore[union-attr]


def test_an_unknown_record_is_refused_and_nothing_is_created(directory: DirectoryRepository) -> None:
    with pytest.raises(LinkError, match="no schools record 'sch-x'"):
        directory.link_provider_id(Kind.SCHOOLS, "sch-x", "clever", "c-9")
    assert directory.get(Kind.SCHOOLS, "sch-x") is None
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-9") is None


def test_people_of_any_kind_share_one_collection(directory: DirectoryRepository) -> None:
    directory.link_provider_id(Kind.TEACHERS, "per-t", "clever", "u-1")
    assert directory.find_by_provider_id(Kind.STAFF, "clever", "u-1").id == "per-t"  # type: ignore[union-attr]
    # a school with the same provider id is another collection: no conflict
    assert directory.link_provider_id(Kind.SCHOOLS, "sch-b", "clever", "u-1") is True


def test_an_item_without_a_provider_ids_map_can_be_linked(
    directory: DirectoryRepository, dynamodb: Any, directory_table: str
) -> None:
    pk = partition_key(DISTRICT, "schools", shard_of("sch-bare"))
    dynamodb.put_item(
        TableName=directory_table,
        Item={"pk": {"S": pk}, "sk": {"S": "sch-bare"}, "id": {"S": "sch-bare"}, "kind": {"S": "schools"}},
    )
    assert directory.link_provider_id(Kind.SCHOOLS, "sch-bare", "clever", "c-5") is True
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-5").id == "sch-bare"  # type: ignore[union-attr]


def test_unlink_removes_the_link_and_its_index_entry(directory: DirectoryRepository) -> None:
    directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1")

    assert directory.unlink_provider_id(Kind.SCHOOLS, "sch-a", "clever") is True
    assert directory.get(Kind.SCHOOLS, "sch-a").provider_ids == {}  # type: ignore[union-attr]
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-1") is None
    assert directory.unlink_provider_id(Kind.SCHOOLS, "sch-a", "clever") is False
    # and the id is free for another school
    assert directory.link_provider_id(Kind.SCHOOLS, "sch-b", "clever", "c-1") is True


def test_unlinking_one_provider_keeps_the_other_in_the_index(directory: DirectoryRepository) -> None:
    directory.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1")
    directory.link_provider_id(Kind.SCHOOLS, "sch-a", "oneroster", "o-1")

    directory.unlink_provider_id(Kind.SCHOOLS, "sch-a", "oneroster")

    assert directory.get(Kind.SCHOOLS, "sch-a").provider_ids == {"clever": "c-1"}  # type: ignore[union-attr]
    assert directory.find_by_provider_id(Kind.SCHOOLS, "clever", "c-1").id == "sch-a"  # type: ignore[union-attr]
    assert directory.find_by_provider_id(Kind.SCHOOLS, "oneroster", "o-1") is None


def test_another_district_cannot_link_or_see_the_record(
    directory: DirectoryRepository, dynamodb: Any, directory_table: str
) -> None:
    other = DirectoryRepository(dynamodb, directory_table, "d-other")
    with pytest.raises(LinkError, match="no schools record 'sch-a' in district d-other"):
        other.link_provider_id(Kind.SCHOOLS, "sch-a", "clever", "c-1")
