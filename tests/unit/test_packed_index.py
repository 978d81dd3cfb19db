"""The people phase holds the people's index packed (``directory.repository.PackedIndex``): one ``bytes`` an
entry, made into its ``IndexEntry`` when looked up. A lookup gives an entry equal to the one added, whatever
it holds; iteration keeps the order entries were added in; and it holds under half the memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections import Counter

from rostersync.directory.keys import synced_record_id
from rostersync.directory.repository import IndexEntry, OneProviderId, PackedIndex
from rostersync.domain.records import Kind

PROVIDER = "clever"


def _entry(n: int, **changes: object) -> IndexEntry:
    pid = hashlib.md5(str(n).encode()).hexdigest()[:24]  # noqa: S324 - an id, not a secret
    fields: dict[str, object] = {
        "id": synced_record_id("d-1", "people", PROVIDER, pid),
        "kind": Kind.STUDENTS,
        "status": "active",
        "managed_by_sync": True,
        "content_hash": hashlib.sha256(pid.encode()).hexdigest()[:32],
        "provider_ids": OneProviderId(PROVIDER, pid),
        "parent_id": f"sch_{n % 7:020d}",
    }
    return IndexEntry(**{**fields, **changes})  # type: ignore[arg-type]


def test_every_entry_looked_up_is_the_one_added_packed_or_whole() -> None:
    entries = [
        *(_entry(n, kind=kind) for n, kind in enumerate(Kind)),
        _entry(20, status="archived", managed_by_sync=False, parent_id="", content_hash=""),
        _entry(21, provider_ids={PROVIDER: _entry(21).provider_ids[PROVIDER]}),  # a dict of one: packed too
        # held whole: product edits, two providers, another provider only, another status, a unit separator
        _entry(22, edited={"email": "digest"}),
        _entry(23, provider_ids={PROVIDER: _entry(23).provider_ids[PROVIDER], "oneroster": "or-23"}),
        _entry(24, provider_ids=OneProviderId("oneroster", "or-24")),
        _entry(25, status="merging"),
        _entry(26, id="per\x1fodd"),
        _entry(27, parent_id="sch\x1fodd"),
        _entry(28, managed_by_sync=None),  # not a boolean, as an older item might hold
    ]
    index = PackedIndex(PROVIDER)
    for entry in entries:
        index.add(entry.provider_ids.get(PROVIDER, entry.id), entry)

    keys = [e.provider_ids.get(PROVIDER, e.id) for e in entries]
    assert list(index) == keys and len(index) == len(entries)
    assert [index[k] for k in keys] == entries
    assert [index.get(k) for k in keys] == entries
    assert list(index.values()) == entries and list(index.values()) == entries  # views iterate again
    assert list(index.items()) == list(zip(keys, entries, strict=True))
    assert all(k in index for k in keys) and "nobody" not in index and index.get("nobody", "none") == "none"
    # the entries held whole are the very objects added
    assert all(index[k] is e for k, e in zip(keys[-7:], entries[-7:], strict=True))


def test_an_entry_added_again_under_its_key_replaces_it_where_it_was() -> None:
    index = PackedIndex(PROVIDER)
    first, second, again = _entry(1), _entry(2), _entry(1, status="archived")
    for entry in (first, second, again):
        index.add(entry.provider_ids[PROVIDER], entry)
    assert list(index.values()) == [again, second]


def test_an_entry_held_packed_takes_under_half_the_memory_of_one_held_whole() -> None:
    def held(packed: bool) -> int:
        tracemalloc.start()
        try:
            index: object
            if packed:
                index = PackedIndex(PROVIDER)
                for n in range(20_000):
                    entry = _entry(n)
                    index.add(entry.provider_ids[PROVIDER], entry)
            else:  # as Match held it before: a dict of the entries as read
                index = {}
                for n in range(20_000):
                    entry = _entry(n)
                    index[entry.provider_ids[PROVIDER]] = entry
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    whole, packed = held(False), held(True)
    assert packed < 0.55 * whole, (whole / 20_000, packed / 20_000)


def test_the_managed_and_active_entries_are_counted_by_kind_from_the_packed_flags() -> None:
    entries = [
        _entry(1),
        _entry(2, kind=Kind.TEACHERS),
        _entry(3, status="archived"),
        _entry(4, managed_by_sync=False),
        _entry(5, kind=Kind.GUARDIANS),
        _entry(6, edited={"email": "digest"}),  # held whole, counted all the same
        _entry(7, status="merging"),  # held whole, not active
    ]
    index = PackedIndex(PROVIDER)
    for entry in entries:
        index.add(entry.provider_ids[PROVIDER], entry)
    expected = Counter(e.kind for e in entries if e.managed_by_sync and e.status == "active")
    assert index.managed_active() == expected == Counter({Kind.STUDENTS: 2, Kind.TEACHERS: 1, Kind.GUARDIANS: 1})
