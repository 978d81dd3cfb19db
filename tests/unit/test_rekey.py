"""Recognising a provider re-key (issue 9, finding 3): pure rules over id sets."""

from __future__ import annotations

import random

import pytest

from rostersync.matching.rekey import REKEY_MIN_RECORDS, classroom_key, counted_id_change, id_change


def ids(prefix: str, n: int) -> set[str]:
    return {f"{prefix}{k}" for k in range(n)}


def test_every_id_replaced_is_a_re_key() -> None:
    assert id_change(ids("old-", 60), ids("new-", 60), ids("old-", 60)).is_rekey()


def test_a_normal_night_of_leavers_and_newcomers_is_not() -> None:
    managed = ids("old-", 60)
    roster = (managed - ids("old-", 5)) | ids("new-", 5)
    assert not id_change(managed, roster, managed).is_rekey()


def test_a_roster_emptied_without_new_ids_is_not_a_re_key_but_a_mass_departure() -> None:
    assert not id_change(ids("old-", 60), set(), ids("old-", 60)).is_rekey()


def test_a_tiny_district_is_never_taken_for_a_re_key() -> None:
    n = REKEY_MIN_RECORDS - 1
    assert not id_change(ids("old-", n), ids("new-", n), ids("old-", n)).is_rekey()


def test_a_section_is_recognised_by_school_and_section_number_or_name() -> None:
    assert classroom_key("sch-1", " S-101 ", "Algebra") == classroom_key("sch-1", "s-101", "Other name")
    assert classroom_key("sch-1", "", "Algebra  I") == classroom_key("sch-1", "", "algebra i")
    assert classroom_key("sch-1", "S-101", "A") != classroom_key("sch-2", "S-101", "A")


@pytest.mark.parametrize("seed", range(20))
def test_the_change_counted_as_the_roster_passes_is_the_change_of_the_sets(seed: int) -> None:
    # Given a directory of managed, unmanaged and archived ids and a roster that keeps some, brings some
    # the directory knows unmanaged or archived, and some new (each id once, as Fetch's snapshot gives them)
    rng = random.Random(seed)
    known = ids("k-", rng.randint(0, 80))
    managed = {i for i in known if rng.random() < 0.7}
    roster = {i for i in known if rng.random() < 0.5} | ids("new-", rng.randint(0, 60))
    order = sorted(roster)
    rng.shuffle(order)
    # Then counting them one by one gives what the sets give
    counted = counted_id_change(len(managed), iter(order), managed.__contains__, known.__contains__)
    assert counted == id_change(managed, roster, known)
