"""The OneRoster.Net CSVSample snapshot sequence, replayed as successive syncs of one district.

``tests/fixtures/reference/oneroster/v1p1-csv__rjeike-OneRoster.Net/OneRosterSync.Net/CSVSample`` holds a base
bundle (the folder itself, OneRoster 1.1, no manifest.csv: a bulk of the files it holds) and four full
snapshots after it. Against the snapshot before it, each step changes only this:

- Step1-UpdateCourse: courses.csv gains course 10009 "Science For Life1" (SL10), status ``inactive``;
- Step2-AddCourse: course 10009 becomes ``active``;
- Step3-DeleteCourse: course 10009 is gone (the snapshot is the base again, byte for byte);
- Step4-AddClass: classes.csv gains class 3221847 "Language Arts" (course 10006) whose school is
  ``Summit``, the district org, which is not a school.

No class names course 10009, so steps 1 to 3 leave the directory as it is; step 4's class cannot become
a classroom. The base itself has known data problems, which every snapshot repeats: classes 3221301
and 3221314, and users 14043, 14058 and 15474, name school ``Sch_000002``, which orgs.csv does not
hold (it has ``Sch_S00002``); every class names term ``267_FYT_2019``, not in academicSessions.csv
(``001_FYT_2019``…); class 3221347 is ``toBeDeleted``; enrollments.csv has three empty header cells.
So the directory each snapshot describes is: the two product schools, linked; classroom 3221342
"Reading" (course "Reading For Life1", no term); student 15514 Sally Wiggins; no enrollment (all three
are in classes that cannot be synced).

Each bundle is zipped and uploaded to ``uploads/<district>/night-N/bundle.zip`` (as ``rostersync demo``
does), which starts one sync through the template's S3 rule. After each sync the directory, the
report's counts, lines and error lines are compared with what the test derives from the bundle's own
CSV files (a small reading of OneRoster, independent of the provider): what a snapshot no longer holds,
or marks ``tobedeleted``, must be archived and never deleted; what it adds, created; what it changes,
updated; and an unchanged snapshot writes nothing to the directory.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.admin import connect_provider
from rostersync.config import runtime_config
from rostersync.directory.product import ProductDirectory, export_directory, import_product_directory
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync_tools.cli.inputs import bundle_bytes
from rostersync_tools.local.stack import EmbeddedStack, WriteRequestCounter

pytestmark = pytest.mark.e2e

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "reference"
    / "oneroster"
    / "v1p1-csv__rjeike-OneRoster.Net"
    / "OneRosterSync.Net"
    / "CSVSample"
)
STEPS = ("CSVSample", "Step1-UpdateCourse", "Step2-AddCourse", "Step3-DeleteCourse", "Step4-AddClass")
RUN_TIMEOUT_SECONDS = 600  # a bound, not a guess: generous on a loaded machine
COUNT_FIELDS = ("created", "updated", "linked", "archived", "restored", "unchanged", "skipped", "errors")
KINDS = ("schools", "classrooms", "students", "teachers", "staff", "guardians", "enrollments", "guardian_links")
# OneRoster user roles of this sample, as the product's role and the report's kind.
USER_ROLES = {"student": ("student", "students"), "teacher": ("teacher", "teachers")}
CEDS_GRADES = {"PK": "PreKindergarten", "KG": "Kindergarten"}


def folder(step: str) -> Path:
    return SAMPLE if step == STEPS[0] else SAMPLE / step


# -- what a bundle describes -------------------------------------------------------------------------


def read_rows(bundle: Path, name: str) -> list[dict[str, str]]:
    """A CSV file's rows, keyed by header name (empty header cells dropped), values stripped."""
    with (bundle / f"{name}.csv").open(encoding="utf-8-sig", newline="") as file:
        return [
            {key.strip(): (value or "").strip() for key, value in row.items() if key and key.strip()}
            for row in csv.DictReader(file)
        ]


def split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def deleted(row: dict[str, str]) -> bool:
    return row.get("status", "").lower() == "tobedeleted"


def grade_name(code: str) -> str:
    return str(int(code)) if code.isdigit() else CEDS_GRADES.get(code.upper(), code)


@dataclass
class Described:
    """The directory one bundle describes, keyed by OneRoster ids, and the problems it must report."""

    schools: dict[str, dict[str, Any]] = field(default_factory=dict)
    classrooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrollments: dict[str, dict[str, Any]] = field(default_factory=dict)
    kind_of: dict[str, str] = field(default_factory=dict)  # person id → report kind
    marked_deleted: dict[str, set[str]] = field(default_factory=lambda: {"classrooms": set(), "people": set()})
    errors: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, provider id, reason)
    skipped_enrollments: dict[str, str] = field(default_factory=dict)  # enrollment id → reason


