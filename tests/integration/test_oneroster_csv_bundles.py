"""OneRoster CSV bundles → canonical records: every reference bundle, and the messes real exports make.

The reference bundles live in ``tests/fixtures/reference/oneroster/`` (provenance there); each one
either maps (its records and record errors are counted) or is refused with a specific
``BadBundleError``. The messy cases are built in ``tmp_path`` so each shows one problem.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from rostersync.domain.records import (
    ClassroomRecord,
    DeletedRecord,
    EnrollmentRecord,
    GuardianLinkRecord,
    Kind,
    PersonRecord,
    RecordError,
    Role,
    SchoolRecord,
)
from rostersync.providers.base import FetchOutcome
from rostersync.providers.oneroster_csv import (
    BadBundleError,
    FilePosition,
    OneRosterCsvProvider,
    OneRosterFilesRead,
    check_bundle,
    file_entries,
    files_to_read,
)

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "oneroster"

CATALYST = "v1p1-v1p2-csv__catalyst-moodle-enrol_oneroster/tests/fixtures/csv_data"
ONEROSTER_NET = "v1p1-csv__rjeike-OneRoster.Net/OneRosterSync.Net/CSVSample"

# The OneRoster.Net sample: its classes and users name a school (Sch_000002) its orgs.csv lacks, and
# its terms (267_FYT_2019) are not among its academic sessions.
_ONEROSTER_NET = {
    "schools": 2,
    "classrooms": 1,
    "deleted classrooms": 1,
    "students": 1,
    "enrollments": 3,
    "errors": 6,
}
# Catalyst's 1.1 sets: their only org is a department, so no class has a school; 1.2 takes roles
# from roles.csv (a teacher who is also a guardian, a siteAdministrator).
_CATALYST_FULL = {
    "deleted classrooms": 1,
    "teachers": 2,
    "students": 3,
    "guardians": 1,
    "guardian_links": 1,
    "enrollments": 6,
    "errors": 1,
}
_CATALYST_MINIMAL = {"teachers": 2, "students": 3, "guardians": 1, "enrollments": 6, "errors": 2}
_CATALYST_1P2_DELTA = {"schools": 1, "classrooms": 1, "students": 1, "enrollments": 1}
_CATALYST_1P2_FULL = {
    "deleted classrooms": 1,
    "teachers": 2,
    "students": 3,
    "staff": 1,
    "guardian_links": 2,
    "enrollments": 6,
    "errors": 1,
}

# Bundle (relative to REFERENCE) → what it maps to (records per kind, "deleted <kind>", "errors"),
# or the BadBundleError message it is refused with; plus whether it is a delta.
EXPECTED: dict[str, tuple[dict[str, int] | str, bool]] = {
    "v1p1-csv__nicelion-oneroster-mocker/oneroster-example-csv": (
        "users.csv has no rows: the export is empty; check the SIS export and upload the bundle again",
        False,
    ),
    "v1p1-csv__nicelion-oneroster-mocker/outputs": (
        "the bundle has no manifest.csv, and classes.csv and enrollments.csv are missing",
        False,
    ),
    "v1p1-csv__oat-sa-oneroster-import/data/samples/OneRosterv1p1BaseCSV": (
        {"schools": 2, "classrooms": 3, "students": 2, "enrollments": 3},
        False,
    ),
    "v1p1-csv__snapwiz-OneRoster/oneroster-import-js/data/samples/OneRosterv1p1BaseCSV": (
        {"schools": 2, "classrooms": 3, "students": 7, "teachers": 3, "staff": 1, "enrollments": 19},
        False,
    ),
    ONEROSTER_NET: (_ONEROSTER_NET, False),
    f"{ONEROSTER_NET}/Step1-UpdateCourse": (_ONEROSTER_NET, False),
    f"{ONEROSTER_NET}/Step2-AddCourse": (_ONEROSTER_NET, False),
    f"{ONEROSTER_NET}/Step3-DeleteCourse": (_ONEROSTER_NET, False),
    # Step 4 adds a class whose school is the district org.
    f"{ONEROSTER_NET}/Step4-AddClass": ({**_ONEROSTER_NET, "errors": 7}, False),
    f"{CATALYST}/Test_full_data_set.zip": (_CATALYST_FULL, False),
    f"{CATALYST}/extracted/Test_full_data_set": (_CATALYST_FULL, False),
    f"{CATALYST}/Test_minimal_data_set.zip": (_CATALYST_MINIMAL, False),
    f"{CATALYST}/extracted/Test_minimal_data_set": (_CATALYST_MINIMAL, False),
    f"{CATALYST}/oneroster_test_data.zip": (_CATALYST_1P2_DELTA, True),
    f"{CATALYST}/extracted/oneroster_test_data": (_CATALYST_1P2_DELTA, True),
    f"{CATALYST}/v1p2_full_dataset.zip": (_CATALYST_1P2_FULL, False),
    f"{CATALYST}/extracted/v1p2_full_dataset": (_CATALYST_1P2_FULL, False),
}


def reference_bundles() -> list[str]:
    """Every bundle under the reference folder: folders with a manifest.csv or users.csv, and zips."""
    assert REFERENCE.is_dir(), f"the reference bundles are not at {REFERENCE}"
    folders = {path.parent for path in REFERENCE.rglob("*.csv") if path.name.lower() in ("manifest.csv", "users.csv")}
    return sorted(str(path.relative_to(REFERENCE)) for path in folders | set(REFERENCE.rglob("*.zip")))


def fetch(bundle: Path | bytes) -> tuple[list[Any], FetchOutcome]:
    """The bundle read whole, as one invocation reads it; every test also reads it a file at a time, in
    slices of two entries, as Fetch's Map items do, and gets the same records, errors and outcome."""
    outcome = FetchOutcome()
    try:
        items = list(OneRosterCsvProvider(bundle).fetch(outcome))
    except BadBundleError as exc:
        with pytest.raises(BadBundleError) as apart:
            check_bundle(bundle)
        assert str(apart.value) == str(exc)
        raise
    apart_outcome = FetchOutcome()
    assert list(read_apart(bundle, apart_outcome)) == items
    assert apart_outcome == outcome
    return items, outcome


