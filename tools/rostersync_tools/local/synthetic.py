"""Synthetic Clever district generator: a dataset folder of any size, for the simulator and benchmarks.

``write_synthetic_clever_district(out_dir, students=20_000)`` writes the six Clever v3.0 list responses
(``districts.json``, ``schools.json``, ``terms.json``, ``courses.json``, ``sections.json``, ``users.json``)
in the same shape as ``samples/clever-demo/snapshot-*``::

    {"data": [{"data": {...}, "uri": "/v3.0/<resource>/<id>"}, ...], "links": [{"rel": "self", ...}]}

The district's shape, per student count ``N``:

- schools: about one per 500 students (or ``schools``); with 3+ schools, about half elementary (K-5),
  a quarter middle (6-8) and a quarter high (9-12); one school is K-12, two are K-8 and 9-12;
- teachers: about one per 20 students of each school;
- sections: every student is in 6 sections (one per subject of their grade) of about 25 students, so
  sections are about ``6 N / 25`` and student enrollments exactly ``6 N``; each section has a teacher and
  15 % a co-teacher (teacher enrollments about ``1.15 x sections``); elementary classes stay together;
- contacts: students are grouped into families (mostly one child, some siblings); each family has one or
  two guardians (``contact`` users) linked to every child by ``student_relationships``, so about 1.5
  guardian links per student;
- staff and district admins: about 1 % of the student count.

Everything is fake: names from short lists of common names, emails at example.org / example.com only,
555-01xx phone numbers. Ids are 24-hex ObjectId-style strings. The output is a pure function of
``(students, seed, schools)``: the same arguments write byte-identical files. Files are streamed: memory
grows with the school plan and a few bytes per student, never with the whole roster, so a 1M-student
district is fine.

``product_for(dataset_dir, district_id)`` and ``set_up_district(product, connection, ...)`` make a product
district of such a dataset on the stack the environment points at (the embedded one in tests and
benchmarks): its schools carry the dataset's ids, its directory imported, its provider connected.

CLI: ``python -m rostersync_tools.local.synthetic OUT_DIR --students N [--seed S] [--schools K]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rostersync import aws
from rostersync.admin import connect_provider
from rostersync.config import runtime_config
from rostersync.directory.product import ProductDirectory, import_product_directory
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync.providers.base import iso_date

if TYPE_CHECKING:
    from rostersync_tools.local.simulator import ProviderSimulator

__all__ = [
    "connect_clever_simulator",
    "product_for",
    "set_up_district",
    "set_up_oneroster_rest_district",
    "write_synthetic_clever_district",
]

STUDENTS_PER_SCHOOL = 500
STUDENTS_PER_TEACHER = 20
SECTION_SIZE = 25
CO_TEACHER_SHARE = 0.15
STAFF_SHARE = 0.01
MAX_DISTRICT_ADMINS = 10
# family sizes (children) and their weights: mostly only children, some siblings
FAMILY_SIZES = (1, 2, 3)
FAMILY_WEIGHTS = (0.82, 0.15, 0.03)
TWO_GUARDIANS_SHARE = 0.5

API = "/v3.0"
TIMESTAMP = "2024-08-01T06:00:00.000Z"
SCHOOL_YEAR = 2024
_ID_EPOCH = 0x66AB0000  # 2024-08-01, the ObjectId time part
_COMPACT = {"separators": (",", ":")}

GRADES = ("Kindergarten", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12")
ELEMENTARY, MIDDLE, HIGH = GRADES[:6], GRADES[6:9], GRADES[9:]

# (Clever subject enum, display name, course code)
ELEMENTARY_SUBJECTS = (
    ("homeroom/advisory", "Homeroom", "HRM"),
    ("english/language arts", "Reading", "ELA"),
    ("math", "Mathematics", "MTH"),
    ("science", "Science", "SCI"),
    ("social studies", "Social Studies", "SOC"),
    ("arts and music", "Art and Music", "ART"),
)
SECONDARY_SUBJECTS = (
    ("english/language arts", "English", "ELA"),
    ("math", "Mathematics", "MTH"),
    ("science", "Science", "SCI"),
    ("social studies", "Social Studies", "SOC"),
    ("language", "Spanish", "SPA"),
    ("PE and health", "Physical Education", "PEH"),
)
STAFF_TITLES = (
    ("Principal", "Administration"),
    ("Assistant Principal", "Administration"),
    ("School Counselor", "Student Services"),
    ("School Nurse", "Health Services"),
    ("Office Manager", "Administration"),
    ("Librarian", "Library"),
    ("Social Worker", "Student Services"),
    ("Paraprofessional", "Special Education"),
    ("Speech Therapist", "Special Education"),
    ("IT Coordinator", "Technology"),
)
PLACES = (
    "Maple Grove", "Cedar Ridge", "Willow Creek", "Oak Hollow", "Pine Valley", "Birch Park", "Aspen Hill",
    "Riverbend", "Lakeview", "Hillcrest", "Meadowbrook", "Stonebridge", "Fairview", "Brookside",
    "Sunnydale", "Harbor Point", "Eastwood", "Westfield", "Northgate", "Southport", "Clearwater",
    "Greenfield", "Red Rock", "Silver Lake", "Juniper Heights", "Foxglove", "Highland", "Bayside",
    "Elm Street", "Copper Canyon",
)  # fmt: skip
FIRST_NAMES = (
    "Aaliyah", "Aiden", "Alex", "Amara", "Ana", "Andre", "Ari", "Ava", "Bella", "Ben", "Caleb", "Camila",
    "Carlos", "Chloe", "Daniel", "Daria", "David", "Diego", "Elena", "Eli", "Ella", "Emma", "Ethan",
    "Fatima", "Felix", "Gabriel", "Grace", "Hana", "Hannah", "Hugo", "Ibrahim", "Isabel", "Isaac", "Jada",
    "Jamal", "Jasmine", "Jayden", "Jonah", "Jordan", "Julia", "Kai", "Kayla", "Leah", "Leo", "Liam", "Lila",
    "Lucas", "Luna", "Maya", "Malik", "Marco", "Maria", "Mason", "Mei", "Mia", "Nadia", "Naomi", "Nathan",
    "Noah", "Nora", "Olivia", "Omar", "Priya", "Quinn", "Rafael", "Riley", "Rosa", "Ruby", "Sam", "Samir",
    "Sara", "Sofia", "Tariq", "Theo", "Valentina", "Wei", "Xavier", "Yara", "Yusuf", "Zara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Adeyemi", "Alvarez", "Anderson", "Bailey", "Banerjee", "Bennett", "Brooks", "Campbell",
    "Carter", "Castillo", "Chen", "Clarke", "Cohen", "Collins", "Cruz", "Daniels", "Diaz", "Dubois",
    "Edwards", "Ellis", "Evans", "Fischer", "Flores", "Foster", "Garcia", "Gomez", "Gonzalez", "Gray",
    "Green", "Gupta", "Hall", "Hayes", "Hernandez", "Hill", "Hughes", "Ivanov", "Jackson", "James",
    "Jensen", "Johnson", "Kaur", "Kim", "Kowalski", "Lee", "Lewis", "Lopez", "Martin", "Martinez",
    "Mendoza", "Miller", "Mitchell", "Moore", "Morales", "Murphy", "Nakamura", "Nguyen", "O'Connor",
    "Okafor", "Ortiz", "Park", "Patel", "Perez", "Peterson", "Phillips", "Price", "Ramirez", "Reed",
    "Reyes", "Richardson", "Rivera", "Roberts", "Robinson", "Rodriguez", "Rossi", "Russell", "Sanchez",
    "Santos", "Schmidt", "Shah", "Silva", "Singh", "Smith", "Sullivan", "Tanaka", "Taylor", "Thomas",
    "Torres", "Tran", "Turner", "Walker", "Wang", "Ward", "Washington", "Watson", "White", "Williams",
    "Wilson", "Wong", "Wright", "Young", "Zhang",
)  # fmt: skip
MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTW"
RACES = ("Asian", "Black or African American", "Caucasian", "Hispanic/Latino", "Two or More Races",
         "American Indian", "Native Hawaiian or Other Pacific Islander")  # fmt: skip
AREA_CODES = ("212", "347", "415", "512", "617", "646", "718", "773", "917", "929")
RELATIONSHIPS = (("Parent", "Parent/Guardian"), ("Parent", "Primary"), ("Grandparent", "Emergency"),
                 ("Aunt/Uncle", "Family"), ("Other", "Emergency"))  # fmt: skip
RELATIONSHIP_WEIGHTS = (0.6, 0.2, 0.1, 0.07, 0.03)
PHONE_TYPES = ("Cell", "Home", "Work")

# The ObjectId "machine" part distinguishes kinds, so per-kind counters never collide across kinds.
_KINDS = (
    "district",
    "school",
    "term",
    "course",
    "section",
    "admin",
    "staff",
    "teacher",
    "student",
    "contact",
)


@dataclass
class _School:
    index: int
    id: str
    name: str
    number: str
    grades: tuple[str, ...]
    students: int
    first_student: int  # global index of its first student
    teachers: list[int] = field(default_factory=list)  # global teacher indexes
    cursor: int = 0  # round-robin pointer for class teachers


class _Ids:
    """24-hex ObjectId-style ids: time part, a per-kind 5-byte part from the seed, a per-kind counter."""

    def __init__(self, rng: random.Random) -> None:
        parts: list[int] = []
        while len(parts) < len(_KINDS):
            part = rng.getrandbits(40)
            if part not in parts:
                parts.append(part)
        self._machine = {kind: f"{part:010x}" for kind, part in zip(_KINDS, parts, strict=True)}

    def __call__(self, kind: str, n: int) -> str:
        return f"{_ID_EPOCH + (n >> 24):08x}{self._machine[kind]}{n & 0xFFFFFF:06x}"


class _ListWriter:
    """Streams one Clever list response: ``{"data": [{"data": …, "uri": …}, …], "links": [self]}``."""

    def __init__(self, path: Path, resource: str) -> None:
        self.resource = resource
        self.count = 0
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="", buffering=1 << 20)
        self._file.write('{"data":[')

    def add(self, record: dict[str, Any]) -> None:
        if self.count:
            self._file.write(",")
        body = json.dumps(record, **_COMPACT)
        self._file.write(f'{{"data":{body},"uri":"{API}/{self.resource}/{record["id"]}"}}')
        self.count += 1

    def close(self) -> None:
        self._file.write(f'],"links":[{{"rel":"self","uri":"{API}/{self.resource}"}}]}}')
        self._file.close()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _admin_email(first: str, last: str, i: int) -> str:
    return f"{_slug(first)}.{_slug(last)}.admin{i}@example.org"


def _grade_label(grade: str) -> str:
    return grade if grade == "Kindergarten" else f"Grade {grade}"


def _split(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` near-equal non-negative integers (larger ones first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _school_bands(count: int) -> list[tuple[str, tuple[str, ...]]]:
    if count == 1:
        return [("K-12 School", GRADES)]
    if count == 2:
        return [("K-8 School", ELEMENTARY + MIDDLE), ("High School", HIGH)]
    high = max(1, round(count / 4))
    middle = max(1, round(count / 4))
    elementary = count - high - middle
    return (
        [("Elementary School", ELEMENTARY)] * elementary
        + [("Middle School", MIDDLE)] * middle
        + [("High School", HIGH)] * high
    )


def _subjects(grade: str) -> tuple[tuple[str, str, str], ...]:
    return ELEMENTARY_SUBJECTS if grade in ELEMENTARY else SECONDARY_SUBJECTS


def _phone(rng: random.Random) -> str:
    return f"({rng.choice(AREA_CODES)}) 555-01{rng.randrange(100):02d}"


def write_synthetic_clever_district(
    out_dir: Path, students: int = 20_000, seed: int = 7, schools: int | None = None
) -> dict[str, int]:
    """Write a synthetic Clever district of ``students`` students into ``out_dir``; return counts per kind.

    The counts: ``districts``, ``schools``, ``terms``, ``courses``, ``sections``, ``users``, ``students``,
    ``teachers``, ``staff``, ``district_admins``, ``contacts``, ``enrollments`` (= ``student_enrollments``
    + ``teacher_enrollments``) and ``guardian_links``.
    """
    if students < 1:
        raise ValueError("students must be at least 1")
    if schools is not None and schools < 1:
        raise ValueError("schools must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    make_id = _Ids(rng)
    district_id = make_id("district", 0)
    counts: dict[str, int] = {}

    # --- district ---------------------------------------------------------------------------------
    total_staff = max(1, round(students * STAFF_SHARE))
    n_admins = max(1, min(MAX_DISTRICT_ADMINS, total_staff // 20))
    n_staff = max(1, total_staff - n_admins)
    admins = [(rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)) for _ in range(n_admins)]
    district_name = f"{rng.choice(PLACES)} Unified School District"
    districts = _ListWriter(out_dir / "districts.json", "districts")
    districts.add(
        {
            "id": district_id,
            "name": district_name,
            "portal_url": f"https://clever.example.org/in/synthetic-{seed}",
            "sis_type": "sftp",
            "error": "",
            "launch_date": "2024-08-01",
            "state": "success",
            "last_sync": TIMESTAMP,
            "login_methods": ["Clever Badges", "Clever Passwords"],
            "district_contact": {
                "id": make_id("admin", 0),
                "district": district_id,
                "email": _admin_email(*admins[0], 0),
                "name": {"first": admins[0][0], "last": admins[0][1]},
                "title": "Superintendent",
            },
        }
    )
    districts.close()
    counts["districts"] = districts.count

    # --- schools ----------------------------------------------------------------------------------
    n_schools = schools if schools is not None else max(1, round(students / STUDENTS_PER_SCHOOL))
    plan: list[_School] = []
    band_seen: dict[str, int] = {}
    first_student = 0
    first_teacher = 0
    for index, ((kind, grades), size) in enumerate(
        zip(_school_bands(n_schools), _split(students, n_schools), strict=True)
    ):
        k = band_seen.get(kind, 0)
        band_seen[kind] = k + 1
        place = PLACES[k % len(PLACES)]
        name = f"{place} {kind}" + (f" {k // len(PLACES) + 1}" if k >= len(PLACES) else "")
        school = _School(
            index=index,
            id=make_id("school", index),
            name=name,
            number=str(100 + index),
            grades=grades,
            students=size,
            first_student=first_student,
        )
        n_teachers = max(1, round(size / STUDENTS_PER_TEACHER))
        school.teachers = list(range(first_teacher, first_teacher + n_teachers))
        first_teacher += n_teachers
        first_student += size
        plan.append(school)
    school_writer = _ListWriter(out_dir / "schools.json", "schools")
    for school in plan:
        school_writer.add(
            {
                "created": TIMESTAMP,
                "district": district_id,
                "high_grade": school.grades[-1],
                "id": school.id,
                "last_modified": TIMESTAMP,
                "location": {
                    "address": f"{100 + school.index * 7} {PLACES[school.index % len(PLACES)]} Road",
                    "city": "Springfield",
                    "state": "NY",
                    "zip": f"{10001 + school.index % 900:05d}",
                },
                "low_grade": school.grades[0],
                "mdr_number": "",
                "name": school.name,
                "nces_id": f"99{school.index:010d}",
                "phone": f"(212) 555-01{school.index % 100:02d}",
                "principal": {
                    "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    "email": f"principal.{school.number}@example.org",
                },
                "school_number": school.number,
                "sis_id": school.number,
                "state_id": f"ST-{school.number}",
            }
        )
    school_writer.close()
    counts["schools"] = school_writer.count

    # --- terms and courses -------------------------------------------------------------------------
    year, next_year = SCHOOL_YEAR, SCHOOL_YEAR + 1
    term_defs = (
        (f"School Year {year}-{next_year % 100:02d}", f"{year}-09-03", f"{next_year}-06-26"),
        (f"Fall Semester {year}", f"{year}-09-03", f"{next_year}-01-24"),
        (f"Spring Semester {next_year}", f"{next_year}-01-27", f"{next_year}-06-26"),
    )
    term_ids = [make_id("term", i) for i in range(len(term_defs))]
    term_writer = _ListWriter(out_dir / "terms.json", "terms")
    for term_id, (name, start, end) in zip(term_ids, term_defs, strict=True):
        term_writer.add(
            {
                "district": district_id,
                "end_date": f"{end}T00:00:00.000Z",
                "id": term_id,
                "name": name,
                "start_date": f"{start}T00:00:00.000Z",
            }
        )
    term_writer.close()
    counts["terms"] = term_writer.count

    used_grades = [g for g in GRADES if any(g in s.grades for s in plan)]
    course_ids: dict[tuple[str, str], str] = {}
    course_writer = _ListWriter(out_dir / "courses.json", "courses")
    for grade in used_grades:
        for _subject, display, code in _subjects(grade):
            course_id = make_id("course", len(course_ids))
            course_ids[(grade, code)] = course_id
            number = 0 if grade == "Kindergarten" else int(grade)
            course_writer.add(
                {
                    "district": district_id,
                    "id": course_id,
                    "name": f"{_grade_label(grade)} {display}",
                    "number": f"{code}-{number:02d}",
                }
            )
    course_writer.close()
    counts["courses"] = course_writer.count

    # --- families (decided before any student is written: siblings share a family name) ------------
    order = array("i", range(students))
    rng.shuffle(order)
    family_sizes = array("B")
    family_last = array("H", bytes(2 * students))
    position = 0
    while position < students:
        size = min(rng.choices(FAMILY_SIZES, FAMILY_WEIGHTS)[0], students - position)
        last = rng.randrange(len(LAST_NAMES))
        for member in order[position : position + size]:
            family_last[member] = last
        family_sizes.append(size)
        position += size

    # --- users: district admins, staff, teachers ---------------------------------------------------
    users = _ListWriter(out_dir / "users.json", "users")
    for i, (first, last) in enumerate(admins):
        users.add(
            {
                "created": TIMESTAMP,
                "district": district_id,
                "email": _admin_email(first, last, i),
                "last_modified": TIMESTAMP,
                "name": {"first": first, "last": last},
                "id": make_id("admin", i),
                "roles": {"district_admin": {"title": "District Administrator" if i else "Superintendent"}},
            }
        )
    for i in range(n_staff):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        title, department = STAFF_TITLES[i // len(plan) % len(STAFF_TITLES)]
        school = plan[i % len(plan)]
        users.add(
            {
                "created": TIMESTAMP,
                "district": district_id,
                "email": f"{_slug(first)}.{_slug(last)}.staff{i}@example.org",
                "last_modified": TIMESTAMP,
                "name": {"first": first, "last": last, "middle": rng.choice(MIDDLE_INITIALS)},
                "id": make_id("staff", i),
                "roles": {
                    "staff": {
                        "credentials": {"district_username": f"{_slug(first)}.{_slug(last)}{i}"},
                        "department": department,
                        "schools": [school.id],
                        "staff_id": f"S{100000 + i}",
                        "title": title,
                    }
                },
            }
        )
    teacher_last: list[str] = []
    teacher_subject_slots: dict[int, dict[int, list[int]]] = {}
    for school in plan:
        slots: dict[int, list[int]] = {}
        for k, t in enumerate(school.teachers):
            slot = k % 6
            slots.setdefault(slot, []).append(t)
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            teacher_last.append(last)
            if school.grades[0] in ELEMENTARY and len(school.grades) <= len(ELEMENTARY):
                title = "Classroom Teacher"
            else:
                title = f"{SECONDARY_SUBJECTS[slot][1]} Teacher"
            users.add(
                {
                    "created": TIMESTAMP,
                    "district": district_id,
                    "email": f"{_slug(first)}.{_slug(last)}.t{t}@example.org",
                    "last_modified": TIMESTAMP,
                    "name": {"first": first, "last": last, "middle": rng.choice(MIDDLE_INITIALS)},
                    "id": make_id("teacher", t),
                    "roles": {
                        "teacher": {
                            "credentials": {"district_username": f"{_slug(first)}.{_slug(last)}{t}"},
                            "school": school.id,
                            "schools": [school.id],
                            "sis_id": f"T{200000 + t}",
                            "state_id": f"{700000000 + t}",
                            "teacher_number": f"{300000 + t}",
                            "title": title,
                        }
                    },
                }
            )
        teacher_subject_slots[school.index] = slots
    subject_cursor: dict[tuple[int, int], int] = {}

    # --- users: students, and sections cohort by cohort (a cohort is one grade of one school) -------
    sections = _ListWriter(out_dir / "sections.json", "sections")
    student_enrollments = teacher_enrollments = 0
    for school in plan:
        start = school.first_student
        for grade, size in zip(school.grades, _split(school.students, len(school.grades)), strict=True):
            for local in range(size):
                n = start + local
                first = rng.choice(FIRST_NAMES)
                last = LAST_NAMES[family_last[n]]
                email = f"{_slug(first)}.{_slug(last)}.{n}@example.org"
                grade_index = GRADES.index(grade)
                birth_year = SCHOOL_YEAR - 5 - grade_index
                users.add(
                    {
                        "created": TIMESTAMP,
                        "district": district_id,
                        "email": email,
                        "last_modified": TIMESTAMP,
                        "name": {"first": first, "last": last, "middle": rng.choice(MIDDLE_INITIALS)},
                        "id": make_id("student", n),
                        "roles": {
                            "student": {
                                "credentials": {"district_username": f"{_slug(first)}{_slug(last)[:1]}{n}"},
                                "dob": f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{birth_year}",
                                "ell_status": "Y" if rng.random() < 0.1 else "N",
                                "enrollments": [],
                                "gender": rng.choice("MFMFX"),
                                "grade": grade,
                                "graduation_year": str(SCHOOL_YEAR + 13 - grade_index),
                                "hispanic_ethnicity": "Y" if rng.random() < 0.25 else "N",
                                "location": {"address": "", "city": "", "state": "", "zip": ""},
                                "race": rng.choice(RACES),
                                "school": school.id,
                                "schools": [school.id],
                                "sis_id": f"{100000000 + n}",
                                "state_id": f"{500000000 + n}",
                                "student_number": f"{100000000 + n}",
                                "email": email,
                            }
                        },
                    }
                )
            if size:
                s, t = _write_cohort_sections(
                    sections, rng, make_id, district_id, school, grade, start, size,
                    course_ids, term_ids, teacher_last, teacher_subject_slots[school.index], subject_cursor,
                )  # fmt: skip
                student_enrollments += s
                teacher_enrollments += t
            start += size
    sections.close()

    # --- users: contacts, family by family -----------------------------------------------------------
    contacts = guardian_links = 0
    position = 0
    for size in family_sizes:
        children = order[position : position + size]
        position += size
        family = LAST_NAMES[family_last[children[0]]]
        for _ in range(2 if rng.random() < TWO_GUARDIANS_SHARE else 1):
            first = rng.choice(FIRST_NAMES)
            last = family if rng.random() < 0.85 else rng.choice(LAST_NAMES)
            relationship, rel_type = rng.choices(RELATIONSHIPS, RELATIONSHIP_WEIGHTS)[0]
            has_email, has_phone = rng.random() < 0.9, rng.random() < 0.85
            users.add(
                {
                    "created": TIMESTAMP,
                    "district": district_id,
                    "email": f"{_slug(first)}.{_slug(last)}.{contacts}@example.com" if has_email else "",
                    "last_modified": TIMESTAMP,
                    "name": {"first": first, "last": last},
                    "id": make_id("contact", contacts),
                    "roles": {
                        "contact": {
                            "phone": _phone(rng) if has_phone else "",
                            "phone_type": rng.choice(PHONE_TYPES) if has_phone else "",
                            "sis_id": f"C{400000000 + contacts}",
                            "student_relationships": [
                                {
                                    "relationship": relationship,
                                    "student": make_id("student", c),
                                    "type": rel_type,
                                }
                                for c in sorted(children)
                            ],
                        }
                    },
                }
            )
            contacts += 1
            guardian_links += size
    users.close()

    counts.update(
        sections=sections.count,
        users=users.count,
        students=students,
        teachers=first_teacher,
        staff=n_staff,
        district_admins=n_admins,
        contacts=contacts,
        student_enrollments=student_enrollments,
        teacher_enrollments=teacher_enrollments,
        enrollments=student_enrollments + teacher_enrollments,
        guardian_links=guardian_links,
    )
    return counts


def _write_cohort_sections(
    sections: _ListWriter,
    rng: random.Random,
    make_id: _Ids,
    district_id: str,
    school: _School,
    grade: str,
    start: int,
    size: int,
    course_ids: dict[tuple[str, str], str],
    term_ids: list[str],
    teacher_last: list[str],
    slots: dict[int, list[int]],
    subject_cursor: dict[tuple[int, int], int],
) -> tuple[int, int]:
    """Write one cohort's sections (every student in one section per subject); return enrollment counts."""
    n_sections = max(1, round(size / SECTION_SIZE))
    elementary = grade in ELEMENTARY
    student_enrollments = teacher_enrollments = 0

    def groups() -> list[list[int]]:
        members = list(range(start, start + size))
        rng.shuffle(members)
        bounds = [i * size // n_sections for i in range(n_sections + 1)]
        return [sorted(members[bounds[i] : bounds[i + 1]]) for i in range(n_sections)]

    def next_teacher(slot: int | None) -> int:
        pool = slots.get(slot, school.teachers) if slot is not None else school.teachers
        key = (school.index, -1 if slot is None else slot)
        k = subject_cursor.get(key, 0)
        subject_cursor[key] = k + 1
        return pool[k % len(pool)]

    # elementary classes stay together all day with one class teacher; secondary regroups per subject
    class_groups = groups() if elementary else []
    class_teachers = [next_teacher(None) for _ in class_groups]
    for slot, (subject, display, code) in enumerate(_subjects(grade)):
        subject_groups = class_groups if elementary else groups()
        for g, members in enumerate(subject_groups):
            teacher = class_teachers[g] if elementary else next_teacher(slot)
            teachers = [teacher]
            if len(school.teachers) > 1 and rng.random() < CO_TEACHER_SHARE:
                co = rng.choice(school.teachers)
                if co != teacher:
                    teachers.append(co)
            n = sections.count
            period = str(slot + 1)
            # secondary electives (the sixth subject) run by semester, everything else all year
            term = term_ids[1 + g % 2] if (not elementary and slot == 5) else term_ids[0]
            course_name = f"{_grade_label(grade)} {display}"
            sections.add(
                {
                    "course": course_ids[(grade, code)],
                    "created": TIMESTAMP,
                    "district": district_id,
                    "grade": grade,
                    "last_modified": TIMESTAMP,
                    "name": f"{course_name} - {teacher_last[teacher]} - {period}",
                    "period": period,
                    "school": school.id,
                    "section_number": f"{g + 1:02d}",
                    "sis_id": f"{900000 + n}",
                    "students": [make_id("student", m) for m in members],
                    "subject": subject,
                    "teacher": make_id("teacher", teacher),
                    "teachers": [make_id("teacher", t) for t in teachers],
                    "term_id": term,
                    "id": make_id("section", n),
                }
            )
            student_enrollments += len(members)
            teacher_enrollments += len(teachers)
    return student_enrollments, teacher_enrollments


# -- a product district of the dataset ----------------------------------------------------------------


def product_for(
    dataset_dir: Path, district_id: str, name: str = "Synthetic District", provider: str = "clever"
) -> ProductDirectory:
    """A product directory whose schools carry the dataset's school ids as ``provider``'s (what step 2 of the
    admin's path does by hand; a dataset converted to OneRoster keeps its ids). School ``n`` is
    ``sch-<district>-<n>``: two districts of the same dataset share no id."""
    schools = json.loads((dataset_dir / "schools.json").read_text(encoding="utf-8"))["data"]
    return ProductDirectory.model_validate(
        {
            "district": {"id": district_id, "name": name, "plan": "premium"},
            "schools": [
                {"id": f"sch-{district_id}-{n}", "name": s["data"]["name"], "provider_ids": {provider: s["data"]["id"]}}
                for n, s in enumerate(schools)
            ],
        }
    )


def product_people_for(dataset_dir: Path, district_id: str) -> list[dict[str, Any]]:
    """The dataset's people as accounts the product already has, with no provider link (a district that
    used the product before it turned sync on): each student with their SIS id and birth date, each
    teacher, staff member and contact with their email (a contact's phone too), in the product's schools
    of ``product_for``. A first sync with ``student_match_id`` ``sis_id`` links every one of them rather
    than creating them (``bench_sync.py --product-people``)."""
    schools = json.loads((dataset_dir / "schools.json").read_text(encoding="utf-8"))["data"]
    school_of = {s["data"]["id"]: f"sch-{district_id}-{n}" for n, s in enumerate(schools)}
    users = json.loads((dataset_dir / "users.json").read_text(encoding="utf-8"))["data"]
    people: list[dict[str, Any]] = []
    for n, wrapped in enumerate(users):
        user = wrapped["data"]
        roles = user.get("roles") or {}
        person: dict[str, Any] = {
            "id": f"prd-{district_id}-{n}",
            "given_name": user["name"]["first"],
            "family_name": user["name"]["last"],
            "email": user.get("email", ""),
        }
        if "student" in roles:
            student = roles["student"]
            person |= {"roles": ["student"], "sis_id": student["sis_id"], "birth_date": iso_date(student["dob"])}
            person["school_ids"] = [school_of[student["school"]]]
        elif "teacher" in roles or "staff" in roles:
            role = "teacher" if "teacher" in roles else "staff"
            person |= {"roles": [role], "school_ids": [school_of[s] for s in roles[role].get("schools", [])]}
        elif "district_admin" in roles:
            person |= {"roles": ["staff"], "school_ids": []}
        elif "contact" in roles:
            person |= {"roles": ["guardian"], "school_ids": [], "phone": roles["contact"].get("phone", "")}
        else:
            continue
        people.append(person)
    return people


def set_up_district(
    product: ProductDirectory,
    connection: str,
    base_url: str = "",
    secret: str | None = None,
    page_limit: int = 10_000,
    *,
    stack: str | None = None,
    **options: Any,
) -> tuple[DirectoryRepository, SyncStateRepository]:
    """Import ``product`` into the directory and store its district's connection (``connection`` and the rest
    as ``admin.connect_provider`` takes them: ``clever``, ``oneroster-rest`` or ``oneroster-csv``), as
    installing the app does. Returns the district's directory and sync state repositories."""
    config, dynamodb = runtime_config(), aws.client("dynamodb")
    directory = DirectoryRepository(dynamodb, config.directory_table, product.district.id)
    state = SyncStateRepository(dynamodb, config.sync_state_table, product.district.id)
    import_product_directory(product, directory, state)
    secrets = aws.client("secretsmanager")
    connect_provider(state, secrets, connection, base_url, secret, page_limit, stack=stack, **options)
    return directory, state


def connect_clever_simulator(
    state: SyncStateRepository, simulator: ProviderSimulator, token: str, page_limit: int = 10_000, *, stack: str
) -> None:
    """Store (or replace) the district's Clever connection to ``simulator`` with ``token``, as installing the
    app does, at the rate the simulator allows (``ProviderSimulator.requests_per_minute``): a simulator
    without a limit is not paced."""
    connect_provider(
        state,
        aws.client("secretsmanager"),
        "clever",
        simulator.base_url,
        token,
        page_limit,
        stack=stack,
        requests_per_minute=simulator.requests_per_minute,
    )


def set_up_oneroster_rest_district(
    product: ProductDirectory, simulator: ProviderSimulator, token: str, *, stack: str
) -> SyncStateRepository:
    """``set_up_district`` for a OneRoster REST district on ``simulator`` (bearer ``token``, pages of 1,000), as
    the benchmarks read one; returns its sync state."""
    _, state = set_up_district(product, "oneroster-rest", simulator.base_url, token, 1_000, stack=stack, auth="bearer")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rostersync_tools.local.synthetic",
        description="Write a synthetic Clever district (six v3.0 list-response files) into OUT_DIR.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--students", type=int, default=20_000, help="number of students (default 20000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--schools", type=int, default=None, help="number of schools (default: 1 per 500)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = write_synthetic_clever_district(args.out_dir, args.students, args.seed, args.schools)
    elapsed = time.perf_counter() - started
    print(json.dumps(counts, indent=2))
    print(f"wrote {args.out_dir} in {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