def describe(bundle: Path, product_school_ids: dict[str, str]) -> Described:
    """What ``bundle`` says the district's directory is (``product_school_ids``: org sourcedId → product
    school id). Reads OneRoster 1.1 as the issue specifies it, only as far as this sample needs."""
    out = Described()
    orgs = {row["sourcedId"]: row for row in read_rows(bundle, "orgs")}
    terms = {row["sourcedId"]: row["title"] for row in read_rows(bundle, "academicSessions")}
    courses = {row["sourcedId"]: row["title"] for row in read_rows(bundle, "courses")}

    def not_a_school(org: str) -> str:
        if org not in orgs:
            return "is not in the roster's orgs"
        return "" if orgs[org]["type"].lower() == "school" else "is not a school"

    for org, row in orgs.items():
        if row["type"].lower() == "school" and not deleted(row):
            assert org in product_school_ids, f"the product names no school for org {org}"
            out.schools[org] = {"name": row["name"]}

    for row in read_rows(bundle, "classes"):
        class_id, school = row["sourcedId"], row["schoolSourcedId"]
        if deleted(row):
            out.marked_deleted["classrooms"].add(class_id)
            continue
        if problem := not_a_school(school):
            out.errors.add(("classrooms", class_id, f"class names school {school}, which {problem}"))
            continue
        course = row.get("courseSourcedId", "")
        if course and course not in courses:
            reason = f"class names course {course}, which is not in the roster; synced without a course"
            out.errors.add(("classrooms", class_id, reason))
        class_terms = split(row.get("termSourcedIds", ""))
        if missing := [term for term in class_terms if term not in terms]:
            reason = (
                f"class names term {', '.join(missing)}, which is not in the roster's academic sessions; "
                "synced without it"
            )
            out.errors.add(("classrooms", class_id, reason))
        out.classrooms[class_id] = {
            "name": row["title"],
            "course": courses.get(course, ""),
            "term": ", ".join(terms[term] for term in class_terms if term in terms),
            "grade": ", ".join(grade_name(code) for code in split(row.get("grades", ""))),
            "sis_id": row.get("classCode", ""),
            "school_id": product_school_ids[school],
        }

    for row in read_rows(bundle, "users"):
        user_id = row["sourcedId"]
        role, kind = USER_ROLES[row["role"].lower()]  # the sample has no other roles
        if deleted(row):
            out.marked_deleted["people"].add(user_id)
            continue
        user_orgs = split(row["orgSourcedIds"])
        schools = [product_school_ids[org] for org in user_orgs if not not_a_school(org)]
        if missing := [org for org in user_orgs if org not in orgs]:
            reason = f"user names org {', '.join(missing)}, which is not in the roster's orgs" + (
                "; synced with their other schools" if schools else "; they have no school in the roster"
            )
            out.errors.add((kind, user_id, reason))
        if not schools:
            continue
        out.kind_of[user_id] = kind
        out.people[user_id] = {
            "roles": [role],
            "given_name": row["givenName"],
            "middle_name": row.get("middleName", ""),
            "family_name": row["familyName"],
            "email": row.get("email", ""),
            "school_ids": schools,
        }

    for row in read_rows(bundle, "enrollments"):
        class_id, user_id = row["classSourcedId"], row["userSourcedId"]
        enrollment_id = f"{class_id}:{user_id}"
        assert not deleted(row), "the sample marks no enrollment tobedeleted: not modelled"
        if class_id not in out.classrooms:
            out.skipped_enrollments[enrollment_id] = "its section is not synced"
            continue
        # A synced class with a user who is not synced does not occur in the sample: not modelled.
        assert user_id in out.people, f"enrollment {enrollment_id}: its user is not synced (not modelled)"
        out.enrollments[enrollment_id] = {"classroom_id": class_id, "person_id": user_id, "role": row["role"]}
    return out


# -- the replay --------------------------------------------------------------------------------------


@dataclass
class Night:
    """One upload and the sync it started."""

    step: str
    key: str
    executions: list[str]
    execution: dict[str, Any]
    run: dict[str, Any]
    report: dict[str, Any]
    directory: dict[str, Any]
    directory_writes: int
    described: Described
    csv_files: dict[str, list[dict[str, str]]]

    def rows(self, name: str) -> list[dict[str, str]]:
        return self.csv_files.get(name, [])