def read_apart(bundle: Path | bytes, outcome: FetchOutcome, per_slice: int = 1) -> Any:
    """The bundle checked, each file read in slices of ``per_slice`` entries (each slice opening the bundle
    again and reading on from the position the slice before it left, its entries kept as JSON), then mapped."""
    layout = json.loads(json.dumps(check_bundle(bundle)))
    read: dict[str, list[dict[str, Any]]] = {}
    for collection in files_to_read(layout):
        entries: list[dict[str, Any]] = []
        position = FilePosition()
        for _ in range(10_000):  # a file that never ends would be a slice loop without end
            position = FilePosition.from_json(json.loads(json.dumps(position.to_json())))
            with file_entries(bundle, layout, collection, None, position) as stream:
                taken = list(itertools.islice(stream, per_slice))
            entries += [json.loads(json.dumps(entry)) for entry in taken]
            if len(taken) < per_slice:
                break
        else:
            raise AssertionError(f"{collection} was still not read to its end after 10,000 slices")
        read[collection] = entries
    return OneRosterFilesRead(layout, lambda name, _outcome: iter(read.get(name, []))).fetch(outcome)


def tally(items: list[Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for item in items:
        if isinstance(item, RecordError):
            counts["errors"] += 1
        elif isinstance(item, DeletedRecord):
            counts[f"deleted {item.kind.value}"] += 1
        else:
            counts[item.kind.value] += 1
    return dict(counts)


def only(items: list[Any], cls: type) -> list[Any]:
    return [item for item in items if isinstance(item, cls)]


# -- the reference bundles -------------------------------------------------------------------------


def test_every_reference_bundle_has_an_expected_outcome() -> None:
    assert reference_bundles() == sorted(EXPECTED)


@pytest.mark.parametrize("bundle", sorted(EXPECTED))
def test_reference_bundle(bundle: str) -> None:
    expected, delta = EXPECTED[bundle]

    if isinstance(expected, str):
        with pytest.raises(BadBundleError) as refused:
            fetch(REFERENCE / bundle)
        assert expected in str(refused.value)
        return
    items, outcome = fetch(REFERENCE / bundle)

    assert tally(items) == expected
    assert (outcome.delta, outcome.complete) == (delta, True)


def test_a_zip_as_bytes_reads_like_its_extracted_folder() -> None:
    zipped = (REFERENCE / CATALYST / "v1p2_full_dataset.zip").read_bytes()

    from_bytes, _ = fetch(zipped)
    from_folder, _ = fetch(REFERENCE / CATALYST / "extracted" / "v1p2_full_dataset")

    assert from_bytes == from_folder


def test_catalyst_1p2_roles_come_from_roles_csv() -> None:
    items, _ = fetch(REFERENCE / CATALYST / "v1p2_full_dataset.zip")

    people = {person.provider_id: person for person in only(items, PersonRecord)}
    assert people["usr-222-123456"].roles == [Role.TEACHER, Role.GUARDIAN]
    assert people["usr-222-1234561"].roles == [Role.STAFF]  # siteAdministrator
    # Students name their teacher-and-guardian as agent: the link is named from the student's side.
    assert sorted(link.provider_id for link in only(items, GuardianLinkRecord)) == [
        "usr-222-123456:usr-222-1234561232",
        "usr-222-123456:usr-222-66778899",
    ]


def test_oneroster_net_reports_the_school_its_orgs_lack() -> None:
    items, _ = fetch(REFERENCE / ONEROSTER_NET)

    reasons = {(e.kind, e.provider_id): e.reason for e in only(items, RecordError)}
    assert reasons[(Kind.CLASSROOMS, "3221301")] == "class names school Sch_000002, which is not in the roster's orgs"
    assert only(items, DeletedRecord) == [DeletedRecord(kind=Kind.CLASSROOMS, provider_id="3221347")]  # toBeDeleted


# -- messy bundles, one problem each ---------------------------------------------------------------

ORGS = (
    "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
    "d-1,active,,District,district,,\ns-1,active,,Summit High,school,0042,d-1\n"
)
CLASSES = (
    "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,"
    "termSourcedIds,subjects,subjectCodes,periods\n"
    'k-1,active,,Algebra I,"09,10",,ALG1,scheduled,,s-1,,Math,,"3,4"\n'
)
USERS = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,"
    "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n"
    'u-1,active,,TRUE,s-1,student,ada,"{studentNumber:700},{stateId:NY-9}",Ada,Lovelace,,SIS-7,ada@example.org,,,,09,pw\n'
    "u-2,active,,TRUE,s-1,teacher,tom,,Tom,Hardy,,,tom@example.org,,,,,pw\n"
    "g-1,active,,TRUE,s-1,parent,pat,,Pat,Lovelace,,,,555-0101,,u-1,,pw\n"
)
ENROLLMENTS = (
    "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
    "e-1,active,,k-1,s-1,u-1,student,false,,\ne-2,active,,k-1,s-1,u-2,teacher,true,,\n"
)
DEMOGRAPHICS = "sourcedId,status,dateLastModified,birthDate\nu-1,active,,3/4/2009\n"


def bundle_files(**changes: str | bytes | None) -> dict[str, str | bytes]:
    files: dict[str, str | bytes | None] = {
        "orgs.csv": ORGS,
        "classes.csv": CLASSES,
        "users.csv": USERS,
        "enrollments.csv": ENROLLMENTS,
        "demographics.csv": DEMOGRAPHICS,
    }
    files |= {name.replace("_csv", ".csv"): content for name, content in changes.items()}
    return {name: content for name, content in files.items() if content is not None}


def write_folder(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def zipped(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def refused(bundle: Path | bytes) -> str:
    with pytest.raises(BadBundleError) as error:
        fetch(bundle)
    return str(error.value)


def test_a_clean_bundle(tmp_path: Path) -> None:
    items, outcome = fetch(write_folder(tmp_path / "b", bundle_files()))

    assert tally(items) == {
        "schools": 1,
        "classrooms": 1,
        "students": 1,
        "teachers": 1,
        "guardians": 1,
        "guardian_links": 1,
        "enrollments": 2,
    }
    student = next(p for p in only(items, PersonRecord) if p.provider_id == "u-1")
    assert (student.student_number, student.state_id, student.birth_date) == ("700", "NY-9", "2009-03-04")
    assert only(items, ClassroomRecord)[0].period == "3, 4"
    assert not outcome.delta


def test_bom_crlf_header_case_and_order_extra_columns_and_mixed_case_status(tmp_path: Path) -> None:
    users = (
        "\ufeffROLE,GivenName,familyname,SOURCEDID,Status,orgSourcedIds,Favourite Colour,metadata.house,,\r\n"
        "student,Ada,Lovelace,u-1,Active,s-1,blue,Red,,\r\n"
        "teacher,Tom,Hardy,u-2,ACTIVE,s-1,,,,\r\n"
        "student,Old,Student,u-3,ToBeDeleted,s-1,,,,\r\n"
    )
    orgs = "\ufeffSourcedId,Name,Type\r\ns-1,Summit High,School\r\n"

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users, orgs_csv=orgs)))

    assert [s.provider_id for s in only(items, SchoolRecord)] == ["s-1"]
    assert sorted((p.provider_id, p.given_name, p.family_name) for p in only(items, PersonRecord)) == [
        ("u-1", "Ada", "Lovelace"),
        ("u-2", "Tom", "Hardy"),
    ]
    assert only(items, DeletedRecord) == [DeletedRecord(kind=Kind.STUDENTS, provider_id="u-3")]
    assert only(items, RecordError) == []


