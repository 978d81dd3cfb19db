"""The recorded Clever demo district, three nights in a row, through the real state machine.

The district is synced four times, once each, in order, by one module fixture (the big sample is the
slow part of the suite): night 1, night 1 again (nothing changed), night 2 (changes), night 3 (a
student returns). Each test reads the outcome it is about. (The module's name sorts it after the other
e2e modules, so the whole-table scan of the isolation test does not wade through its 13,000 records.)

Expected counts are derived from the snapshots themselves (what the roster holds and what changed
between two nights), following the rules DESIGN.md and the dataset's README state; they are not
copied from a previous run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ACTIONS = ("created", "updated", "linked", "archived", "restored")
PEOPLE_KINDS = ("students", "teachers", "staff", "guardians")


# -- what a night of the roster should become, from the raw Clever files ------------------------------


def _kind_of(user: dict[str, Any]) -> str:
    roles = user.get("roles", {})
    if "student" in roles:
        return "students"
    if "teacher" in roles:
        return "teachers"
    if "staff" in roles or "district_admin" in roles:
        return "staff"
    return "guardians"


def _schools_of(user: dict[str, Any]) -> set[str]:
    schools: set[str] = set()
    for role in ("student", "teacher", "staff"):
        data = user.get("roles", {}).get(role)
        if isinstance(data, dict):
            schools |= set(data.get("schools") or ([data["school"]] if data.get("school") else []))
    return schools


def _person_payload(user: dict[str, Any]) -> str:
    """What a person's record is made of: the user minus bookkeeping and minus the guardian's links
    (those are records of their own)."""
    data = {k: v for k, v in user.items() if k not in ("created", "last_modified")}
    contact = data.get("roles", {}).get("contact")
    if contact is not None:
        data["roles"] = {**data["roles"], "contact": {k: v for k, v in contact.items() if k != "student_relationships"}}
    return repr(sorted(data.items()))


@dataclass
class Roster:
    """One night of the roster as the directory should hold it, keyed by Clever id per kind."""

    records: dict[str, dict[str, str]]  # kind -> clever id -> payload
    skipped: Counter[str]
    unmatched_schools: set[str]


def expected_roster(dataset: Any, matched_schools: set[str]) -> Roster:
    """Apply DESIGN's matching rules to a snapshot: a school syncs when a product school carries its id;
    a student, teacher or staff member when one of their schools does (district staff with none always);
    a guardian when one of their students does; a section when its school does; an enrollment or a
    guardian link when both ends sync."""
    records: dict[str, dict[str, str]] = {
        k: {} for k in ("schools", "classrooms", *PEOPLE_KINDS, "enrollments", "guardian_links")
    }
    skipped: Counter[str] = Counter()
    courses, terms = dataset.names("courses"), dataset.names("terms")
    unmatched = set()
    for school in dataset.schools():
        if school["id"] in matched_schools:
            records["schools"][school["id"]] = repr(sorted(school.items()))
        else:
            unmatched.add(school["id"])
            skipped["schools"] += 1

    users = dataset.users()
    for user in users:
        kind = _kind_of(user)
        if kind == "guardians":
            continue
        schools = _schools_of(user)
        if schools & matched_schools or (kind == "staff" and not schools):
            records[kind][user["id"]] = _person_payload(user)
        else:
            skipped[kind] += 1
    synced_people = {pid for kind in PEOPLE_KINDS for pid in records[kind]}
    for user in users:
        if _kind_of(user) != "guardians":
            continue
        students = [r["student"] for r in user["roles"]["contact"]["student_relationships"]]
        if any(s in synced_people for s in students):
            records["guardians"][user["id"]] = _person_payload(user)
            for student in students:
                if student in synced_people:
                    records["guardian_links"][f"{user['id']}:{student}"] = ""
        else:
            skipped["guardians"] += 1
    synced_people |= set(records["guardians"])

    for section in dataset.sections():
        if section["school"] not in matched_schools:
            skipped["classrooms"] += 1
            continue
        synced = {k: v for k, v in section.items() if k not in ("students", "teachers", "teacher", "created")}
        synced.pop("last_modified", None)
        synced["course"] = courses.get(section.get("course"), "")
        synced["term_id"] = terms.get(section.get("term_id"), "")
        records["classrooms"][section["id"]] = repr(sorted(synced.items()))
        teachers = list(dict.fromkeys([*(section.get("teachers") or []), section.get("teacher")]))
        for person in [*section["students"], *(t for t in teachers if t)]:
            if person in synced_people:
                records["enrollments"][f"{section['id']}:{person}"] = ""
            else:
                skipped["enrollments"] += 1
    return Roster(records, skipped, unmatched)


def expected_changes(before: Roster, after: Roster) -> dict[str, dict[str, int]]:
    """Per kind: created (new ids), archived (ids gone), updated (same id, different content)."""
    changes = {}
    for kind, now in after.records.items():
        was = before.records[kind]
        changes[kind] = {
            "created": len(now.keys() - was.keys()),
            "archived": len(was.keys() - now.keys()) if kind != "schools" else 0,
            "updated": sum(1 for pid in now.keys() & was.keys() if now[pid] != was[pid]),
        }
    return changes


# -- the four nights -----------------------------------------------------------------------------------


@dataclass
class DemoNights:
    district: Any
    product: Any
    matched_schools: set[str]
    first: Any
    again: Any
    changes: Any
    restore: Any


@pytest.fixture(scope="module")
def nights(new_district: Any, demo_product: Any, demo_dataset: Any) -> Any:
    """Given the demo product directory and Clever's demo district, when it is synced night after night."""
    product = demo_product()
    district = new_district(demo_dataset("snapshot-1"), product=product)
    try:
        first = district.sync()
        again = district.sync(export=False)  # it writes nothing (asserted below): no need to read it back
        district.serve(demo_dataset("snapshot-2"))
        changes = district.sync()
        district.serve(demo_dataset("snapshot-3"))
        restore = district.sync()
    finally:
        district.close()
    matched = {s.provider_ids["clever"] for s in product.schools if "clever" in s.provider_ids}
    yield DemoNights(district, product, matched, first, again, changes, restore)


