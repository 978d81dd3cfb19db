"""An index entry's provider ids: one provider's id held in two slots, read as the dict it replaces."""

from __future__ import annotations

import sys
import tracemalloc

import pytest

from rostersync.directory.repository import OneProviderId, _index_entry


def item(provider_ids: dict[str, str]) -> dict[str, object]:
    return {"id": "per_1", "kind": "students", "status": "active", "provider_ids": provider_ids}


def test_one_provider_id_reads_as_the_dict_it_replaces() -> None:
    # Given an entry read with one provider id, and one with two
    one = _index_entry(item({"clever": "5a25ff950a5f621109000001"})).provider_ids
    two = _index_entry(item({"clever": "c-1", "oneroster": "o-1"})).provider_ids

    # Then the first is the compact mapping and answers every question a dict would, the same way
    assert isinstance(one, OneProviderId) and isinstance(two, dict)
    expected = {"clever": "5a25ff950a5f621109000001"}
    assert one == expected and dict(one) == expected and {**one, "x": "y"} == {**expected, "x": "y"}
    assert "clever" in one and "oneroster" not in one and len(one) == 1 and list(one) == ["clever"]
    assert one.get("clever") == expected["clever"] and one.get("oneroster") is None and one.get("x", "d") == "d"
    assert one["clever"] == expected["clever"] and list(one.items()) == list(expected.items())
    with pytest.raises(KeyError):
        one["oneroster"]
    assert repr(one) == repr(expected)
    assert two == {"clever": "c-1", "oneroster": "o-1"}


def test_one_provider_id_holds_less_than_a_dict_of_one() -> None:
    # Given 10,000 ids held as dicts of one entry and as OneProviderId (the same id strings)
    ids = [f"{n:024x}" for n in range(10_000)]
    name = sys.intern("clever")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dicts = [{name: pid} for pid in ids]
        as_dicts = tracemalloc.get_traced_memory()[0] - before
        compact = [OneProviderId(name, pid) for pid in ids]
        as_compact = tracemalloc.get_traced_memory()[0] - before - as_dicts
    finally:
        tracemalloc.stop()

    # Then the compact ones hold under half of what the dicts hold (no per-instance dict: slots)
    assert len(dicts) == len(compact) and as_compact < as_dicts / 2
    assert not hasattr(compact[0], "__dict__")