def test_blank_optional_fields_and_us_dates(tmp_path: Path) -> None:
    users = (
        "sourcedId,status,dateLastModified,orgSourcedIds,role,givenName,familyName,email,grades\n"
        "u-1,,12/31/2023,s-1,student,Ada,Lovelace,,\n"
    )
    demographics = "sourcedId,birthDate\nu-1,12/1/2009\n"

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users, demographics_csv=demographics)))

    student = only(items, PersonRecord)[0]
    assert (student.email, student.grade, student.birth_date) == ("", "", "2009-12-01")


def test_a_misspelt_required_header_is_named_with_the_closest_column(tmp_path: Path) -> None:
    users = USERS.replace("sourcedId,status", "sourceId,status", 1)

    message = refused(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    assert message == 'users.csv: required column "sourcedId" is missing (found "sourceId": misspelt?)'


def test_a_misspelt_header_of_a_column_rostersync_reads(tmp_path: Path) -> None:
    users = USERS.replace(",email,", ",emial,", 1)

    message = refused(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    assert message == 'users.csv: column "emial" is not a OneRoster column (misspelt "email"?)'


def test_a_misspelt_header_of_a_column_rostersync_does_not_read_is_tolerated(tmp_path: Path) -> None:
    users = USERS.replace(",password", ",pasword", 1)

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    assert len(only(items, PersonRecord)) == 3


def test_every_bundle_problem_is_named_at_once(tmp_path: Path) -> None:
    classes = CLASSES.replace("schoolSourcedId", "school", 1)

    message = refused(write_folder(tmp_path / "b", bundle_files(classes_csv=classes, enrollments_csv=None)))

    assert "the bundle has no manifest.csv, and enrollments.csv is missing" in message
    assert 'classes.csv: required column "schoolSourcedId" is missing' in message


def test_missing_required_file_unless_the_manifest_says_absent(tmp_path: Path) -> None:
    manifest = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.orgs,bulk\nfile.users,bulk\n"
    absent = manifest + "file.classes,absent\nfile.enrollments,absent\n"
    files = bundle_files(classes_csv=None, enrollments_csv=None)

    not_said = refused(write_folder(tmp_path / "a", files | {"manifest.csv": manifest}))
    items, _ = fetch(write_folder(tmp_path / "b", files | {"manifest.csv": absent}))

    assert "the bundle has no classes.csv, and manifest.csv does not say it is absent" in not_said
    assert tally(items)["students"] == 1


def test_manifest_naming_a_file_the_bundle_lacks(tmp_path: Path) -> None:
    manifest = "propertyName,value\nfile.courses,bulk\n"

    message = refused(write_folder(tmp_path / "b", bundle_files() | {"manifest.csv": manifest}))

    assert message == "manifest.csv lists courses.csv as bulk, but the bundle has no courses.csv"


def test_a_delta_manifest_makes_a_delta_fetch(tmp_path: Path) -> None:
    manifest = (
        '"propertyName","value"\r\n"manifest.version","1.0"\r\n"oneroster.version","1.1"\r\n'
        '"file.users","delta"\r\n"file.enrollments","delta"\r\n"file.orgs","absent"\r\n"file.classes","absent"\r\n'
    )
    users = USERS.splitlines()[0] + "\nu-9,tobedeleted,2024-09-01,,,student,,,,,,,,,,,,\n"
    enrollments = ENROLLMENTS.splitlines()[0] + "\ne-9,tobedeleted,,k-1,s-1,u-9,student,,,\n"
    files = {"manifest.csv": manifest, "users.csv": users, "enrollments.csv": enrollments}

    items, outcome = fetch(zipped(files))

    assert outcome.delta
    assert only(items, DeletedRecord) == [
        DeletedRecord(kind=Kind.STUDENTS, provider_id="u-9"),
        DeletedRecord(kind=Kind.ENROLLMENTS, provider_id="k-1:u-9"),
    ]


def test_unsupported_manifest_values(tmp_path: Path) -> None:
    manifest = "propertyName,value\noneroster.version,2.0\nfile.users,full\n"

    message = refused(write_folder(tmp_path / "b", bundle_files() | {"manifest.csv": manifest}))

    assert 'manifest.csv: file.users is "full"; expected bulk, delta or absent' in message
    assert "OneRoster version 2.0 is not supported" in message


def test_oneroster_1p2_bundle_takes_roles_from_roles_csv(tmp_path: Path) -> None:
    manifest = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\n"
    users = (
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,"
        "email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,"
        "preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\n"
        "u-1,active,,TRUE,ada,,Ada,Lovelace,,,,,,g-1,09,,,,,,s-1,\n"
        "g-1,active,,TRUE,pat,,Pat,Lovelace,,,,,,,,,,,,,,\n"
    )
    roles = (
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,"
        "userProfileSourcedId\nr-1,active,,u-1,primary,student,,,s-1,\nr-2,active,,g-1,primary,parent,,,d-1,\n"
    )
    files = bundle_files(users_csv=users) | {"manifest.csv": manifest, "roles.csv": roles}

    items, _ = fetch(zipped(files))

    people = {p.provider_id: p for p in only(items, PersonRecord)}
    assert (people["u-1"].roles, people["u-1"].schools) == ([Role.STUDENT], ["s-1"])
    assert people["g-1"].roles == [Role.GUARDIAN]
    assert [(k.provider_id, k.relationship) for k in only(items, GuardianLinkRecord)] == [("g-1:u-1", "Parent")]


def test_oneroster_1p2_users_without_roles_csv_need_a_role_column(tmp_path: Path) -> None:
    manifest = "propertyName,value\noneroster.version,1.2\n"
    users = "sourcedId,givenName,familyName,primaryOrgSourcedId\nu-1,Ada,Lovelace,s-1\n"

    message = refused(write_folder(tmp_path / "b", bundle_files(users_csv=users) | {"manifest.csv": manifest}))

    assert 'users.csv: required column "role" is missing' in message


def test_oneroster_1p0_column_names_are_read(tmp_path: Path) -> None:
    classes = "sourcedId,title,grade,schoolSourcedId\nk-1,Algebra I,9,s-1\n"
    users = "sourcedId,orgSourcedIds,role,userId,givenName,familyName,agents\nu-1,s-1,student,abc,Ada,L,\n"
    demographics = "userSourcedId,birthdate\nu-1,2009-03-04\n"

    items, _ = fetch(
        write_folder(tmp_path / "b", bundle_files(classes_csv=classes, users_csv=users, demographics_csv=demographics))
    )

    assert only(items, ClassroomRecord)[0].grade == "9"
    assert only(items, PersonRecord)[0].birth_date == "2009-03-04"


def test_a_row_with_more_values_than_columns_is_reported_and_skipped(tmp_path: Path) -> None:
    users = USERS + "u-3,active,,TRUE,s-1,student,x,,Eve,Smith, Jr.,,,,,,,,,pw\n"

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    problems = only(items, RecordError)
    assert [(e.kind, e.provider_id) for e in problems] == [(Kind.STUDENTS, "u-3")]
    assert problems[0].reason.startswith("users.csv line 5 has 20 values but the header has 18 columns")
    assert "u-3" not in {p.provider_id for p in only(items, PersonRecord)}


def test_references_to_ids_that_do_not_exist_are_per_record_errors(tmp_path: Path) -> None:
    enrollments = ENROLLMENTS + "e-3,active,,k-404,s-1,u-1,student,,,\ne-4,active,,k-1,s-1,u-404,student,,,\n"

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(enrollments_csv=enrollments)))

    assert {e.provider_id: e.reason for e in only(items, RecordError)} == {
        "k-404:u-1": "enrollment names class k-404, which is not in the roster",
        "k-1:u-404": "enrollment names user u-404, who is not in the roster",
    }
    assert len(only(items, EnrollmentRecord)) == 2


