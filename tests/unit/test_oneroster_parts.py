"""How Fetch's plan cuts a OneRoster REST collection into parts by offset (``steps.fetch._oneroster_lists``)."""

from __future__ import annotations

from typing import Any

from rostersync.errors import ProviderUnavailableError
from rostersync.steps.fetch import _oneroster_lists


class Counter:
    """Answers ``count`` from a table; a collection it does not know raises what ``error`` says."""

    def __init__(self, totals: dict[str, int | None], error: Exception | None = None) -> None:
        self.totals, self.error, self.asked = totals, error, []

    def count(self, name: str, filter: str | None = None) -> int | None:
        self.asked.append(name)
        if name not in self.totals and self.error is not None:
            raise self.error
        return self.totals.get(name)


def specs(*names: str) -> dict[str, dict[str, Any]]:
    return {name: {"collection": name, "filter": None} for name in names}


def test_a_collection_counted_above_the_part_size_is_cut_into_parts_by_offset() -> None:
    # Given enrollments counted at 2,500 records, users at exactly 1,000 and orgs not counted
    counter = Counter({"enrollments": 2_500, "users": 1_000, "orgs": None})

    # When the lists are planned with parts of 1,000 records
    lists, parts = _oneroster_lists(specs("orgs", "users", "enrollments"), counter, 1_000)

    # Then the enrollments are three parts, from offsets 0, 1,000 and 2,000, the last read to the end;
    # users and orgs are one list each
    assert parts == {"enrollments": ["enrollments", "enrollments-2", "enrollments-3"]}
    offsets = [(lists[p]["offset"], lists[p]["end"], lists[p]["list"]) for p in parts["enrollments"]]
    assert offsets == [(0, 1_000, "enrollments"), (1_000, 2_000, "enrollments"), (2_000, None, "enrollments")]
    assert lists["users"] == {"collection": "users", "filter": None, "total": 1_000} and "offset" not in lists["orgs"]
    # and each list carries the count every page it reads must still give (a collection not counted: None,
    # its first page's count then)
    assert [lists[p]["total"] for p in parts["enrollments"]] == [2_500] * 3 and lists["orgs"]["total"] is None


def test_a_deltas_lists_carry_no_count_to_check() -> None:
    # Given a delta read (it archives nothing for being absent; its cursor asks again for what changed meanwhile)
    counter = Counter({"enrollments": 2_500, "users": 1_000})

    # When its lists are planned
    lists, parts = _oneroster_lists(specs("users", "enrollments"), counter, 1_000, full=False)

    # Then they are cut into parts as a full read's, and none carries a count its pages are held to
    assert parts == {"enrollments": ["enrollments", "enrollments-2", "enrollments-3"]}
    assert not any("total" in spec for spec in lists.values())


def test_a_server_that_cannot_be_counted_is_asked_once_and_read_as_before() -> None:
    # Given a server that is down
    counter = Counter({}, ProviderUnavailableError("OneRoster did not answer"))

    # When the lists are planned
    lists, parts = _oneroster_lists(specs("orgs", "users", "enrollments"), counter, 1_000)

    # Then it was asked once, and every collection is one list (its slices meet the outage and report it)
    assert counter.asked == ["orgs"]
    assert parts == {} and list(lists) == ["orgs", "users", "enrollments"]
