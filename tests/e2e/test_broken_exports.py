"""The broken exports real districts send, on the real state machine: a school missing, a file cut short,
every id changed, corrupted bytes in an id. Each time, nothing that is still in the district is archived
or duplicated, and the report says what was held and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rostersync_tools.local.synthetic import write_synthetic_clever_district

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def twelve_schools_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-school district (72 students, 6 a school): one school is 8 % of every kind, under the 10 % limit."""
    path = tmp_path_factory.mktemp("twelve") / "district"
    write_synthetic_clever_district(path, students=72, schools=12)
    return path


@pytest.fixture
def twelve_schools(twelve_schools_template: Path, synthetic: Any, tmp_path: Path) -> Any:
    """A private copy of the 12-school district (a ``Dataset``, as ``synthetic`` is)."""
    return type(synthetic)(twelve_schools_template).copy(tmp_path / "night-1-12")


def archived(outcome: Any) -> list[dict[str, Any]]:
    collections = [records for records in outcome.directory.values() if isinstance(records, list)]
    return [r for records in collections for r in records if r["status"] == "archived"]


def test_a_school_missing_from_the_export_archives_nothing_of_that_school(
    district: Any, twelve_schools: Any, tmp_path: Path
) -> None:
    # Given a 12-school district whose first night synced
    d = district(twelve_schools)
    first = d.sync()
    assert first.status == "succeeded", first.report and first.report["notes"]
    # When the next export lacks one school and everything in it (8 % of each kind: under the threshold)
    night = twelve_schools.copy(tmp_path / "night-2")
    missing = twelve_schools.schools()[3]
    gone = night.remove_school(missing["id"])
    d.serve(night)

    run = d.sync()

    # Then nothing at all is archived: not its students, nor its teacher, classrooms, guardians,
    # enrollments or guardian links
    assert run.execution_status == "SUCCEEDED"
    assert archived(run) == []
    assert all(counts["archived"] == 0 for counts in run.report["counts"].values())
    assert run.status == "threshold_exceeded"
    # and the report names the school and what it held back
    (note,) = [n for n in run.report["notes"] if "broken export" in n]
    assert missing["name"] in note
    held = {k: c["would_archive"] for k, c in run.report["counts"].items() if c["would_archive"]}
    assert held["students"] == 6 and held["teachers"] == 1
    assert {"classrooms", "guardians", "enrollments", "guardian_links"} <= set(held)
    assert f"{held['classrooms']:,} classroom" in note and f"{held['guardians']:,} guardian" in note
    would = {r["provider_id"] for r in run.csv_rows("students.csv") if r["action"] == "would_archive"}
    assert would and would <= gone["users"]
    assert len(gone["sections"]) == held["classrooms"]


def test_a_corrupted_id_is_an_error_line_never_synced_and_its_record_is_not_archived(
    district: Any, synthetic: Any, tmp_path: Path
) -> None:
    # Given a district whose first night synced
    d = district(synthetic)
    first = d.sync()
    assert first.status == "succeeded"
    # When the next export carries one student's id with a NUL byte appended (corrupted in transit)
    night = synthetic.copy(tmp_path / "night-2")
    victim = night.users("student")[5]["id"]
    night.edit_users(lambda u: u.update(id=u["id"] + "\x00"), {victim})
    d.serve(night)

    run = d.sync()

    # Then it is one error line naming the id escaped, nobody is created twice, and the real student
    # (and their enrollments and links) is not archived
    assert run.execution_status == "SUCCEEDED"
    assert run.status == "succeeded_with_errors"
    errors = [e for e in run.csv_rows("errors.csv") if "\\x00" in e["reason"]]
    assert len(errors) == 1 and "not synced" in errors[0]["reason"]
    assert "\x00" not in "".join(v for e in run.csv_rows("errors.csv") for v in e.values())
    assert run.counts("students")["created"] == 0
    assert archived(run) == []
    assert run.by_clever_id("people")[victim]["status"] == "active"
    assert len(run.records("people")) == len(first.records("people"))