def test_a_row_with_a_bad_field_is_reported_with_the_district_id_it_carries(tmp_path: Path) -> None:
    # Given a users.csv row whose role is not one rostersync syncs, and a classes.csv row naming an unknown
    # school; both carry the district's own id (identifier, classCode)
    users = USERS + "u-3,active,,TRUE,s-1,janitor,jan,,Jan,Itor,,SIS-8,,,,,,pw\n"
    classes = CLASSES + "k-2,active,,Band,,,BAND-1,scheduled,,s-404,,Music,,\n"

    # When the bundle is read
    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users, classes_csv=classes)))

    # Then each error names its row by that id too (errors.csv's sis_id)
    assert {e.provider_id: e.sis_id for e in only(items, RecordError)} == {"u-3": "SIS-8", "k-2": "BAND-1"}


def test_a_row_with_more_values_than_columns_names_no_district_id(tmp_path: Path) -> None:
    # Given a row an unquoted comma shifted: its identifier column holds another field's value
    users = USERS + "u-3,active,,TRUE,s-1,student,x,,Eve,Smith, Jr.,,SIS-9,,,,,,pw\n"

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    # Then it is reported by its sourcedId alone: a shifted value would name the wrong record
    assert [(e.provider_id, e.sis_id) for e in only(items, RecordError)] == [("u-3", "")]


