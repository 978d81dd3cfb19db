"""The synthetic Clever district generator: counts, referential integrity, determinism, shape."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from rostersync.providers.clever import map_schools, map_sections, map_users, names_by_id
from rostersync_tools.local.synthetic import main, write_synthetic_clever_district

# Its module-scoped fixture is built once: the module stays on one test worker.

FILES = ("districts", "schools", "terms", "courses", "sections", "users")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")


def read(folder: Path) -> dict[str, list[dict]]:
    """Return resource -> records, checking each file is a Clever list response."""
    out: dict[str, list[dict]] = {}
    for resource in FILES:
        body = json.loads((folder / f"{resource}.json").read_bytes())
        assert body["links"] == [{"rel": "self", "uri": f"/v3.0/{resource}"}]
        for item in body["data"]:
            assert item["uri"] == f"/v3.0/{resource}/{item['data']['id']}"
        out[resource] = [item["data"] for item in body["data"]]
    return out


def role_users(data: dict[str, list[dict]], role: str) -> list[dict]:
    return [u for u in data["users"] if role in u["roles"]]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    folder = tmp_path_factory.mktemp("synthetic") / "district"
    return folder, write_synthetic_clever_district(folder, students=200, seed=11)


def test_writes_the_six_files_and_counts_match_them(small: tuple[Path, dict[str, int]]) -> None:
    folder, counts = small
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{r}.json" for r in FILES)
    data = read(folder)
    sections = data["sections"]
    contacts = role_users(data, "contact")
    assert counts == {
        "districts": 1,
        "schools": len(data["schools"]),
        "terms": len(data["terms"]),
        "courses": len(data["courses"]),
        "sections": len(sections),
        "users": len(data["users"]),
        "students": len(role_users(data, "student")),
        "teachers": len(role_users(data, "teacher")),
        "staff": len(role_users(data, "staff")),
        "district_admins": len(role_users(data, "district_admin")),
        "contacts": len(contacts),
        "student_enrollments": sum(len(s["students"]) for s in sections),
        "teacher_enrollments": sum(len(s["teachers"]) for s in sections),
        "enrollments": sum(len(s["students"]) + len(s["teachers"]) for s in sections),
        "guardian_links": sum(len(c["roles"]["contact"]["student_relationships"]) for c in contacts),
    }
    assert counts["students"] == 200
    people = ("students", "teachers", "staff", "district_admins", "contacts")
    assert counts["users"] == sum(counts[k] for k in people)


def test_ids_are_unique_24_hex(small: tuple[Path, dict[str, int]]) -> None:
    data = read(small[0])
    ids = [record["id"] for resource in FILES for record in data[resource]]
    assert all(OBJECT_ID.fullmatch(i) for i in ids)
    assert len(ids) == len(set(ids))


def test_every_reference_resolves(small: tuple[Path, dict[str, int]]) -> None:
    data = read(small[0])
    (district,) = data["districts"]
    schools = {s["id"] for s in data["schools"]}
    terms, courses = {t["id"] for t in data["terms"]}, {c["id"] for c in data["courses"]}
    students = {u["id"] for u in role_users(data, "student")}
    teachers = {u["id"] for u in role_users(data, "teacher")}
    for resource in ("schools", "terms", "courses", "sections", "users"):
        assert all(record["district"] == district["id"] for record in data[resource])
    for section in data["sections"]:
        assert section["school"] in schools and section["course"] in courses and section["term_id"] in terms
        assert set(section["students"]) <= students
        assert 1 <= len(section["teachers"]) <= 2 and set(section["teachers"]) <= teachers
        assert section["teacher"] == section["teachers"][0]
        assert len(section["students"]) == len(set(section["students"]))
    for user in data["users"]:
        for role in ("student", "teacher"):
            if role in user["roles"]:
                info = user["roles"][role]
                assert info["school"] in schools and set(info["schools"]) <= schools
        if "staff" in user["roles"]:
            assert set(user["roles"]["staff"]["schools"]) <= schools
        if "contact" in user["roles"]:
            linked = [r["student"] for r in user["roles"]["contact"]["student_relationships"]]
            assert linked and set(linked) <= students and len(linked) == len(set(linked))


def test_roster_shape(small: tuple[Path, dict[str, int]]) -> None:
    data = read(small[0])
    # every student is in six sections of their own school and grade, one per subject
    by_student: Counter[str] = Counter(i for s in data["sections"] for i in s["students"])
    students = {u["id"]: u["roles"]["student"] for u in role_users(data, "student")}
    assert set(by_student) == set(students) and set(by_student.values()) == {6}
    for section in data["sections"]:
        for student in section["students"]:
            assert students[student]["school"] == section["school"]
            assert students[student]["grade"] == section["grade"]
    # one or two guardians per student
    contacts = [c["roles"]["contact"] for c in role_users(data, "contact")]
    guardians: Counter[str] = Counter(r["student"] for c in contacts for r in c["student_relationships"])
    assert set(guardians) == set(students) and set(guardians.values()) <= {1, 2}


def test_people_are_fake(small: tuple[Path, dict[str, int]]) -> None:
    data = read(small[0])
    emails = [u["email"] for u in data["users"] if u["email"]]
    assert emails and all(e.rsplit("@", 1)[1] in {"example.org", "example.com"} for e in emails)
    assert len(emails) == len(set(emails))
    contacts = [c["roles"]["contact"] for c in role_users(data, "contact")]
    phones = [c["phone"] for c in contacts if c["phone"]]
    assert phones and all(re.fullmatch(r"\(\d{3}\) 555-01\d\d", p) for p in phones)


def test_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_synthetic_clever_district(tmp_path / "a", students=200, seed=3)
    second = write_synthetic_clever_district(tmp_path / "b", students=200, seed=3)
    other = write_synthetic_clever_district(tmp_path / "c", students=200, seed=4)
    assert first == second
    for resource in FILES:
        name = f"{resource}.json"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "users.json").read_bytes() != (tmp_path / "c" / "users.json").read_bytes()
    assert other["students"] == 200


def test_proportions_follow_the_district_size(tmp_path: Path) -> None:
    counts = write_synthetic_clever_district(tmp_path, students=3_000, seed=7)
    assert counts["schools"] == 6
    assert counts["teachers"] == 150
    assert counts["student_enrollments"] == 6 * 3_000
    assert 0.2 <= counts["sections"] / 3_000 <= 0.3  # sections of about 25 students
    assert 1.4 <= counts["guardian_links"] / 3_000 <= 1.6
    assert counts["contacts"] < counts["guardian_links"]  # siblings share guardians
    assert counts["staff"] + counts["district_admins"] == 30
    data = read(tmp_path)
    grades = {s["name"]: (s["low_grade"], s["high_grade"]) for s in data["schools"]}
    bands = [("Kindergarten", "5")] * 2 + [("6", "8")] * 2 + [("9", "12")] * 2
    assert sorted(grades.values()) == sorted(bands), grades


@pytest.mark.parametrize(("students", "schools"), [(1, None), (40, 1), (90, 2), (120, 5)])
def test_small_and_explicit_school_counts(tmp_path: Path, students: int, schools: int | None) -> None:
    counts = write_synthetic_clever_district(tmp_path, students=students, seed=1, schools=schools)
    data = read(tmp_path)
    assert counts["students"] == students == len(role_users(data, "student"))
    assert counts["schools"] == (schools or 1) == len(data["schools"])
    assert counts["student_enrollments"] == 6 * students


def test_rejects_empty_districts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="students"):
        write_synthetic_clever_district(tmp_path, students=0)
    with pytest.raises(ValueError, match="schools"):
        write_synthetic_clever_district(tmp_path, students=10, schools=0)


def test_the_clever_provider_maps_every_record(small: tuple[Path, dict[str, int]]) -> None:
    folder, counts = small
    items = {r: json.loads((folder / f"{r}.json").read_bytes())["data"] for r in FILES}
    mapped = [
        *map_schools(items["schools"]),
        *map_sections(items["sections"], names_by_id(items["courses"]), names_by_id(items["terms"])),
        *map_users(items["users"]),
    ]
    kinds = Counter(record.record_type for record in mapped)
    assert kinds["error"] == 0
    assert kinds["enrollment"] == counts["enrollments"]
    assert kinds["guardian_link"] == counts["guardian_links"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "cli"), "--students", "50", "--seed", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["students"] == 50
    assert printed == write_synthetic_clever_district(tmp_path / "again", students=50, seed=2)