@dataclass
class Replay:
    district_id: str
    product_school_ids: dict[str, str]  # org sourcedId → product school id
    nights: list[Night]

    def night(self, step: str) -> Night:
        return self.nights[STEPS.index(step)]

    def before(self, step: str) -> Night | None:
        index = STEPS.index(step)
        return self.nights[index - 1] if index else None


def _csv_files(bucket: str, report: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    s3 = aws.client("s3")
    files = {}
    for name, key in report.get("files", {}).items():
        if name.endswith(".csv"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
            files[name] = list(csv.DictReader(body.splitlines()))
    return files


@pytest.fixture(scope="module")
def replay(stack: EmbeddedStack) -> Replay:
    """A fresh district, its product schools named by OneRoster sourcedId, connected to ``oneroster-csv``;
    then base → Step1 → … → Step4 uploaded one after the other, each sync awaited before the next upload."""
    assert SAMPLE.is_dir(), f"the OneRoster.Net sample is not at {SAMPLE} (tests/fixtures/reference)"
    config = runtime_config()
    dynamodb, s3 = aws.client("dynamodb"), aws.client("s3")
    district_id = f"d-{uuid.uuid4().hex[:8]}"
    school_orgs = [row for row in read_rows(SAMPLE, "orgs") if row["type"].lower() == "school"]
    product_school_ids = {row["sourcedId"]: f"sch-{district_id}-{n}" for n, row in enumerate(school_orgs)}
    product = ProductDirectory.model_validate(
        {
            "district": {"id": district_id, "name": "Summit District", "plan": "premium"},
            "schools": [
                {
                    "id": product_school_ids[row["sourcedId"]],
                    "name": row["name"],
                    "provider_ids": {"oneroster": row["sourcedId"]},
                }
                for row in school_orgs
            ],
        }
    )
    directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
    state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
    import_product_directory(product, directory, state)
    connect_provider(state, aws.client("secretsmanager"), "oneroster-csv")
    state.mark_enabled("e2e")  # the admin enabled sync: the district's uploads sync for real

    nights = []
    for number, step in enumerate(STEPS, start=1):
        key = f"uploads/{district_id}/night-{number}/bundle.zip"
        with WriteRequestCounter() as counter:
            s3.put_object(Bucket=config.sync_bucket, Key=key, Body=bundle_bytes(folder(step)))
            executions = stack.publish_upload(key)
            assert len(executions) == 1, f"{step}: the upload started {len(executions)} syncs"
            execution = stack.wait(executions[0], timeout=RUN_TIMEOUT_SECONDS)
        run = state.get_run(execution["executionArn"].rsplit(":", 1)[1]) or {}
        assert run.get("report_key"), f"{step}: {execution['status']} without a report: {execution.get('cause', '')}"
        report = json.loads(s3.get_object(Bucket=config.sync_bucket, Key=run["report_key"])["Body"].read())
        nights.append(
            Night(
                step=step,
                key=key,
                executions=executions,
                execution=execution,
                run=run,
                report=report,
                directory=export_directory(directory, state),
                directory_writes=counter.requests[config.directory_table],
                described=describe(folder(step), product_school_ids),
                csv_files=_csv_files(config.sync_bucket, report),
            )
        )
    return Replay(district_id, product_school_ids, nights)


# -- comparing ---------------------------------------------------------------------------------------


def by_provider_id(directory: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The synced collections keyed by OneRoster id, references to classrooms and people by OneRoster id."""
    oneroster = {
        record["id"]: record["provider_ids"]["oneroster"]
        for collection in ("classrooms", "people")
        for record in directory[collection]
        if "oneroster" in record["provider_ids"]
    }
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for collection in ("schools", "classrooms", "people", "enrollments", "guardian_links"):
        rows = {}
        for record in directory[collection]:
            assert "oneroster" in record["provider_ids"], f"{collection} {record['id']} is not linked to OneRoster"
            row = dict(record)
            for reference in ("classroom_id", "person_id"):
                if reference in row:
                    row[reference] = oneroster.get(row[reference], f"unknown:{row[reference]}")
            rows[record["provider_ids"]["oneroster"]] = row
        out[collection] = rows
    return out


def expected_counts(replay: Replay, step: str) -> dict[str, dict[str, int]]:
    """The report's counts the step must give, from what this snapshot and the ones before it describe."""
    index = STEPS.index(step)
    described = replay.nights[index].described
    earlier = [n.described for n in replay.nights[:index]]
    kind_of = {pid: kind for d in [*earlier, described] for pid, kind in d.kind_of.items()}
    counts = {kind: dict.fromkeys(COUNT_FIELDS, 0) for kind in KINDS}
    for collection in ("schools", "classrooms", "people", "enrollments"):
        now: dict[str, Any] = getattr(described, collection)
        then: dict[str, Any] = getattr(earlier[-1], collection) if earlier else {}
        ever = {pid for d in earlier for pid in getattr(d, collection)}
        for pid, fields in now.items():
            if collection == "schools":
                # A product school is linked by the first sync that reads it, and updated after.
                action = "unchanged" if earlier and fields == then.get(pid) else ("updated" if earlier else "linked")
            elif pid in then:
                action = "unchanged" if fields == then[pid] else "updated"
            else:
                action = "restored" if pid in ever else "created"
            counts[kind_of.get(pid, collection)][action] += 1
        if collection != "schools":  # schools are never archived by sync
            for pid in then.keys() - now.keys():
                counts[kind_of.get(pid, collection)]["archived"] += 1
    counts["enrollments"]["skipped"] += len(described.skipped_enrollments)
    for kind, _provider_id, _reason in described.errors:
        counts[kind]["errors"] += 1
    return counts


# -- the tests ---------------------------------------------------------------------------------------


def test_the_snapshots_differ_only_as_the_module_says() -> None:
    """The reference data itself: each step against the snapshot before it (guards this file's premises)."""

    def snapshot(step: str) -> dict[str, dict[str, dict[str, str]]]:
        return {
            name: {row["sourcedId"]: row for row in read_rows(folder(step), name)}
            for name in ("orgs", "academicSessions", "courses", "classes", "users", "enrollments")
        }

    changes = {}
    for previous, step in zip(STEPS, STEPS[1:], strict=False):
        old, new = snapshot(previous), snapshot(step)
        changes[step] = {
            name: {
                "added": sorted(new[name].keys() - old[name].keys()),
                "removed": sorted(old[name].keys() - new[name].keys()),
                "changed": sorted(k for k in old[name].keys() & new[name].keys() if old[name][k] != new[name][k]),
            }
            for name in old
            if old[name] != new[name]
        }
    assert changes == {
        "Step1-UpdateCourse": {"courses": {"added": ["10009"], "removed": [], "changed": []}},
        "Step2-AddCourse": {"courses": {"added": [], "removed": [], "changed": ["10009"]}},
        "Step3-DeleteCourse": {"courses": {"added": [], "removed": ["10009"], "changed": []}},
        "Step4-AddClass": {"classes": {"added": ["3221847"], "removed": [], "changed": []}},
    }
    assert read_rows(folder("Step1-UpdateCourse"), "courses")[-1]["status"] == "inactive"
    assert read_rows(folder("Step2-AddCourse"), "courses")[-1]["status"] == "active"
    added_class = read_rows(folder("Step4-AddClass"), "classes")[-1]
    assert (added_class["schoolSourcedId"], added_class["courseSourcedId"]) == ("Summit", "10006")
    # No class names the course the first three steps add, change and remove.
    assert all(row["courseSourcedId"] != "10009" for step in STEPS for row in read_rows(folder(step), "classes"))


@pytest.mark.parametrize("step", STEPS)
def test_each_upload_starts_one_sync_that_succeeds_with_the_bundles_errors(replay: Replay, step: str) -> None:
    night = replay.night(step)
    assert len(night.executions) == 1
    assert night.execution["status"] == "SUCCEEDED", night.execution.get("cause")
    assert json.loads(night.execution["input"]).get("bundle_key") == night.key
    assert night.run["trigger"] == "upload"
    expected_status = "succeeded_with_errors" if night.described.errors else "succeeded"
    assert (night.run["status"], night.report["status"]) == (expected_status, expected_status)
    assert night.report["provider"] == "oneroster"
    assert night.report["threshold"] == {}


@pytest.mark.parametrize("step", STEPS)
def test_each_sync_gives_the_directory_its_files_describe(replay: Replay, step: str) -> None:
    night, before = replay.night(step), replay.before(step)
    described = night.described
    actual = by_provider_id(night.directory)

    # Schools: the product's two, each linked to its school org and named as orgs.csv names it
    assert {pid: (r["id"], r["name"], r["status"]) for pid, r in actual["schools"].items()} == {
        pid: (replay.product_school_ids[pid], fields["name"], "active") for pid, fields in described.schools.items()
    }

    # Classrooms, people and enrollments: exactly what the files describe, all active and sync-managed ...
    for collection in ("classrooms", "people", "enrollments"):
        wanted: dict[str, Any] = getattr(described, collection)
        active = {pid: r for pid, r in actual[collection].items() if r["status"] == "active"}
        got = {pid: {f: r.get(f) for f in wanted[pid]} if pid in wanted else r for pid, r in active.items()}
        assert got == wanted, collection
        assert all(r["managed_by_sync"] for r in actual[collection].values()), collection
        # ... and what an earlier snapshot held that this one does not, archived, never deleted
        earlier = {pid for n in replay.nights[: STEPS.index(step)] for pid in getattr(n.described, collection)}
        archived = {pid for pid, r in actual[collection].items() if r["status"] == "archived"}
        assert archived == earlier - wanted.keys(), collection
        assert set(actual[collection]) == wanted.keys() | archived, collection
    assert actual["guardian_links"] == {}

    # A class marked tobedeleted is never created; a class at an org that is not a school never appears
    assert not described.marked_deleted["classrooms"] & actual["classrooms"].keys()
    # Nothing the directory held before this sync is gone from it
    if before is not None:
        for collection in ("schools", "classrooms", "people", "enrollments"):
            ids_before = {r["id"] for r in before.directory[collection]}
            assert ids_before <= {r["id"] for r in night.directory[collection]}, collection


@pytest.mark.parametrize("step", STEPS)
def test_each_sync_counts_what_it_created_updated_and_archived(replay: Replay, step: str) -> None:
    night = replay.night(step)
    wanted = expected_counts(replay, step)
    counts = {kind: {f: night.report["counts"][kind][f] for f in COUNT_FIELDS} for kind in KINDS}
    assert counts == wanted
    # The report's lines name each record created, updated, restored or archived
    for kind in ("classrooms", "students", "enrollments"):
        lines = Counter(row["action"] for row in night.rows(f"{kind}.csv"))
        for action in ("created", "updated", "restored", "archived", "skipped"):
            assert lines[action] == wanted[kind][action], (kind, action)
    skipped = {r["provider_id"]: r["reason"] for r in night.rows("enrollments.csv") if r["action"] == "skipped"}
    assert skipped == night.described.skipped_enrollments
    # A snapshot that changes nothing in the directory writes nothing to it
    changes = sum(wanted[kind][f] for kind in KINDS for f in ("created", "updated", "linked", "restored", "archived"))
    if changes == 0:
        assert night.directory_writes == 0


@pytest.mark.parametrize("step", STEPS)
def test_each_sync_reports_the_bundles_data_problems_with_their_reasons(replay: Replay, step: str) -> None:
    night = replay.night(step)
    errors = {(e["kind"], e["provider_id"], e["reason"]) for e in night.report["errors"]}
    assert errors == night.described.errors
    assert night.report["errors_total"] == len(night.described.errors) == len(night.report["errors"])
    assert {(r["kind"], r["provider_id"], r["reason"]) for r in night.rows("errors.csv")} == errors


def test_the_known_problems_of_the_sample_are_the_ones_reported(replay: Replay) -> None:
    """The derived expectations, spelled out once: the sample's own data problems, and step 4's class."""
    missing_school = "which is not in the roster's orgs"
    base = {
        ("classrooms", "3221301", f"class names school Sch_000002, {missing_school}"),
        ("classrooms", "3221314", f"class names school Sch_000002, {missing_school}"),
        (
            "classrooms",
            "3221342",
            "class names term 267_FYT_2019, which is not in the roster's academic sessions; synced without it",
        ),
        *(
            ("students", user, f"user names org Sch_000002, {missing_school}; they have no school in the roster")
            for user in ("14043", "14058", "15474")
        ),
    }
    for step in STEPS[:4]:
        assert replay.night(step).described.errors == base, step
    step_4 = ("classrooms", "3221847", "class names school Summit, which is not a school")
    assert replay.night("Step4-AddClass").described.errors == base | {step_4}
    for step in STEPS:
        described = replay.night(step).described
        assert set(described.classrooms) == {"3221342"} and set(described.people) == {"15514"}
        assert described.enrollments == {}
        assert described.classrooms["3221342"]["course"] == "Reading For Life1"