def test_text_that_is_not_utf8_is_reported_once(tmp_path: Path) -> None:
    users = USERS.encode("utf-8").replace(b"Ada,", b"Ad\xe9,", 1)  # Latin-1 é

    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    problems = only(items, RecordError)
    assert [e.reason for e in problems] == [
        "users.csv: 1 rows are not valid UTF-8; their unreadable characters were replaced (export the bundle as UTF-8)"
    ]
    assert len(only(items, PersonRecord)) == 3


def test_a_zip_made_of_a_folder_is_read(tmp_path: Path) -> None:
    files = {f"export/{name}": content for name, content in bundle_files().items()}
    files["__MACOSX/export/._users.csv"] = b"\x00\x05junk"

    items, _ = fetch(zipped(files))

    assert tally(items)["enrollments"] == 2


def test_not_a_zip() -> None:
    assert "not a readable zip file" in refused(b"PK\x03\x04 this is not really a zip")


def test_a_zip_whose_header_rows_are_damaged_is_refused() -> None:
    data = bytearray(zipped(bundle_files()))
    start = data.index(b"orgs.csv") + len("orgs.csv")  # orgs.csv's compressed bytes follow its name
    data[start : start + 40] = b"\xff" * 40

    assert "orgs.csv could not be read from the zip" in refused(bytes(data))


