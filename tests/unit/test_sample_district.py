"""The bundled Clever demo district (samples/clever-demo): shape, referential integrity and the
documented night-to-night changes (see samples/clever-demo/README.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "clever-demo"
SNAPSHOTS = ("snapshot-1", "snapshot-2", "snapshot-3")
RESOURCES = ("districts", "schools", "terms", "courses", "sections", "users")
ROLES = ("student", "teacher", "staff", "district_admin", "contact")
THRESHOLD = 0.10


@cache
def load(snapshot: str) -> dict[str, dict[str, dict]]:
    """Return resource -> {id: record} for one snapshot."""
    out: dict[str, dict[str, dict]] = {}
    for resource in RESOURCES:
        body = json.loads((SAMPLE / snapshot / f"{resource}.json").read_bytes())
        out[resource] = {item["data"]["id"]: item["data"] for item in body["data"]}
    return out


def users_with(snapshot: str, role: str) -> dict[str, dict]:
    return {i: u for i, u in load(snapshot)["users"].items() if role in u["roles"]}


def enrollments(snapshot: str) -> set[tuple[str, str, str]]:
    return {
        (section["id"], person, role)
        for section in load(snapshot)["sections"].values()
        for role, key in (("student", "students"), ("teacher", "teachers"))
        for person in section[key]
    }


def guardian_links(snapshot: str) -> set[tuple[str, str]]:
    return {
        (contact["id"], rel["student"])
        for contact in users_with(snapshot, "contact").values()
        for rel in contact["roles"]["contact"]["student_relationships"]
    }


def counts(snapshot: str) -> dict[str, int]:
    data = load(snapshot)
    result = {resource: len(data[resource]) for resource in RESOURCES}
    for role in ROLES:
        result[f"{role}s"] = len(users_with(snapshot, role))
    enrolled = enrollments(snapshot)
    result["student_enrollments"] = sum(1 for e in enrolled if e[2] == "student")
    result["teacher_enrollments"] = sum(1 for e in enrolled if e[2] == "teacher")
    result["guardian_links"] = len(guardian_links(snapshot))
    return result


def diff(before: dict[str, dict], after: dict[str, dict]) -> dict[str, set[str]]:
    common = before.keys() & after.keys()
    return {
        "removed": set(before) - set(after),
        "added": set(after) - set(before),
        "changed": {i for i in common if before[i] != after[i]},
    }


# The counts README.md documents.
EXPECTED_COUNTS = {
    "snapshot-1": {
        "districts": 1, "schools": 5, "terms": 5, "courses": 343, "sections": 378, "users": 2098,
        "students": 1004, "teachers": 89, "staffs": 0, "district_admins": 3, "contacts": 1002,
        "student_enrollments": 8954, "teacher_enrollments": 452, "guardian_links": 1004,
    },
    "snapshot-2": {
        "districts": 1, "schools": 5, "terms": 5, "courses": 344, "sections": 377, "users": 2082,
        "students": 999, "teachers": 88, "staffs": 0, "district_admins": 3, "contacts": 992,
        "student_enrollments": 8867, "teacher_enrollments": 444, "guardian_links": 994,
    },
    "snapshot-3": {
        "districts": 1, "schools": 5, "terms": 5, "courses": 344, "sections": 377, "users": 2084,
        "students": 1000, "teachers": 88, "staffs": 0, "district_admins": 3, "contacts": 993,
        "student_enrollments": 8868, "teacher_enrollments": 444, "guardian_links": 995,
    },
}  # fmt: skip


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_every_snapshot_is_a_complete_list_response_dataset(snapshot: str) -> None:
    for resource in RESOURCES:
        body = json.loads((SAMPLE / snapshot / f"{resource}.json").read_bytes())
        assert {"rel": "self", "uri": body["links"][0]["uri"]} == body["links"][0]
        assert body["links"][0]["uri"].startswith(f"/v3.0/{resource}")
        ids = [item["data"]["id"] for item in body["data"]]
        assert len(ids) == len(set(ids)), f"duplicate ids in {snapshot}/{resource}"
        for item in body["data"]:
            assert item["uri"] == f"/v3.0/{resource}/{item['data']['id']}"
            assert len(item["data"]["id"]) == 24 and int(item["data"]["id"], 16) >= 0


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_counts_match_the_readme(snapshot: str) -> None:
    assert counts(snapshot) == EXPECTED_COUNTS[snapshot]


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_every_reference_resolves(snapshot: str) -> None:
    data = load(snapshot)
    (district,) = data["districts"]
    students, teachers = users_with(snapshot, "student"), users_with(snapshot, "teacher")
    for resource in ("schools", "terms", "courses", "sections", "users"):
        assert all(r["district"] == district for r in data[resource].values()), resource
    for section in data["sections"].values():
        assert section["school"] in data["schools"]
        assert section["course"] in data["courses"]
        assert section["term_id"] in data["terms"]
        assert set(section["students"]) <= students.keys()
        assert section["teachers"] and set(section["teachers"]) <= teachers.keys()
        assert section["teacher"] == section["teachers"][0]
    for user in data["users"].values():
        for role in ("student", "teacher", "staff"):
            if role in user["roles"]:
                info = user["roles"][role]
                schools = set(info.get("schools", [])) | ({info["school"]} if info.get("school") else set())
                assert schools <= data["schools"].keys(), (user["id"], schools)
    for contact, student in guardian_links(snapshot):
        assert student in students, (contact, student)
    # nothing is left dangling: every student has a section
    enrolled = {person for _, person, role in enrollments(snapshot) if role == "student"}
    assert enrolled == students.keys()


def test_snapshot_1_is_the_recorded_demo_district_plus_what_we_added() -> None:
    data = load("snapshot-1")
    section_schools = {s["school"] for s in data["sections"].values()}
    assert section_schools == {
        "5a25ff950a5f621109000004",
        "5a25ff950a5f621109000005",
        "5a25ff950a5f621109000006",
    }
    assert {s["term_id"] for s in data["sections"].values()} == data["terms"].keys()
    assert {s["course"] for s in data["sections"].values()} == data["courses"].keys()
    course = data["courses"][data["sections"]["5a25ffc265e950634b00017c"]["course"]]
    assert course["name"] == "Group Guidance"


def test_snapshot_2_changes_are_the_documented_ones() -> None:
    one, two = load("snapshot-1"), load("snapshot-2")
    for resource in ("districts", "schools", "terms"):
        assert one[resource] == two[resource]
    assert {k: len(v) for k, v in diff(one["courses"], two["courses"]).items()} == {
        "removed": 0,
        "added": 1,
        "changed": 0,
    }
    sections = diff(one["sections"], two["sections"])
    assert len(sections["removed"]) == 3 and len(sections["added"]) == 2
    renamed = {i for i in sections["changed"] if one["sections"][i]["name"] != two["sections"][i]["name"]}
    assert len(renamed) == 3
    for i in sections["changed"]:
        assert one["sections"][i]["last_modified"] < two["sections"][i]["last_modified"]

    expected = {
        "student": {"removed": 15, "added": 10, "changed": 20},
        "teacher": {"removed": 1, "added": 0, "changed": 2},
        "district_admin": {"removed": 0, "added": 0, "changed": 0},
        "contact": {"removed": 20, "added": 10, "changed": 10},
    }
    for role, want in expected.items():
        got = diff(users_with("snapshot-1", role), users_with("snapshot-2", role))
        assert {k: len(v) for k, v in got.items()} == want, role
        for i in got["changed"]:
            assert one["users"][i]["last_modified"] < two["users"][i]["last_modified"]

    students_before, students_after = users_with("snapshot-1", "student"), users_with("snapshot-2", "student")
    changed = diff(students_before, students_after)["changed"]

    def field_changes(path):
        return sum(1 for i in changed if path(students_before[i]) != path(students_after[i]))

    assert field_changes(lambda u: u["roles"]["student"]["grade"]) == 8
    assert field_changes(lambda u: u["name"]["last"]) == 6
    assert field_changes(lambda u: u["email"]) == 6

    contacts = diff(users_with("snapshot-1", "contact"), users_with("snapshot-2", "contact"))
    for i in contacts["changed"]:
        assert one["users"][i]["roles"]["contact"]["phone"] != two["users"][i]["roles"]["contact"]["phone"]
    # every new student has exactly one new guardian, and sits in a few sections
    new_students = diff(students_before, students_after)["added"]
    links = guardian_links("snapshot-2") - guardian_links("snapshot-1")
    assert {student for _, student in links} == new_students
    assert {contact for contact, _ in links} == contacts["added"]
    for student in new_students:
        assert 1 <= sum(1 for s in two["sections"].values() if student in s["students"]) <= 6

    assert len(enrollments("snapshot-1") - enrollments("snapshot-2")) == 180
    assert len(enrollments("snapshot-2") - enrollments("snapshot-1")) == 85
    assert len(guardian_links("snapshot-1") - guardian_links("snapshot-2")) == 20
    assert len(links) == 10


@pytest.mark.parametrize(("before", "after"), [("snapshot-1", "snapshot-2"), ("snapshot-2", "snapshot-3")])
def test_removals_per_kind_stay_under_the_deletion_threshold(before: str, after: str) -> None:
    kinds: dict[str, tuple[set, set]] = {
        resource: (set(load(before)[resource]), set(load(after)[resource]))
        for resource in ("schools", "sections", "courses", "terms")
    }
    for role in ROLES:
        kinds[role] = (set(users_with(before, role)), set(users_with(after, role)))
    kinds["enrollments"] = (enrollments(before), enrollments(after))
    kinds["guardian_links"] = (guardian_links(before), guardian_links(after))
    for kind, (old, new) in kinds.items():
        if old:
            assert len(old - new) / len(old) < THRESHOLD, kind


def test_snapshot_3_restores_exactly_one_removed_student() -> None:
    one, two, three = load("snapshot-1"), load("snapshot-2"), load("snapshot-3")
    for resource in ("districts", "schools", "terms", "courses"):
        assert two[resource] == three[resource]
    students = diff(users_with("snapshot-2", "student"), users_with("snapshot-3", "student"))
    assert students["removed"] == set() and students["changed"] == set()
    (back,) = students["added"]
    assert back in one["users"] and back not in two["users"]
    assert three["users"][back] == one["users"][back]
    # the returning student's guardian comes back with them, as it was
    contacts = diff(users_with("snapshot-2", "contact"), users_with("snapshot-3", "contact"))
    assert contacts["removed"] == set() and contacts["changed"] == set()
    (guardian,) = contacts["added"]
    assert three["users"][guardian] == one["users"][guardian]
    assert guardian_links("snapshot-3") - guardian_links("snapshot-2") == {(guardian, back)}
    for role in ("teacher", "district_admin"):
        assert users_with("snapshot-2", role) == users_with("snapshot-3", role)
    # re-added to exactly one of the sections they were in before
    sections = diff(two["sections"], three["sections"])
    assert sections["removed"] == set() and sections["added"] == set()
    (section,) = sections["changed"]
    assert back in one["sections"][section]["students"]
    assert enrollments("snapshot-3") - enrollments("snapshot-2") == {(section, back, "student")}
    assert enrollments("snapshot-2") - enrollments("snapshot-3") == set()


def test_product_directory_links_point_into_the_roster() -> None:
    product = json.loads((SAMPLE / "product.json").read_text())
    data = load("snapshot-1")
    assert product["district"]["provider_ids"]["clever"] in data["districts"]
    linked = [s["provider_ids"]["clever"] for s in product["schools"] if s["provider_ids"]]
    assert len(linked) == 3 and set(linked) <= data["schools"].keys()
    assert any(not s["provider_ids"] for s in product["schools"])
    school_ids = {s["id"] for s in product["schools"]}
    for classroom in product["classrooms"]:
        assert classroom["school_id"] in school_ids
        if classroom["provider_ids"]:
            for snapshot in SNAPSHOTS:
                assert classroom["provider_ids"]["clever"] in load(snapshot)["sections"]
    for person in product["people"]:
        assert set(person["school_ids"]) <= school_ids
        assert not person["provider_ids"]
