"""An index entry read straight from the answer's item (``directory.repository._index_entry_from_wire``) is
the entry the generic deserialiser gives (``_index_entry(_from_item(...))``), whatever the item holds."""

from __future__ import annotations

from typing import Any

import pytest

from rostersync.directory.repository import NO_EDITS, _from_item, _index_entry, _index_entry_from_wire, _to_item

PERSON = {
    "id": "per_0123456789abcdef0123",
    "kind": "students",
    "status": "active",
    "managed_by_sync": True,
    "content_hash": "0f" * 16,
    "provider_ids": {"clever": "5a1b2c3d4e5f6a7b8c9d0e1f"},
    "parent_key": "d-1#sch_0001",
}

SHAPES: list[dict[str, Any]] = [
    PERSON,
    {**PERSON, "status": "archived", "managed_by_sync": False},
    {k: v for k, v in PERSON.items() if k not in ("status", "managed_by_sync", "content_hash", "parent_key")},
    {**PERSON, "provider_ids": {"clever": "c-1", "oneroster": "o-1"}},  # two providers: a dict, not two slots
    {**PERSON, "provider_ids": {}},
    {**PERSON, "parent_key": ""},
    {**PERSON, "kind": "guardians", "parent_key": "d-1#per_0000000000000000000a"},
    {**PERSON, "product_edits": {"email": "ava@example.org", "phone": "555 0100"}},  # the generic way
    {**PERSON, "product_edits": {}},
]


@pytest.mark.parametrize("plain", SHAPES, ids=range(len(SHAPES)))
def test_read_from_the_wire_it_is_the_generic_entry(plain: dict[str, Any]) -> None:
    raw = _to_item(plain)
    if plain.get("product_edits") == {}:
        raw["product_edits"] = {"M": {}}  # as stored: an empty map (the writer drops None only)
    assert _index_entry_from_wire(raw) == _index_entry(_from_item(raw))


def test_values_of_another_type_go_the_generic_way() -> None:
    # a managed flag stored as a number, a status null: what the generic deserialiser makes of them
    raw = _to_item(PERSON) | {"managed_by_sync": {"N": "1"}}
    assert _index_entry_from_wire(raw) == _index_entry(_from_item(raw))
    assert _index_entry_from_wire(raw).managed_by_sync is True
    raw = _to_item(PERSON) | {"status": {"NULL": True}}
    with pytest.raises(TypeError):  # as before: an entry without a status word is refused, not guessed
        _index_entry_from_wire(raw)


def test_an_entry_without_edits_shares_the_one_empty_edits() -> None:
    assert _index_entry_from_wire(_to_item(PERSON)).edited is NO_EDITS