def test_a_corrupt_zip_member_leaves_the_fetch_incomplete() -> None:
    rows = "".join(f"u-{n},active,,TRUE,s-1,student,x{n},,Kid,{n},,,,,,,,\n" for n in range(5000))
    data = bytearray(zipped(bundle_files(users_csv=USERS.splitlines()[0] + "\n" + rows)))
    start = data.index(b"users.csv") + 4000  # inside users.csv's compressed bytes
    data[start : start + 64] = bytes(64)

    outcome = FetchOutcome()
    items = list(OneRosterCsvProvider(bytes(data)).fetch(outcome))

    assert not outcome.complete
    assert any("users.csv could not be read past line" in e.reason for e in only(items, RecordError))


# -- a file that cannot be read to its end (issue 9, finding 2) ------------------------------------------


def _users_with_families(n: int) -> str:
    rows = [
        f"u-{k},active,,TRUE,s-1,student,kid{k},,Kid{k},Family{k},,,kid{k}@example.org,,555-01{k:02},,09,pw\n"
        for k in range(10, 10 + n)
    ]
    return USERS + "".join(rows)


def test_an_unclosed_quote_that_swallows_rows_makes_users_incomplete_and_leaks_nothing(tmp_path: Path) -> None:
    # Given users.csv in which one student's given name opens a quote that is never closed
    users = _users_with_families(6).replace(",Kid11,", ',"Kid11,', 1)

    items, outcome = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    # Then the row is not synced, none of the swallowed rows' text reaches a record or an error...
    people = {p.provider_id: p for p in only(items, PersonRecord)}
    assert "u-11" not in people
    assert all(len(p.given_name) < 40 for p in people.values())
    (error,) = [e for e in only(items, RecordError) if "unclosed quote" in e.reason]
    assert "@example.org" not in error.reason and "Family12" not in error.reason
    # ...and the error names the file, the line and the fix, and holds back archiving of people
    assert error.reason.startswith("users.csv line 6:")
    assert "close or remove the quote on line 6 of users.csv" in error.reason
    assert error.provider_id == "u-11"
    assert {"people", "enrollments", "guardian_links"} <= set(error.holds_archive)


