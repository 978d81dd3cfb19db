"""A night's Clever events applied to the last mirror, whole or in pieces (Fetch's slices of an events run,
a mirror chunk each), give the same list: the pieces carry only which changed objects the mirror held."""

from __future__ import annotations

from typing import Any

import pytest

from rostersync.providers.clever_events import Overlay, OverlayApplier


def item(oid: str, name: str = "before") -> dict[str, Any]:
    return {"data": {"id": oid, "name": name}}


MIRROR = [item(f"u{n}") for n in range(10)] + [item("u3")]  # u3 twice, as a list Clever sent with a duplicate


def night() -> Overlay:
    overlay = Overlay()
    overlay.apply("users", "updated", {"id": "u3", "name": "after"})
    overlay.apply("users", "deleted", {"id": "u5"})
    overlay.apply("users", "created", {"id": "n1", "name": "new"})
    overlay.apply("users", "updated", {"id": "u7", "name": "after"})
    overlay.apply("users", "deleted", {"id": "u7"})  # the last event about an object decides
    overlay.apply("users", "created", {"id": "n2", "name": "new"})
    overlay.apply("users", "deleted", {"id": "n2"})  # created and deleted the same night: never there
    overlay.apply("users", "created", {"id": "n3", "name": "new"})
    overlay.apply("sections", "updated", {"id": "u1", "name": "another collection's"})
    return overlay


EXPECTED = (
    [item("u0"), item("u1"), item("u2"), item("u3", "after"), item("u4"), item("u6"), item("u8"), item("u9")]
    + [item("u3", "after")]
    + [item("n1", "new"), item("n3", "new")]
)


def test_the_night_applied_to_the_whole_mirror() -> None:
    applier = OverlayApplier(night().entries("users"))
    assert list(applier.apply(MIRROR, last=True)) == EXPECTED
    assert applier.found == {"u3", "u5", "u7"}


@pytest.mark.parametrize("size", [1, 2, 3, 4, 11])
def test_the_night_applied_a_piece_at_a_time_gives_the_whole_mirrors_list(size: int) -> None:
    # Each piece as a slice of its own would take it: a new applier, with what the earlier pieces found
    entries = night().entries("users")
    pieces = [MIRROR[start : start + size] for start in range(0, len(MIRROR), size)]
    found: set[str] = set()
    got: list[Any] = []
    for number, piece in enumerate(pieces):
        applier = OverlayApplier(entries, found)
        got += applier.apply(piece, last=number == len(pieces) - 1)
        found = applier.found
    assert got == EXPECTED


def test_without_what_earlier_pieces_found_a_changed_object_would_come_again_as_created() -> None:
    # The carry is what keeps an object changed in an earlier piece from being added after the last one
    entries = night().entries("users")
    first = OverlayApplier(entries)
    assert item("u3", "after") in list(first.apply(MIRROR[:5], last=False))
    assert item("u3", "after") in list(OverlayApplier(entries).apply(MIRROR[5:10], last=True))
    assert item("u3", "after") not in list(OverlayApplier(entries, first.found).apply(MIRROR[5:10], last=True))


def test_the_entries_written_and_read_back_are_the_same_overlay() -> None:
    overlay = night()
    again = Overlay.of({c: overlay.entries(c) for c in ("users", "sections")})
    assert again.objects == overlay.objects and again.order == overlay.order
    assert again.touched("users") == {"u3", "u5", "n1", "u7", "n2", "n3"}