def test_first_sync_creates_the_roster_of_matched_schools_only(nights: DemoNights, demo_dataset: Any) -> None:
    # Given the product's 3 matched schools and a roster of 5
    roster = expected_roster(demo_dataset("snapshot-1"), nights.matched_schools)
    run = nights.first
    linked_classrooms = {c.provider_ids["clever"] for c in nights.product.classrooms if "clever" in c.provider_ids}

    # Then the run succeeded and counted every record the rules sync
    assert run.execution_status == "SUCCEEDED", run.execution.get("cause")
    assert run.status == "succeeded"
    assert run.report["status"] == "succeeded"
    assert run.report["errors_total"] == 0
    assert len(roster.records["students"]) == 1004 and len(roster.records["guardians"]) == 1002  # README's counts
    for kind in PEOPLE_KINDS + ("enrollments", "guardian_links"):
        assert run.changed(kind) == {
            "created": len(roster.records[kind]),
            **({"skipped": roster.skipped[kind]} if roster.skipped[kind] else {}),
        }, kind
    # the product's linked classroom is taken over (linked), every other section creates a classroom
    assert run.changed("classrooms") == {
        "created": len(roster.records["classrooms"]) - len(linked_classrooms),
        "linked": len(linked_classrooms),
    }
    assert run.changed("schools") == {"linked": len(nights.matched_schools), "skipped": 2}
    (linked,) = [run.by_clever_id("classrooms")[pid] for pid in linked_classrooms]
    assert linked["id"] == nights.product.classrooms[0].id and linked["managed_by_sync"]

    # and every synced person is in the directory, sync-managed, active, linked to Clever
    people = run.by_clever_id("people")
    synced = {pid for kind in PEOPLE_KINDS for pid in roster.records[kind]}
    assert set(people) == synced
    assert all(p["managed_by_sync"] and p["status"] == "active" for p in people.values())
    # the product's own people are left alone
    own = [p for p in run.records("people") if not p["provider_ids"]]
    assert {p["id"] for p in own} == {p.id for p in nights.product.people}
    assert all(not p["managed_by_sync"] and p["status"] == "active" for p in own)


def test_unmatched_schools_are_skipped_and_nothing_of_them_is_written(nights: DemoNights, demo_dataset: Any) -> None:
    roster = expected_roster(demo_dataset("snapshot-1"), nights.matched_schools)
    run = nights.first
    assert len(roster.unmatched_schools) == 2

    # Then the report lists both as skipped, with the reason
    skipped = {row["provider_id"]: row for row in run.csv_rows("schools.csv") if row["action"] == "skipped"}
    assert set(skipped) == roster.unmatched_schools
    assert all("no product school carries this clever id" in row["reason"] for row in skipped.values())

    # and no record of the directory is of, or points into, an unmatched school
    schools = run.records("schools")
    assert not {s["provider_ids"].get("clever") for s in schools} & roster.unmatched_schools
    matched_ids = {s["id"] for s in schools if s["provider_ids"].get("clever") in nights.matched_schools}
    assert len(matched_ids) == 3
    product_only = {s.id for s in nights.product.schools if not s.provider_ids}
    assert all(c["school_id"] in matched_ids | product_only for c in run.records("classrooms"))
    for person in run.records("people"):
        if person["managed_by_sync"]:
            assert set(person.get("school_ids", [])) <= matched_ids, person["id"]