def test_a_quoted_address_over_two_lines_is_not_taken_for_swallowed_rows(tmp_path: Path) -> None:
    users = USERS.replace(",Ada,", ',"Ada\nMarie",', 1)
    items, _ = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))
    assert not [e for e in only(items, RecordError) if "unclosed quote" in e.reason]
    assert next(p for p in only(items, PersonRecord) if p.provider_id == "u-1").given_name == "Ada\nMarie"


def test_a_value_past_the_csv_field_limit_is_named_not_an_error_class(tmp_path: Path) -> None:
    users = USERS.replace(",Ada,", ',"' + "A" * 200_000 + '",', 1)
    items, outcome = fetch(write_folder(tmp_path / "b", bundle_files(users_csv=users)))
    problems = [e.reason for e in only(items, RecordError)]
    assert not outcome.complete or any("characters" in p for p in problems)
    assert all("(Error)" not in p for p in problems + outcome.problems)
    assert any("longer than" in p or "200,000 characters" in p for p in problems + outcome.problems)


# -- messages an admin can act on (issue 9, finding 8) ---------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_as_utf16_not_as_missing_columns(tmp_path: Path, encoding: str) -> None:
    users = USERS.encode(encoding)  # "utf-16" writes a BOM; -le/-be do not

    message = refused(write_folder(tmp_path / "b", bundle_files(users_csv=users)))

    assert "users.csv is UTF-16 text, not UTF-8: export it again as CSV UTF-8" in message
    assert "missing" not in message


def test_upload_keys_are_bundles_in_any_case() -> None:
    from rostersync.contracts import is_bundle_key

    assert is_bundle_key("uploads/d-1/2026-11-30/Bundle.ZIP")
    assert is_bundle_key("uploads/d-1/export/MANIFEST.CSV")
    assert is_bundle_key("uploads/d-1/export/bundle.zip")
    assert not is_bundle_key("uploads/d-1/export/users.csv")
    assert not is_bundle_key("uploads/d-1/export/my-manifest.csv")
    assert not is_bundle_key("runs/d-1/bundle.zip")


def test_the_latest_upload_is_found_whatever_the_case_of_its_name() -> None:
    from datetime import UTC, datetime

    from rostersync.storage import latest_upload_key

    class Pages:
        def paginate(self, **_kwargs: object) -> list[dict[str, object]]:
            t = datetime(2026, 11, 30, tzinfo=UTC)
            return [
                {
                    "Contents": [
                        {"Key": "uploads/d-1/a/notes.txt", "LastModified": t},
                        {"Key": "uploads/d-1/b/Bundle.ZIP", "LastModified": t},
                    ]
                }
            ]

    class S3:
        def get_paginator(self, _name: str) -> Pages:
            return Pages()

    assert latest_upload_key(S3(), "bucket", "d-1") == "uploads/d-1/b/Bundle.ZIP"


# -- hostile sizes are bounded (issue 9, finding 6) -------------------------------------------------------
# Limits are settings with safe defaults; a bundle, a file, a record or an id over its limit stops early
# with a clear error, never a nightly failure.

from rostersync.domain.ids import shown_id  # noqa: E402
from rostersync.domain.records import limit_error  # noqa: E402
from rostersync.providers.oneroster_csv import CsvLimits  # noqa: E402
from rostersync.reports.model import ReportError  # noqa: E402
from rostersync.reports.writer import CsvReportWriter  # noqa: E402
from rostersync.settings import LimitSettings, SyncSettings  # noqa: E402


def fetch_with(bundle: Any, limits: Any = None) -> tuple[list[Any], FetchOutcome]:
    outcome = FetchOutcome()
    return list(OneRosterCsvProvider(bundle, limits).fetch(outcome)), outcome


def test_the_limits_are_settings_with_safe_defaults() -> None:
    limits = SyncSettings().limits
    assert limits.max_id_bytes <= 480  # an enrollment id (two ids) stays under DynamoDB's 1,024-byte sort key
    assert limits.max_record_bytes <= 350_000  # under DynamoDB's 400 KB item, with margin
    assert limits.max_error_lines == 10_000
    assert limits.max_compression_ratio == 200 and limits.max_bundle_bytes == 8 << 30
    with pytest.raises(ValueError):
        LimitSettings(max_record_bytes=450_000)


