"""The broken exports real districts send, on the real state machine: a school missing, a file cut short,
every id changed, corrupted bytes in an id. Each time, nothing that is still in the district is archived
or duplicated, and the report says what was held and why."""

from __future__ import annotations

import csv
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
    first = d.sync(export=False)
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


# -- a file cut short by an unclosed quote (OneRoster CSV upload) ------------------------------------------


def _upload(stack: Any, district_id: str, name: str, bundle: Path) -> str:
    """Put a bundle in the district's upload folder without starting a run (the test starts it)."""
    from rostersync import aws
    from rostersync.config import runtime_config
    from rostersync_tools.cli.inputs import bundle_bytes

    key = f"uploads/{district_id}/{name}/bundle.zip"
    stack.router.enabled = False
    try:
        aws.client("s3").put_object(Bucket=runtime_config().sync_bucket, Key=key, Body=bundle_bytes(bundle))
    finally:
        stack.router.enabled = True
    return key


def test_an_unclosed_quote_in_users_csv_archives_nobody_and_leaks_no_swallowed_text(
    stack: Any, run_sync: Any, synthetic: Any, sftp_district: Any, tmp_path: Path
) -> None:
    from rostersync_tools.local.convert import clever_to_oneroster

    # Given an SFTP district whose first bundle synced
    district_id = sftp_district.id
    night_1 = tmp_path / "bundle-1"
    clever_to_oneroster(synthetic.path, night_1)
    _upload(stack, district_id, "night-1", night_1)
    first = run_sync(district_id, trigger="enabled", export=False)
    assert first.status == "succeeded"
    # When the next bundle's users.csv has a given name whose quote is never closed: the rest of the
    # file up to the next quote (other families' rows) becomes part of that name
    night_2 = tmp_path / "bundle-2"
    clever_to_oneroster(synthetic.path, night_2)
    users = (night_2 / "users.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    given = users[0].split(",").index("givenName")
    row = next(n for n, line in enumerate(users) if ",student," in line and n > 20)
    name = next(csv.reader([users[row]]))[given]
    users[row] = users[row].replace(f",{name},", f',"{name},', 1)
    (night_2 / "users.csv").write_text("".join(users), encoding="utf-8")
    _upload(stack, district_id, "night-2", night_2)

    run = run_sync(district_id, trigger="manual")

    # Then nobody is archived, the run says which file and line to fix
    assert run.execution_status == "SUCCEEDED"
    assert [r for r in run.directory["people"] if r["status"] == "archived"] == []
    assert all(counts["archived"] == 0 for counts in run.report["counts"].values())
    assert run.status == "succeeded_with_errors"
    (error,) = [e for e in run.csv_rows("errors.csv") if "unclosed quote" in e["reason"]]
    assert error["reason"].startswith(f"users.csv line {row + 1}:")
    assert f"close or remove the quote on line {row + 1} of users.csv" in error["reason"]
    # and no report file holds the swallowed text (the next rows' emails)
    email = users[0].split(",").index("email")
    swallowed = [next(csv.reader([line]))[email] for line in users[row + 1 : row + 4]]
    for name in ("students.csv", "guardians.csv", "teachers.csv", "errors.csv"):
        text = "".join(",".join(r.values()) for r in run.csv_rows(name))
        assert not any(email and email in text for email in swallowed), name
    assert not any(email and email in " ".join(run.report["notes"]) for email in swallowed)


# -- every id changed (a provider re-key) ----------------------------------------------------------------


def _rekey(dataset: Any) -> dict[str, str]:
    """Night 2 of a re-rostered district: every user and section has a new id; schools keep theirs."""
    old_ids = [u["id"] for u in dataset.users()] + [s["id"] for s in dataset.sections()]
    new_of = {old: "77cd" + old[4:] for old in old_ids}
    for name in ("users", "sections", "districts"):
        path = dataset.path / f"{name}.json"
        text = path.read_text(encoding="utf-8")
        for old, new in new_of.items():
            text = text.replace(f'"{old}"', f'"{new}"').replace(f"/{old}", f"/{new}")
        path.write_text(text, encoding="utf-8")
    return new_of


def test_a_provider_re_key_links_everyone_to_their_record_and_holds_what_it_cannot_tell(
    district: Any, synthetic: Any, tmp_path: Path
) -> None:
    # Given a district whose first night synced
    d = district(synthetic)
    first = d.sync()
    assert first.status == "succeeded"
    # When the next night every user and section id changed (the district re-rostered), and one
    # student's district ids (SIS id, student number, state id) were left out of the export
    night = synthetic.copy(tmp_path / "night-2")
    new_of = _rekey(night)
    unknown = night.users("student")[7]["id"]
    night.edit_users(lambda u: u["roles"]["student"].update(sis_id="", student_number="", state_id=""), {unknown})
    d.serve(night)

    run = d.sync()

    # Then nobody is created again and nobody archived: the directory holds each person once
    assert run.execution_status == "SUCCEEDED"
    for kind in ("students", "teachers", "staff", "guardians", "classrooms", "enrollments", "guardian_links"):
        assert run.counts(kind)["created"] == 0, (kind, run.counts(kind))
    assert archived(run) == []
    assert len(run.records("people")) == len(first.records("people"))
    assert len(run.records("classrooms")) == len(first.records("classrooms"))
    assert len(run.records("enrollments")) == len(first.records("enrollments"))
    # and each existing record now carries its new id
    people = run.by_clever_id("people")
    before = first.by_clever_id("people")
    relinked = [old for old in before if old != next(k for k, v in new_of.items() if v == unknown)]
    carried = [old for old in relinked if new_of[old] in people]
    assert len(carried) >= 0.9 * len(relinked)  # (a guardian merged into a teacher's account shows once)
    assert all(people[new_of[old]]["id"] == before[old]["id"] for old in carried)
    assert len(relinked) == len(before) - 1
    # The student who cannot be told apart is held for review: not created, their record kept
    assert run.status == "needs_review"
    (line,) = [r for r in run.csv_rows("students.csv") if r["provider_id"] == unknown]
    assert line["reason"].startswith("needs review: the provider changed its ids")
    old_unknown = next(k for k, v in new_of.items() if v == unknown)
    assert people[old_unknown]["status"] == "active"
    assert any("a re-key" in note for note in run.report["notes"])
    # and every person the night updated or linked has their line in the report: the partitions read their
    # before-images though none of them plans pairs on a re-key night
    changed = 0
    for kind, file in (("students", "students.csv"), ("teachers", "teachers.csv"), ("guardians", "guardians.csv")):
        rows = run.csv_rows(file)
        for action in ("updated", "linked", "restored"):
            assert sum(row["action"] == action for row in rows) == run.counts(kind).get(action, 0), (kind, action)
            changed += run.counts(kind).get(action, 0)
    assert changed >= len(carried) // 2, changed