def test_unchanged_resync_writes_nothing(nights: DemoNights) -> None:
    # When night 1 is synced a second time
    first, again = nights.first, nights.again

    # Then every record is unchanged, nothing was written to the directory, and it is the same as before
    assert again.status == "succeeded"
    for kind, counts in again.report["counts"].items():
        assert all(counts[action] == 0 for action in ACTIONS), (kind, counts)
        assert counts["unchanged"] == sum(first.counts(kind)[a] for a in ("created", "updated", "linked")), kind
        assert counts["skipped"] == first.counts(kind)["skipped"], kind
    assert again.directory_writes == 0
    assert first.directory_writes > 0  # the counter does see the Lambdas' writes


def test_next_night_creates_updates_and_archives_what_changed(nights: DemoNights, demo_dataset: Any) -> None:
    # Given night 2 of the roster after night 1
    before = expected_roster(demo_dataset("snapshot-1"), nights.matched_schools)
    after = expected_roster(demo_dataset("snapshot-2"), nights.matched_schools)
    expected = expected_changes(before, after)
    # (the README's story: 15 students leave, 10 arrive, 20 change; 1 teacher leaves, 2 change; ...)
    assert expected["students"] == {"created": 10, "archived": 15, "updated": 20}
    assert expected["classrooms"] == {"created": 2, "archived": 3, "updated": 3}
    run = nights.changes

    # Then the run applied exactly those changes, under the deletion threshold
    assert run.status == "succeeded", run.report
    for kind, change in expected.items():
        counts = run.counts(kind)
        assert {action: counts[action] for action in change} == change, kind
        assert counts["restored"] == 0

    # and what left is archived in place: same id as before, status archived, never deleted
    was, now = nights.first.directory, run.directory
    for collection in ("classrooms", "people", "enrollments", "guardian_links"):
        assert {r["id"] for r in was[collection]} <= {r["id"] for r in now[collection]}, collection
    people_before, people_now = nights.first.by_clever_id("people"), run.by_clever_id("people")
    gone = {pid for kind in PEOPLE_KINDS for pid in before.records[kind].keys() - after.records[kind].keys()}
    assert len(gone) == 15 + 1 + 20
    for pid in gone:
        assert people_now[pid]["id"] == people_before[pid]["id"]
        assert people_now[pid]["status"] == "archived"
        assert people_now[pid]["managed_by_sync"]
    classrooms_now = run.by_clever_id("classrooms")
    for pid in before.records["classrooms"].keys() - after.records["classrooms"].keys():
        assert classrooms_now[pid]["status"] == "archived"
    archived_enrollments = [e for e in now["enrollments"] if e["status"] == "archived"]
    assert len(archived_enrollments) == expected["enrollments"]["archived"]

    # and the updates landed: the new family names are in the directory
    last_names = {u["id"]: u["name"]["last"] for u in demo_dataset("snapshot-1").users("student")}
    renamed = {
        u["id"]: u["name"]["last"]
        for u in demo_dataset("snapshot-2").users("student")
        if u["id"] in last_names and last_names[u["id"]] != u["name"]["last"]
    }
    assert len(renamed) == 6
    assert {pid: people_now[pid]["family_name"] for pid in renamed} == renamed


def test_the_directory_never_loses_a_record(nights: DemoNights) -> None:
    # Archive, never delete: every record of one night is still there, same id, the next night
    runs = [nights.first, nights.changes, nights.restore]
    for before, after in zip(runs, runs[1:], strict=False):
        for collection in ("schools", "classrooms", "people", "enrollments", "guardian_links"):
            ids_before = {r["id"] for r in before.records(collection)}
            ids_after = {r["id"] for r in after.records(collection)}
            assert ids_before <= ids_after, (collection, sorted(ids_before - ids_after)[:5])


def test_returning_student_is_restored_with_the_same_id(nights: DemoNights, demo_dataset: Any) -> None:
    # Given a student who left on night 2 and is back on night 3
    night2 = {u["id"] for u in demo_dataset("snapshot-2").users()}
    back = [u for u in demo_dataset("snapshot-3").users() if u["id"] not in night2]
    (student,) = [u for u in back if "student" in u["roles"]]
    (guardian,) = [u for u in back if "contact" in u["roles"]]
    run = nights.restore

    # Then she is restored, not created: the same directory record as on night 1, active again
    assert run.status == "succeeded"
    assert run.changed("students") == {"restored": 1, "unchanged": 999}
    assert run.changed("guardians") == {"restored": 1, "unchanged": 992}
    assert run.counts("enrollments")["restored"] == 1 and run.counts("enrollments")["created"] == 0
    assert run.counts("guardian_links")["restored"] == 1 and run.counts("guardian_links")["created"] == 0
    first_id = nights.first.by_clever_id("people")[student["id"]]["id"]
    assert nights.changes.by_clever_id("people")[student["id"]]["status"] == "archived"
    restored = run.by_clever_id("people")[student["id"]]
    assert restored["id"] == first_id and restored["status"] == "active"
    assert run.by_clever_id("people")[guardian["id"]]["status"] == "active"
    rows = [r for r in run.csv_rows("students.csv") if r["action"] == "restored"]
    assert [(r["provider_id"], r["id"]) for r in rows] == [(student["id"], first_id)]
    # and nothing else moved
    assert run.directory_writes > 0
    for kind, counts in run.report["counts"].items():
        assert counts["created"] == counts["updated"] == counts["archived"] == 0, kind