def test_a_zip_bomb_is_refused_before_it_is_read() -> None:
    # Given a bundle whose users.csv is 8 MB of the same row, compressed to a few KB
    row = "u-9,active,,TRUE,s-1,student,x,,Eve,Smith,,,,,,,,\n"
    files = bundle_files(users_csv=USERS + row * (8_000_000 // len(row)))

    with pytest.raises(BadBundleError) as error:
        fetch_with(zipped(files))

    assert "users.csv expands" in str(error.value) and "zip bomb" in str(error.value)
    assert "limits.max_compression_ratio" in str(error.value)


def test_a_bundle_over_its_size_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadBundleError, match="limits.max_bundle_bytes"):
        fetch_with(write_folder(tmp_path / "b", bundle_files()), CsvLimits(max_bundle_bytes=500))


def test_a_file_over_its_row_limit_is_not_read_further_and_archives_nothing(tmp_path: Path) -> None:
    items, outcome = fetch_with(write_folder(tmp_path / "b", bundle_files()), CsvLimits(max_rows_per_file=2))
    assert not outcome.complete
    assert any("more than 2 rows" in p and "limits.max_rows_per_file" in p for p in outcome.problems)


def test_a_ten_kb_id_and_a_450_kb_person_are_error_lines_not_failures() -> None:
    limits = LimitSettings()
    long_id = PersonRecord(provider="clever", provider_id="x" * 10_240, roles=[Role.STUDENT], sis_id="S-1")
    huge = PersonRecord(
        provider="clever", provider_id="p-1", roles=[Role.STUDENT], title="t" * 450_000, student_number="N-1"
    )
    swollen = PersonRecord(provider="clever", provider_id="p-3", roles=[Role.STUDENT], sis_id="9\x00" * 200_000)
    fine = PersonRecord(provider="clever", provider_id="p-2", roles=[Role.STUDENT], given_name="Ada")

    id_error = limit_error(long_id, limits.max_id_bytes, limits.max_record_bytes)
    size_error = limit_error(huge, limits.max_id_bytes, limits.max_record_bytes)
    swollen_error = limit_error(swollen, limits.max_id_bytes, limits.max_record_bytes)

    assert isinstance(id_error, RecordError) and id_error.provider_id == "" and id_error.holds_archive
    assert "10,240 bytes long" in id_error.reason and len(id_error.reason) < 400
    assert isinstance(size_error, RecordError) and size_error.provider_id == "p-1"
    assert "limits.max_record_bytes" in size_error.reason and len(size_error.reason) < 400
    # each names its record by the district's id; one that is itself broken is escaped and cut, as ids are
    assert (id_error.sis_id, size_error.sis_id) == ("S-1", "N-1")
    assert isinstance(swollen_error, RecordError) and swollen_error.sis_id == shown_id("9\x00" * 200_000)
    assert len(swollen_error.sis_id) <= 41 and "\x00" not in swollen_error.sis_id
    assert limit_error(fine, limits.max_id_bytes, limits.max_record_bytes) is None


def test_errors_csv_keeps_a_bounded_number_of_lines_and_the_exact_count() -> None:
    # Given 300,000 bad rows' worth of errors (here 2,500 against a limit of 1,000)
    with CsvReportWriter(max_error_lines=1_000) as writer:
        for n in range(2_500):
            writer.add_error(ReportError(kind=Kind.STUDENTS, provider_id=f"u-{n}", reason="bad"))
        body = writer.finish()["errors.csv"].read().decode("utf-8-sig")

    rows = body.splitlines()
    assert len(rows) == 1 + 1_000 + 1  # header, the kept lines, the line saying how many more
    assert "1,500 more errors (2,500 in all" in rows[-1]
    assert writer.errors_total == 2_500


def test_an_over_long_value_is_a_row_error_naming_the_limit(tmp_path: Path) -> None:
    users = USERS.replace(",Ada,", ',"' + "A" * 9_000 + '",', 1)
    items, _ = fetch_with(write_folder(tmp_path / "b", bundle_files(users_csv=users)))
    (error,) = [i for i in items if isinstance(i, RecordError) and "characters" in i.reason]
    assert "9,000 characters (the limit is 8,192)" in error.reason and "AAAA" not in error.reason
