"""A OneRoster collection read in parts side by side: each part after the first reads the record just before
its offset, and the assembly holds it to the record the part before it ended with (``_SlicedLists``). A
difference means records before the boundary changed between the two reads: one may have been read twice
or passed over, so the fetch is incomplete and nothing is archived."""

from __future__ import annotations

from typing import Any

from rostersync.providers.base import FetchOutcome
from rostersync.steps.fetch import _SlicedLists


class _Store:
    """A run's files as the assembly reads them: each part's checkpoint and the records its slices wrote."""

    def __init__(self, checkpoints: dict[str, dict[str, Any]], records: dict[str, list[dict[str, Any]]]) -> None:
        self.checkpoints = checkpoints
        self.records = records

    def key(self, name: str) -> str:
        return name

    def get_json(self, key: str) -> Any:
        return self.checkpoints[key.split("/")[1]]

    def owns(self, key: str) -> bool:
        return True

    def read_ndjson(self, key: str) -> list[dict[str, Any]]:
        return self.records[key]


def _parts(before: str | None, total: bool = True) -> tuple[list[Any], FetchOutcome]:
    """Enrollments in two parts of two records: the first ended with ``e2``, the second read ``before``."""
    spec = {"collection": "enrollments", **({"total": 4} if total else {})}
    plan = {
        "lists": {"enrollments": {**spec, "offset": 0, "end": 2}, "enrollments-2": {**spec, "offset": 2}},
        "parts": {"enrollments": ["enrollments", "enrollments-2"]},
    }
    done = {"done": True, "problems": []}
    store = _Store(
        {
            "enrollments": {**done, "slices": [["k1"]], "last_id": "e2"},
            "enrollments-2": {**done, "slices": [["k2"]], "last_id": "e4", **({"before": before} if before else {})},
        },
        {"k1": [{"sourcedId": "e1"}, {"sourcedId": "e2"}], "k2": [{"sourcedId": "e3"}, {"sourcedId": "e4"}]},
    )
    outcome = FetchOutcome()
    records = list(_SlicedLists(store, plan, "OneRoster").iter_collection("enrollments", outcome=outcome))  # type: ignore[arg-type]
    return records, outcome


def test_parts_whose_boundary_held_make_a_complete_fetch() -> None:
    records, outcome = _parts(before="e2")
    assert [r["sourcedId"] for r in records] == ["e1", "e2", "e3", "e4"]
    assert outcome.complete and outcome.problems == []


def test_a_part_that_did_not_start_after_the_record_the_part_before_it_ended_with_holds_archiving() -> None:
    # the second part read "e1" just before its offset: a record before the boundary was added meanwhile
    records, outcome = _parts(before="e1")
    assert [r["sourcedId"] for r in records] == ["e1", "e2", "e3", "e4"]  # every record read still syncs
    assert outcome.complete is False
    assert outcome.problems == [
        "OneRoster's enrollments changed while they were read: the page after the first 2 did not start with the "
        "last one read (records before it changed), so a record may have moved across a page boundary unread; "
        "this run will not archive anything (the next run reads them again)"
    ]


def test_a_deltas_parts_and_parts_read_before_the_check_are_not_held() -> None:
    assert _parts(before="e1", total=False)[1].complete  # a delta archives nothing for being absent
    assert _parts(before=None)[1].complete  # checkpoints written before parts read the record before them