def test_night_2s_report_names_who_left_and_reads_well_in_a_browser(nights: DemoNights, report_in_browser: Any) -> None:
    # Given night 2, which archived the students who left the roster
    run = nights.changes
    archived = [row for row in run.csv_rows("students.csv") if row["action"] == "archived"]
    assert len(archived) == run.counts("students")["archived"] == 15

    # Then each archived student is listed with the district's id, school and grade; each update says what changed
    assert all(row["name"] and row["sis_id"] and row["school"] and row["grade"] for row in archived)
    updated = [row for row in run.csv_rows("students.csv") if row["action"] == "updated"]
    assert updated and all(" → " in row["changes"] for row in updated)
    enrollments = run.csv_rows("enrollments.csv")
    assert enrollments and all(" in " in row["name"] for row in enrollments)

    # When the admin opens the report in Chromium, at a desk and on a phone
    report = report_in_browser(run)

    # Then it reads well at both widths and names the archived students
    report.assert_reads_well([row["name"] for row in archived])


def test_the_nights_after_the_first_are_read_from_clevers_events(nights: DemoNights) -> None:
    # The first sync reads the whole roster (there is no cursor yet); every later night only Clever's events
    assert nights.first.report["sync"]["kind"] == "full"
    assert "no Clever events cursor" in nights.first.report["sync"]["reason"]
    assert nights.again.report["sync"] == {"kind": "events", "reason": "", "changes": 0}
    for run in (nights.changes, nights.restore):
        assert run.report["sync"]["kind"] == "events" and run.report["sync"]["changes"] > 0
        assert any(note.startswith("Incremental run from Clever's events") for note in run.report["notes"])


def test_every_pair_is_in_its_bucket_and_the_nights_after_the_first_read_their_share_from_the_index(
    nights: DemoNights,
) -> None:
    from rostersync import aws
    from rostersync.directory.keys import MATCH_BUCKETS, PAIR_COLLECTIONS, match_bucket
    from rostersync.steps.match import PAIR_INDEX
    from rostersync.storage import RunStore

    district = nights.district
    items = {c: list(district.directory.items().collection(c)) for c in ("schools", "classrooms", "people")}
    pairs = {c: list(district.directory.items().collection(c)) for c in PAIR_COLLECTIONS}

    # Then every enrollment and guardian link the four nights wrote carries the bucket of its Clever id
    for collection, written in pairs.items():
        assert written, collection
        for item in written:
            clever = (item.get("provider_ids") or {}).get("clever")
            wanted = match_bucket(district.id, collection, "clever", clever) if clever else None
            assert item.get("match_bucket") == wanted, (collection, item["id"])
    # and nothing else is in the index
    assert all("match_bucket" not in item for found in items.values() for item in found)

    # and the first night's partitions read the table (a new district: no PAIR_INDEX yet), found every pair
    # bucketed and so recorded it; the nights after read their shares from the ByMatchBucket index
    marker = district.state.get_item(PAIR_INDEX)
    assert marker is not None and marker["run_id"] == nights.first.run_id and marker["buckets"] == MATCH_BUCKETS
    s3 = aws.client("s3")

    def partition_results(outcome: Any) -> list[dict[str, Any]]:
        store = RunStore(s3, outcome.bucket, district.id, outcome.run_id)
        people = store.get_json(store.key("plan/people/result.json"))
        parts = [store.get_json(store.key(f"plan/p{p:04d}/result.json")) for p in range(int(people["partitions"]))]
        return [people, *parts]

    people, *first = partition_results(nights.first)
    assert not people["pair_index"] and [p["unbucketed"] for p in first] == [0] * len(first)
    for later in (nights.again, nights.changes, nights.restore):
        people, *parts = partition_results(later)
        assert people["pair_index"] and all("unbucketed" not in p for p in parts), later.run_id
        assert all(p["planned"] for p in parts)
    # and the shares the second night's partitions read from the index are, together, every pair the first
    # night left in the directory
    people, *parts = partition_results(nights.again)
    after_first = sum(
        1 for c in PAIR_COLLECTIONS for r in nights.first.records(c) if "clever" in (r.get("provider_ids") or {})
    )
    assert sum(p["index_entries"] for p in parts) == after_first > 0
