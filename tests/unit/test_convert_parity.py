"""One district, two providers: a synthetic Clever district and its OneRoster bundle map to the same records.

The Clever dataset goes through the Clever mapping functions, the bundle that
``rostersync_tools.local.convert`` writes of it through ``OneRosterCsvProvider``; the canonical records
(schools, classrooms, people, enrollments, guardian links) must be equal field by field, the
``provider`` field aside. What OneRoster cannot say is first dropped from the Clever dataset
(``drop_inexpressible``), and a separate test pins down that nothing else is lost.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from rostersync.domain.records import DeletedRecord, RecordError
from rostersync.providers import clever
from rostersync.providers.base import FetchOutcome
from rostersync.providers.oneroster_csv import OneRosterCsvProvider
from rostersync_tools.local.convert import clever_to_oneroster, drop_inexpressible, main
from rostersync_tools.local.synthetic import write_synthetic_clever_district

# Its module-scoped fixture is built once: the module stays on one test worker.

Key = tuple[str, str]  # (record_type, provider_id)

# What OneRoster 1.1 cannot carry of the synthetic district (see the convert module's docstring).
LOSSY_FIELDS = {
    ("person", "title"),
    ("person", "phone_type"),
    ("guardian_link", "relationship"),
    ("guardian_link", "contact_type"),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "clever"
    write_synthetic_clever_district(path, students=80)
    return path


@pytest.fixture(scope="module")
def synthetic_three_schools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic3") / "clever"
    write_synthetic_clever_district(path, students=80, schools=3)
    return path


def expressible_copy(source: Path, dest: Path, version: str = "1.1") -> Path:
    shutil.copytree(source, dest)
    drop_inexpressible(dest, version)
    return dest


# -- the two mappings --------------------------------------------------------------------------------


def _items(dataset: Path, name: str) -> list[Any]:
    return json.loads((dataset / f"{name}.json").read_text(encoding="utf-8"))["data"]


def clever_items(dataset: Path) -> list[Any]:
    """The Clever dataset through the Clever mapping, as CleverProvider.fetch calls it."""
    courses = clever.names_by_id(_items(dataset, "courses"))
    terms = clever.names_by_id(_items(dataset, "terms"))
    return [
        *clever.map_schools(_items(dataset, "schools")),
        *clever.map_sections(_items(dataset, "sections"), courses=courses, terms=terms),
        *clever.map_users(_items(dataset, "users")),
    ]


def oneroster_items(bundle: Path) -> tuple[list[Any], FetchOutcome]:
    outcome = FetchOutcome()
    return list(OneRosterCsvProvider(bundle).fetch(outcome)), outcome


def canonical(items: Iterable[Any]) -> dict[Key, dict[str, Any]]:
    """Records by (type, provider id), every field but ``provider``; errors and deletions left out."""
    records: dict[Key, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, RecordError | DeletedRecord):
            continue
        key = (item.record_type, item.provider_id)
        assert key not in records, f"{key} mapped twice"
        records[key] = item.model_dump(mode="json", exclude={"provider"})
    return records


def differences(left: dict[Key, dict[str, Any]], right: dict[Key, dict[str, Any]]) -> list[str]:
    """Readable differences: records on one side only, then fields that differ."""
    lines = [f"only from Clever: {key}" for key in sorted(left.keys() - right.keys())]
    lines += [f"only from OneRoster: {key}" for key in sorted(right.keys() - left.keys())]
    for key in sorted(left.keys() & right.keys()):
        for name in sorted(left[key].keys() | right[key].keys()):
            if left[key].get(name) != right[key].get(name):
                lines.append(f"{key} {name}: Clever {left[key].get(name)!r} != OneRoster {right[key].get(name)!r}")
    return lines


def differing_fields(left: dict[Key, dict[str, Any]], right: dict[Key, dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (key[0], name)
        for key in left.keys() & right.keys()
        for name in left[key].keys() | right[key].keys()
        if left[key].get(name) != right[key].get(name)
    }


def assert_same_records(from_clever: dict[Key, dict[str, Any]], from_oneroster: dict[Key, dict[str, Any]]) -> None:
    diff = differences(from_clever, from_oneroster)
    shown = "\n  ".join(diff[:15])
    assert not diff, f"{len(diff)} differences between the two mappings; the first:\n  {shown}"


def kinds(records: dict[Key, dict[str, Any]]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for record_type, _ in records:
        counted[record_type] = counted.get(record_type, 0) + 1
    return counted


# -- parity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("district", ["synthetic", "synthetic_three_schools"])
def test_clever_dataset_and_its_bundle_map_to_the_same_records(
    district: str, version: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Given a synthetic Clever district, less what OneRoster cannot say, and its OneRoster bundle
    dataset = expressible_copy(request.getfixturevalue(district), tmp_path / "clever", version)
    clever_to_oneroster(dataset, tmp_path / "bundle", version)

    # When each is mapped by its own provider's mapping
    from_clever_items = clever_items(dataset)
    from_oneroster_items, outcome = oneroster_items(tmp_path / "bundle")

    # Then neither reports a problem, and the canonical records are the same, field by field
    assert [e for e in from_clever_items if isinstance(e, RecordError)] == []
    assert [e for e in from_oneroster_items if isinstance(e, RecordError | DeletedRecord)] == []
    assert (outcome.complete, outcome.delta) == (True, False)
    from_clever, from_oneroster = canonical(from_clever_items), canonical(from_oneroster_items)
    assert_same_records(from_clever, from_oneroster)
    # and every kind of record is there to compare
    assert set(kinds(from_clever)) == {"school", "classroom", "person", "enrollment", "guardian_link"}


def test_without_dropping_anything_only_the_documented_fields_differ(synthetic: Path, tmp_path: Path) -> None:
    # Given the synthetic district as generated (titles, Home phones, Grandparents, Emergency contacts)
    clever_to_oneroster(synthetic, tmp_path / "bundle")

    from_clever = canonical(clever_items(synthetic))
    from_oneroster = canonical(oneroster_items(tmp_path / "bundle")[0])

    # Then the same records come out, and they differ only where OneRoster 1.1 has no field for it
    assert from_clever.keys() == from_oneroster.keys()
    assert differing_fields(from_clever, from_oneroster) == LOSSY_FIELDS
    # grades, birth dates, phones and ids cross over intact (grades as CEDS codes and back)
    assert {("person", "grade"), ("classroom", "grade"), ("person", "birth_date")}.isdisjoint(
        differing_fields(from_clever, from_oneroster)
    )


def test_drop_inexpressible_says_what_it_dropped(synthetic: Path, tmp_path: Path) -> None:
    dataset = shutil.copytree(synthetic, tmp_path / "clever")

    dropped = drop_inexpressible(dataset)

    assert dropped["titles"] == sum(
        1 for u in _items(synthetic, "users") for r in ("teacher", "staff", "district_admin") if r in u["data"]["roles"]
    )
    assert dropped["relationships"] > 0 and dropped["phone_types"] > 0
    assert (dropped["roles"], dropped["school_numbers"], dropped["home_languages"]) == (0, 0, 0)
    assert drop_inexpressible(dataset) == dict.fromkeys(dropped, 0)  # nothing left to drop


def test_bundle_follows_the_onerooster_layout(synthetic: Path, tmp_path: Path) -> None:
    counts = clever_to_oneroster(synthetic, tmp_path / "bundle")

    bundle = tmp_path / "bundle"
    manifest = dict(csv.reader((bundle / "manifest.csv").open(encoding="utf-8")))
    assert manifest["oneroster.version"] == "1.1"
    written = ("orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics")
    assert {name: manifest[f"file.{name}"] for name in written} == dict.fromkeys(written, "bulk")
    assert not (bundle / "roles.csv").exists()
    users = list(csv.DictReader((bundle / "users.csv").open(encoding="utf-8")))
    synthetic_users = _items(synthetic, "users")
    assert counts["users"] == len(users) == len(synthetic_users)
    # same sourcedIds as the Clever ids; roles as OneRoster 1.1 names them
    assert {u["sourcedId"] for u in users} == {u["data"]["id"] for u in synthetic_users}
    assert {u["role"] for u in users} == {"student", "teacher", "administrator", "parent", "relative", "guardian"}
    assert all(u["orgSourcedIds"] for u in users)  # a required column: district admins and contacts name the district
    sections = _items(synthetic, "sections")
    assert counts["enrollments"] == sum(
        len(s["data"]["students"]) + len(set(s["data"]["teachers"]) | {s["data"]["teacher"]}) for s in sections
    )
    primary = [e for e in csv.DictReader((bundle / "enrollments.csv").open(encoding="utf-8")) if e["primary"] == "true"]
    assert len(primary) == len(sections)  # one primary teacher per class
    assert (counts["skipped_users"], counts["skipped_enrollments"]) == (0, 0)


# -- a second night ------------------------------------------------------------------------------------


def remove_students_and_change_a_grade(dataset: Path, gone: set[str], regraded: str) -> None:
    """Students leave (from users, sections and their contacts; a contact left with none goes too)."""
    users = json.loads((dataset / "users.json").read_text(encoding="utf-8"))
    kept = []
    for item in users["data"]:
        data = item["data"]
        if data["id"] in gone:
            continue
        contact = data["roles"].get("contact")
        if contact is not None:
            contact["student_relationships"] = [r for r in contact["student_relationships"] if r["student"] not in gone]
            if not contact["student_relationships"]:
                continue
        if data["id"] == regraded:
            data["roles"]["student"]["grade"] = (
                "Kindergarten" if data["roles"]["student"]["grade"] != "Kindergarten" else "1"
            )
        kept.append(item)
    users["data"] = kept
    (dataset / "users.json").write_text(json.dumps(users), encoding="utf-8")
    sections = json.loads((dataset / "sections.json").read_text(encoding="utf-8"))
    for item in sections["data"]:
        item["data"]["students"] = [s for s in item["data"]["students"] if s not in gone]
    (dataset / "sections.json").write_text(json.dumps(sections), encoding="utf-8")


def test_a_second_night_still_maps_to_the_same_records(synthetic: Path, tmp_path: Path) -> None:
    # Given night 2 of the district: three students left, one changed grade
    night_1 = expressible_copy(synthetic, tmp_path / "night-1")
    night_2 = Path(shutil.copytree(night_1, tmp_path / "night-2"))
    students = [u["data"]["id"] for u in _items(night_1, "users") if "student" in u["data"]["roles"]]
    gone, regraded = set(students[:3]), students[10]
    remove_students_and_change_a_grade(night_2, gone, regraded)

    clever_to_oneroster(night_2, tmp_path / "bundle-2")

    # Then its bundle maps as the Clever data does: the leavers, their enrollments and links are gone
    from_oneroster = canonical(oneroster_items(tmp_path / "bundle-2")[0])
    assert_same_records(canonical(clever_items(night_2)), from_oneroster)
    assert not {("person", s) for s in gone} & from_oneroster.keys()
    assert not any(key[1].endswith(tuple(gone)) for key in from_oneroster if key[0] in ("enrollment", "guardian_link"))
    before = canonical(clever_items(night_1))[("person", regraded)]["grade"]
    assert from_oneroster[("person", regraded)]["grade"] != before


# -- the command line --------------------------------------------------------------------------------


def test_command_line_writes_the_bundle_and_prints_the_counts(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(synthetic), str(tmp_path / "out"), "--version", "1.2", "--zip"]) == 0

    counts = json.loads(capsys.readouterr().out)
    assert counts["users"] == len(_items(synthetic, "users"))
    assert counts["roles"] >= counts["users"]
    assert (tmp_path / "out" / "roles.csv").exists() and (tmp_path / "out" / "bundle.zip").exists()
    assert oneroster_items(tmp_path / "out" / "bundle.zip")[1].complete


def test_command_line_refuses_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_unknown_version_is_refused(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="version"):
        clever_to_oneroster(synthetic, tmp_path / "out", version="1.0")
