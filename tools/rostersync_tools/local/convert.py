"""A Clever dataset folder as a OneRoster CSV bundle of the same district, with the same ids.

``clever_to_oneroster(clever_dir, out_dir)`` reads the six Clever v3.0 list responses the simulator
serves (``districts.json``, ``schools.json``, ``terms.json``, ``courses.json``, ``sections.json``,
``users.json``) and writes a OneRoster 1.1 (or 1.2) bulk bundle whose sourcedIds are the Clever ids, so
that the Clever mapping and the OneRoster mapping give the same canonical records. With it one district
can be synced as Clever data, as an uploaded CSV bundle, and over OneRoster REST (the simulator serves
the bundle folder), and the three directories compared.

What becomes what:

- ``manifest.csv``: every written file ``bulk``; the other files of the version ``absent``.
- ``orgs.csv``: the district (``type`` district) and its schools (``type`` school, ``parentSourcedId`` the
  district); ``identifier`` is the school's ``sis_id`` (else ``school_number``); NCES id, state id, low
  and high grade and phone, which OneRoster 1.1 has no column for, go to ``metadata.ncesId``,
  ``metadata.stateId``, ``metadata.lowGrade``, ``metadata.highGrade``, ``metadata.phone``.
- ``academicSessions.csv``: terms (``type`` term, dates without their time, ``schoolYear`` the year the
  term ends). ``courses.csv``: courses (``courseCode`` the Clever ``number``, org the district).
- ``classes.csv``: sections (``classCode`` the ``sis_id``; ``grades``, ``subjects``, ``periods``, one
  course and one term; ``classType`` homeroom for the homeroom/advisory subject, else scheduled).
- ``users.csv``: students, teachers, staff and district admins (``administrator``), contacts (``parent``
  for a Parent relationship, ``relative`` for Grandparent, Aunt/Uncle and Sibling, ``guardian``
  otherwise). ``orgSourcedIds`` are the schools of the user's roles (the district for district admins and
  contacts); ``identifier`` the SIS id (``staff_id`` for staff); ``userIds`` ``{studentNumber:…}``,
  ``{teacherNumber:…}``, ``{stateId:…}``; a contact's Cell phone is ``sms``, any other phone ``phone``;
  ``agentSourcedIds`` link contacts to their students and students to their contacts; ``grades`` is the
  student's grade.
- ``enrollments.csv``: each section's students, and every teacher of it (``teachers`` and ``teacher``;
  the primary teacher ``primary`` true); a user listed as both a student and a teacher of one section is
  enrolled as a student only, as the Clever mapping does.
- ``demographics.csv``: students' birth date (ISO), sex, race and Hispanic ethnicity.

Grades are written as the CEDS codes OneRoster uses (Kindergarten → KG, 1 → 01, ...). ``version="1.2"``
writes the same district as OneRoster 1.2: roles in ``roles.csv`` (a user may then hold several), staff
as ``siteAdministrator`` and district admins as ``districtAdministrator``.

What OneRoster cannot say, and is lost (:func:`drop_inexpressible` removes it from a Clever dataset, so
that both forms then hold the same district):

- titles of teachers, staff and district admins, and students' ``home_language``: no OneRoster field;
- a contact's relationship per student and its ``type``: OneRoster has one role per user (parent,
  guardian, relative; from the contact's first relationship) and nothing like Clever's Emergency or
  Primary; Parent comes back as Parent, but Grandparent, Aunt/Uncle, Sibling, Self and Other come back
  as Relative or Guardian;
- phone types other than Cell (Home, Work, Other): OneRoster knows ``sms`` and ``phone`` only;
- in OneRoster 1.1, a second role of one user (a teacher who is also staff or a parent): one ``role``;
- a school whose ``school_number`` differs from its ``sis_id``: one ``identifier``;
- not in the synthetic districts, and not dropped: spaces around a value (CSV readers strip cells), and
  commas inside a subject or period (OneRoster lists are comma-separated).

Every row's ``dateLastModified`` is its Clever ``last_modified`` (the district's ``last_sync`` for terms
and courses, which have none). A second night is a second bulk bundle; served over REST, the simulator
stamps what changed since the bundle before and serves what went as ``tobedeleted``.

Every list file is read whole (a district of 20,000 students is a few tens of MB); rows are written as
they are made.

CLI: ``python -m rostersync_tools.local.convert CLEVER_DIR OUT_DIR [--version 1.2] [--zip]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import zipfile
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from rostersync.providers.base import iso_date
from rostersync.providers.clever import field_ids, field_object, field_text, first_field_text
from rostersync.providers.oneroster_csv import FILES

__all__ = ["VERSIONS", "clever_to_oneroster", "drop_inexpressible", "zip_bundle"]

VERSIONS = ("1.1", "1.2")

# Clever's grade names → the CEDS codes OneRoster uses.
GRADE_CODES = {
    "InfantToddler": "IT",
    "Preschool": "PR",
    "PreKindergarten": "PK",
    "TransitionalKindergarten": "TK",
    "Kindergarten": "KG",
    **{str(n): f"{n:02d}" for n in range(1, 14)},
    "PostGraduate": "PS",
    "Ungraded": "UG",
    "Other": "Other",
}
# Clever relationship → the contact's OneRoster role (anything else: guardian).
RELATIONSHIP_ROLES = {"Parent": "parent", "Grandparent": "relative", "Aunt/Uncle": "relative", "Sibling": "relative"}
# Clever race → the OneRoster demographics column that says "true".
RACE_COLUMNS = {
    "American Indian": "americanIndianOrAlaskaNative",
    "Asian": "asian",
    "Black or African American": "blackOrAfricanAmerican",
    "Native Hawaiian or Other Pacific Islander": "nativeHawaiianOrOtherPacificIslander",
    "Caucasian": "white",
    "White": "white",
    "Two or More Races": "demographicRaceTwoOrMoreRaces",
}
# A user's Clever roles, most specific first: the one OneRoster 1.1 keeps when a user has several.
CLEVER_ROLES = ("student", "teacher", "staff", "district_admin", "contact")
_STAFF_ROLES = {"1.1": {"staff": "administrator", "district_admin": "administrator"}}
_STAFF_ROLES["1.2"] = {"staff": "siteAdministrator", "district_admin": "districtAdministrator"}

_RACES = (
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
)
# The files' columns as the CSV provider reads them (OneRoster 1.1's, then 1.2's additions).
_USERS = FILES["users"].columns
_USERS_1_1 = _USERS[: _USERS.index("password") + 1]
# As written for 1.2: a user's roles, and the schools they hold them at, go to roles.csv.
_USERS_1_2 = tuple(column for column in _USERS if column not in ("orgSourcedIds", "role"))
COLUMNS: dict[str, tuple[str, ...]] = {
    **{name: spec.columns for name, spec in FILES.items()},
    "orgs": (
        *FILES["orgs"].columns,
        "metadata.ncesId",
        "metadata.stateId",
        "metadata.lowGrade",
        "metadata.highGrade",
        "metadata.phone",
    ),
    "users": _USERS_1_1,
}
_ABSENT = {
    "1.1": ("categories", "classResources", "courseResources", "lineItems", "resources", "results"),
    "1.2": (
        "categories",
        "classResources",
        "courseResources",
        "lineItemLearningObjectiveIds",
        "lineItems",
        "lineItemScoreScales",
        "resources",
        "resultLearningObjectiveIds",
        "results",
        "resultScoreScales",
        "scoreScales",
        "userProfiles",
        "userResources",
    ),
}
_SEX = {"M": "male", "F": "female"}


def clever_to_oneroster(clever_dir: Path, out_dir: Path, version: str = "1.1") -> dict[str, int]:
    """Write the Clever district in ``clever_dir`` as a OneRoster bulk CSV bundle in ``out_dir``.

    Parameters
    ----------
    clever_dir
        A folder of Clever v3.0 list responses (``{"data": [{"data": {...}}, ...]}``); missing files
        count as empty lists.
    out_dir
        Where the CSV files go (created if needed; files of the same names are replaced).
    version
        ``1.1`` or ``1.2``.

    Returns
    -------
    Rows written per file (``orgs``, ``academicSessions``, ``courses``, ``classes``, ``users``,
    ``enrollments``, ``demographics``, and ``roles`` for 1.2), ``skipped_users`` (users without a role
    OneRoster can hold) and ``skipped_enrollments`` (a section's teacher who is also its student).
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}, not {version!r}")
    clever_dir, out_dir = Path(clever_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = _BundleWriter(out_dir, version)
    counts: dict[str, int] = {"skipped_users": 0, "skipped_enrollments": 0}

    districts = _list(clever_dir, "districts")
    schools = _list(clever_dir, "schools")
    district_id = field_text(districts[0].get("id")) if districts else ""
    if not district_id:
        district_id = next(
            (field_text(s.get("district")) for s in schools if field_text(s.get("district"))), "district"
        )
    district_modified = field_text(districts[0].get("last_sync")) if districts else ""

    with writer.file("orgs") as orgs:
        district = districts[0] if districts else {}
        orgs.write(
            {
                "sourcedId": district_id,
                "dateLastModified": district_modified,
                "name": field_text(district.get("name")) or "District",
                "type": "district",
            }
        )
        for school in schools:
            orgs.write(
                {
                    "sourcedId": field_text(school.get("id")),
                    "dateLastModified": field_text(school.get("last_modified")),
                    "name": field_text(school.get("name")),
                    "type": "school",
                    "identifier": field_text(school.get("sis_id")) or field_text(school.get("school_number")),
                    "parentSourcedId": district_id,
                    "metadata.ncesId": field_text(school.get("nces_id")),
                    "metadata.stateId": field_text(school.get("state_id")),
                    "metadata.lowGrade": _grade(school.get("low_grade")),
                    "metadata.highGrade": _grade(school.get("high_grade")),
                    "metadata.phone": field_text(school.get("phone")),
                }
            )
    del schools

    with writer.file("academicSessions") as sessions:
        for term in _list(clever_dir, "terms"):
            end = _day(term.get("end_date"))
            sessions.write(
                {
                    "sourcedId": field_text(term.get("id")),
                    "dateLastModified": field_text(term.get("last_modified")) or district_modified,
                    "title": field_text(term.get("name")),
                    "type": "term",
                    "startDate": _day(term.get("start_date")),
                    "endDate": end,
                    "schoolYear": end[:4],
                }
            )

    with writer.file("courses") as courses:
        for course in _list(clever_dir, "courses"):
            courses.write(
                {
                    "sourcedId": field_text(course.get("id")),
                    "dateLastModified": field_text(course.get("last_modified")) or district_modified,
                    "title": field_text(course.get("name")),
                    "courseCode": field_text(course.get("number")),
                    "orgSourcedId": district_id,
                }
            )

    with writer.file("classes") as classes, writer.file("enrollments") as enrollments:
        for section in _list(clever_dir, "sections"):
            counts["skipped_enrollments"] += _write_section(section, classes, enrollments)

    users = _list(clever_dir, "users")
    contacts_of: dict[str, list[str]] = {}
    for user in users:
        for student in _contact_students(user):
            contacts_of.setdefault(student, []).append(field_text(user.get("id")))
    staff_roles = _STAFF_ROLES[version]
    with (
        writer.file("users") as users_file,
        writer.file("demographics") as demographics,
        writer.file("roles") if version == "1.2" else nullcontext() as roles_file,
    ):
        for user in users:
            written = _write_user(user, district_id, contacts_of, staff_roles, version, users_file, roles_file)
            if not written:
                counts["skipped_users"] += 1
                continue
            student = field_object(field_object(user.get("roles")).get("student"))
            if student:
                _write_demographics(user, student, demographics)

    writer.manifest()
    counts.update(writer.counts)
    return counts


def drop_inexpressible(clever_dir: Path, version: str = "1.1") -> dict[str, int]:
    """Remove from a Clever dataset, in place, what OneRoster ``version`` cannot say; return how much.

    Afterwards :func:`clever_to_oneroster` loses nothing the sync reads: the Clever mapping of the
    folder and the OneRoster mapping of its bundle give the same canonical records. Dropped: titles,
    ``home_language``, relationship types; relationships become Parent (the only Clever word a
    OneRoster role gives back); phone types other than Cell (and any type without a phone); in 1.1
    every role of a user but the first of student, teacher, staff, district admin, contact; a school's
    ``school_number`` when it is not its ``sis_id``.

    Returns counts by what was changed (``titles``, ``home_languages``, ``relationships``,
    ``phone_types``, ``roles``, ``school_numbers``).
    """
    clever_dir = Path(clever_dir)
    dropped = dict.fromkeys(("titles", "home_languages", "relationships", "phone_types", "roles", "school_numbers"), 0)

    def users(data: dict[str, Any]) -> None:
        roles = field_object(data.get("roles"))
        known = [name for name in CLEVER_ROLES if isinstance(roles.get(name), dict)]
        if version == "1.1" and len(known) > 1:
            for name in known[1:]:
                del roles[name]
                dropped["roles"] += 1
        for name in ("teacher", "staff", "district_admin"):
            role = roles.get(name)
            if isinstance(role, dict) and role.pop("title", None) is not None:
                dropped["titles"] += 1
        student = roles.get("student")
        if isinstance(student, dict) and student.pop("home_language", None) is not None:
            dropped["home_languages"] += 1
        contact = roles.get("contact")
        if isinstance(contact, dict):
            phone_type = field_text(contact.get("phone_type"))
            if phone_type and (phone_type != "Cell" or not field_text(contact.get("phone")).strip()):
                contact["phone_type"] = ""
                dropped["phone_types"] += 1
            for relationship in contact.get("student_relationships") or []:
                if not isinstance(relationship, dict):
                    continue
                if field_text(relationship.get("relationship")) != "Parent" or field_text(relationship.get("type")):
                    dropped["relationships"] += 1
                relationship["relationship"] = "Parent"
                relationship["type"] = ""

    def schools(data: dict[str, Any]) -> None:
        sis_id = field_text(data.get("sis_id"))
        if sis_id and field_text(data.get("school_number")) != sis_id:
            data["school_number"] = sis_id
            dropped["school_numbers"] += 1

    _edit_list(clever_dir, "users", users)
    _edit_list(clever_dir, "schools", schools)
    return dropped


def zip_bundle(bundle_dir: Path) -> bytes:
    """The bundle folder's CSV files as zip bytes, as a district's SFTP upload delivers them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(bundle_dir).glob("*.csv")):
            archive.write(path, path.name)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# Sections and users
# ---------------------------------------------------------------------------------------------------


def _write_section(section: dict[str, Any], classes: _CsvFile, enrollments: _CsvFile) -> int:
    """One class and its enrollments; return the teachers not enrolled because they are students of it."""
    section_id, school = field_text(section.get("id")), field_text(section.get("school"))
    stamp = field_text(section.get("last_modified"))
    subject = field_text(section.get("subject"))
    classes.write(
        {
            "sourcedId": section_id,
            "dateLastModified": stamp,
            "title": field_text(section.get("name")),
            "grades": _grade(section.get("grade")),
            "courseSourcedId": field_text(section.get("course")),
            "classCode": field_text(section.get("sis_id")),
            "classType": "homeroom" if subject == "homeroom/advisory" else "scheduled",
            "schoolSourcedId": school,
            "termSourcedIds": field_text(section.get("term_id")),
            "subjects": subject,
            "periods": field_text(section.get("period")),
        }
    )
    teachers = section.get("teachers")
    primary = field_text(section.get("teacher"))
    enrolled: set[str] = set()
    skipped = 0
    for role, people in (
        ("student", field_ids(section.get("students"))),
        ("teacher", field_ids([*(teachers if isinstance(teachers, list) else []), section.get("teacher")])),
    ):
        for person in people:
            if person in enrolled:
                skipped += 1
                continue
            enrolled.add(person)
            enrollments.write(
                {
                    "sourcedId": f"{section_id}:{person}",
                    "dateLastModified": stamp,
                    "classSourcedId": section_id,
                    "schoolSourcedId": school,
                    "userSourcedId": person,
                    "role": role,
                    "primary": "true" if role == "teacher" and person == primary else "false",
                }
            )
    return skipped


def _write_user(
    user: dict[str, Any],
    district_id: str,
    contacts_of: dict[str, list[str]],
    staff_roles: dict[str, str],
    version: str,
    users_file: _CsvFile,
    roles_file: _CsvFile | None,
) -> bool:
    """One user's row (and 1.2 roles rows); False when the user has no role OneRoster can hold."""
    user_id = field_text(user.get("id"))
    by_role = field_object(user.get("roles"))
    known = [name for name in CLEVER_ROLES if isinstance(by_role.get(name), dict)]
    if not user_id or not known:
        return False
    student, teacher, staff, admin, contact = (field_object(by_role.get(name)) for name in CLEVER_ROLES)
    name = field_object(user.get("name"))

    # (OneRoster role, its orgs) per Clever role, in CLEVER_ROLES order.
    role_orgs: list[tuple[str, list[str]]] = []
    for clever_role in known:
        data = field_object(by_role[clever_role])
        if clever_role in ("student", "teacher", "staff"):
            orgs = field_ids(data.get("schools")) or field_ids([data.get("school")])
            role = {"student": "student", "teacher": "teacher"}.get(clever_role) or staff_roles["staff"]
        elif clever_role == "district_admin":
            orgs, role = [], staff_roles["district_admin"]
        else:
            orgs, role = [], _contact_role(contact)
        role_orgs.append((role, orgs or [district_id]))
    # The schools of every role (the district only for a user with none), whatever 1.1 keeps of the roles.
    schools = list(dict.fromkeys(org for _role, orgs in role_orgs for org in orgs))
    if len(schools) > 1 and district_id in schools:
        schools.remove(district_id)
    if version == "1.1":
        role_orgs = role_orgs[:1]

    ids = []
    if student and field_text(student.get("student_number")):
        ids.append(("studentNumber", field_text(student.get("student_number"))))
    if teacher and field_text(teacher.get("teacher_number")):
        ids.append(("teacherNumber", field_text(teacher.get("teacher_number"))))
    state_id = first_field_text(student.get("state_id"), teacher.get("state_id"))
    if state_id:
        ids.append(("stateId", state_id))
    phone = field_text(contact.get("phone"))
    cell = field_text(contact.get("phone_type")) == "Cell"
    email = first_field_text(
        user.get("email"), *(role.get("email") for role in (student, teacher, staff, admin, contact))
    )
    agents = _contact_students(user) if contact else []
    if student:
        agents = [*agents, *contacts_of.get(user_id, [])]
    credentials = field_object(
        next((field_object(role).get("credentials") for role in (student, teacher, staff) if role), {})
    )
    row = {
        "sourcedId": user_id,
        "dateLastModified": field_text(user.get("last_modified")),
        "enabledUser": "true",
        "username": field_text(credentials.get("district_username")) or email or user_id,
        "userIds": ",".join(f"{{{kind}:{value}}}" for kind, value in ids),
        "givenName": field_text(name.get("first")),
        "familyName": field_text(name.get("last")),
        "middleName": field_text(name.get("middle")),
        "identifier": first_field_text(
            student.get("sis_id"), teacher.get("sis_id"), staff.get("staff_id"), contact.get("sis_id")
        ),
        "email": email,
        "sms": phone if cell else "",
        "phone": "" if cell else phone,
        "agentSourcedIds": ",".join(dict.fromkeys(agents)),
        "grades": _grade(student.get("grade")) if student else "",
    }
    if version == "1.1":
        row |= {"orgSourcedIds": ",".join(schools), "role": role_orgs[0][0]}
    else:
        row["primaryOrgSourcedId"] = schools[0]
        assert roles_file is not None
        first = True
        for role, orgs in role_orgs:
            for org in orgs:
                roles_file.write(
                    {
                        "sourcedId": f"{user_id}:{role}:{org}",
                        "dateLastModified": row["dateLastModified"],
                        "userSourcedId": user_id,
                        "roleType": "primary" if first else "secondary",
                        "role": role,
                        "orgSourcedId": org,
                    }
                )
                first = False
    users_file.write(row)
    return True


def _write_demographics(user: dict[str, Any], student: dict[str, Any], demographics: _CsvFile) -> None:
    birth_date = iso_date(field_text(student.get("dob")))
    sex = _SEX.get(field_text(student.get("gender")).upper(), "")
    race = RACE_COLUMNS.get(field_text(student.get("race")))
    hispanic = field_text(student.get("hispanic_ethnicity")).upper()
    if not (birth_date or sex or race or hispanic):
        return
    row = {
        "sourcedId": field_text(user.get("id")),
        "dateLastModified": field_text(user.get("last_modified")),
        "birthDate": birth_date,
        "sex": sex,
        "hispanicOrLatinoEthnicity": {"Y": "true", "N": "false"}.get(hispanic, ""),
    }
    if race:
        row |= dict.fromkeys(_RACES, "false") | {race: "true"}
    demographics.write(row)


def _contact_role(contact: dict[str, Any]) -> str:
    """A contact's OneRoster role, from their first student relationship."""
    for entry in contact.get("student_relationships") or []:
        if isinstance(entry, dict):
            return RELATIONSHIP_ROLES.get(field_text(entry.get("relationship")), "guardian")
    return "guardian"


def _contact_students(user: dict[str, Any]) -> list[str]:
    contact = field_object(field_object(user.get("roles")).get("contact"))
    relationships = contact.get("student_relationships")
    entries = relationships if isinstance(relationships, list) else []
    return list(
        dict.fromkeys(s for entry in entries if isinstance(entry, dict) and (s := field_text(entry.get("student"))))
    )


# ---------------------------------------------------------------------------------------------------
# Writing the bundle: one CSV file per collection, and the manifest.
# ---------------------------------------------------------------------------------------------------


class _CsvFile:
    """One collection's CSV file. ``write`` takes a row dict; unknown columns are an error."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.rows = 0
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(columns)

    def write(self, row: dict[str, str]) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"not columns of this file: {', '.join(sorted(unknown))}")
        full = {column: row.get(column, "") for column in self.columns} | {"status": "active"}
        self._csv.writerow([full[column] for column in self.columns])
        self.rows += 1

    def close(self) -> None:
        self._file.close()


class _BundleWriter:
    def __init__(self, out_dir: Path, version: str) -> None:
        self.out_dir = out_dir
        self.version = version
        self.counts: dict[str, int] = {}

    def columns(self, collection: str) -> tuple[str, ...]:
        return _USERS_1_2 if collection == "users" and self.version == "1.2" else COLUMNS[collection]

    def file(self, collection: str) -> _Opened:
        return _Opened(self, collection, _CsvFile(self.out_dir / f"{collection}.csv", self.columns(collection)))

    def finished(self, collection: str, out: _CsvFile) -> None:
        self.counts[collection] = out.rows

    def manifest(self) -> None:
        written = [c for c in COLUMNS if c in self.counts]
        rows = [("manifest.version", "1.0"), ("oneroster.version", self.version)]
        files = {c: "bulk" for c in written} | dict.fromkeys(_ABSENT[self.version], "absent")
        rows += [(f"file.{name}", mode) for name, mode in sorted(files.items(), key=lambda item: item[0].lower())]
        rows += [("source.systemName", "rostersync convert"), ("source.systemCode", "clever")]
        with (self.out_dir / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(("propertyName", "value"))
            out.writerows(rows)


class _Opened:
    """``with writer.file("users") as users: users.write(...)``: closed and counted at the end."""

    def __init__(self, writer: _BundleWriter, collection: str, out: _CsvFile) -> None:
        self.writer, self.collection, self.out = writer, collection, out

    def __enter__(self) -> _CsvFile:
        return self.out

    def __exit__(self, *exc: object) -> None:
        self.out.close()
        self.writer.finished(self.collection, self.out)


# ---------------------------------------------------------------------------------------------------
# Reading Clever lists; small helpers
# ---------------------------------------------------------------------------------------------------


def _list(clever_dir: Path, name: str) -> list[dict[str, Any]]:
    """The ``data`` objects of a Clever list response ([] when the file is missing)."""
    path = clever_dir / f"{name}.json"
    if not path.is_file():
        return []
    body = json.loads(path.read_text(encoding="utf-8"))
    items = body.get("data") if isinstance(body, dict) else None
    return [item["data"] for item in items or [] if isinstance(item, dict) and isinstance(item.get("data"), dict)]


def _edit_list(clever_dir: Path, name: str, edit: Any) -> None:
    path = clever_dir / f"{name}.json"
    if not path.is_file():
        return
    body = json.loads(path.read_text(encoding="utf-8"))
    for item in body.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("data"), dict):
            edit(item["data"])
    path.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")


def _grade(value: object) -> str:
    text = field_text(value)
    return GRADE_CODES.get(text, text)


def _day(value: object) -> str:
    """``2024-09-03T00:00:00.000Z`` → ``2024-09-03``."""
    return field_text(value)[:10]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rostersync_tools.local.convert",
        description="Write a Clever dataset folder as a OneRoster CSV bundle of the same district (same ids).",
    )
    parser.add_argument("clever_dir", type=Path, metavar="CLEVER_DIR")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--version", choices=VERSIONS, default="1.1", help="OneRoster version (default 1.1)")
    parser.add_argument("--zip", action="store_true", help="also write OUT_DIR/bundle.zip")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.clever_dir.is_dir():
        print(f"{args.clever_dir}: not a folder of Clever list responses", file=sys.stderr)
        return 2
    counts = clever_to_oneroster(args.clever_dir, args.out_dir, args.version)
    if args.zip:
        (args.out_dir / "bundle.zip").write_bytes(zip_bundle(args.out_dir))
    print(json.dumps(counts, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
