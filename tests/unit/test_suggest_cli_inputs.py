"""What the matching commands read besides the stack: the roster stream they keep, pairs and edited CSVs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rostersync.domain.records import (
    ClassroomRecord,
    EnrollmentRecord,
    PersonRecord,
    RecordError,
    Role,
    SchoolRecord,
    SnapshotItem,
)
from rostersync.matching.suggest import MatchSuggestions, Suggestion, Unmatched
from rostersync.roster_preview import collect_preview
from rostersync_tools.cli.inputs import UsageError
from rostersync_tools.cli.matching_commands import CSV_COLUMNS, _parse_pairs, _read_csv, _write_csv

P = "clever"


def person(provider_id: str, role: Role, **fields: str) -> PersonRecord:
    return PersonRecord(provider=P, provider_id=provider_id, roles=[role], **fields)


def roster(teachers_first: bool) -> list[SnapshotItem]:
    section = [
        ClassroomRecord(provider=P, provider_id="s-1", school="c-1", name="Algebra I"),
        EnrollmentRecord(provider=P, provider_id="s-1:t-1", classroom="s-1", person="t-1", role="teacher"),
        EnrollmentRecord(provider=P, provider_id="s-1:u-1", classroom="s-1", person="u-1", role="student"),
    ]
    people = [
        person("t-1", Role.TEACHER, given_name="Ada", family_name="Trantow", email="ada@example.org"),
        person("u-1", Role.STUDENT, given_name="Kid", family_name="One"),
    ]
    school = [SchoolRecord(provider=P, provider_id="c-1", name="Summit")]
    return [*school, *people, *section] if teachers_first else [*school, *section, *people]


@pytest.mark.parametrize("teachers_first", [True, False])
def test_sections_get_their_teachers_whatever_order_the_provider_sends(teachers_first: bool) -> None:
    preview = collect_preview(roster(teachers_first), P)
    assert [s.provider_id for s in preview.schools] == ["c-1"]
    (section,) = preview.section_list()
    assert section.teacher_ids == ("t-1",)
    assert preview.teachers["t-1"].name == "Ada Trantow" and preview.teachers["t-1"].email == "ada@example.org"
    # students are not kept unless asked for
    assert "u-1" not in preview.teachers and preview.people == {}


def test_asked_for_people_are_kept_whole() -> None:
    preview = collect_preview(roster(True), P, people={"u-1"})
    assert set(preview.people) == {"u-1"} and preview.people["u-1"].roles == [Role.STUDENT]


def test_schools_only_stops_reading_at_the_first_section() -> None:
    read: list[str] = []

    def stream() -> Iterator[SnapshotItem]:
        for item in roster(False):
            read.append(item.provider_id)
            yield item

    preview = collect_preview(stream(), P, schools_only=True)
    assert [s.provider_id for s in preview.schools] == ["c-1"] and preview.sections == []
    assert read == ["c-1", "s-1"]  # nothing after the first section was read


def test_unreadable_pages_are_kept_as_problems() -> None:
    preview = collect_preview([RecordError(kind="classrooms", reason="page 3 of /sections could not be read")], P)
    assert preview.problems == ["page 3 of /sections could not be read"]


def test_pairs_need_both_ids() -> None:
    assert _parse_pairs([" sch-1 = c-1 "], "--confirm") == [("sch-1", "c-1")]
    for bad in ("sch-1", "=c-1", "sch-1="):
        with pytest.raises(UsageError, match="expected PRODUCT_ID=PROVIDER_ID"):
            _parse_pairs([bad], "--confirm")


def _result() -> MatchSuggestions:
    return MatchSuggestions(
        suggestions=[
            Suggestion(
                product_id="sch-1",
                product_name='=HYPERLINK("x")',
                provider_id="-c1",
                provider_name="Summit",
                confidence="high",
                reasons=["NCES id 1 matches"],
            )
        ],
        unmatched_product=[Unmatched(id="sch-2", name="Adult Center", reason="no provider school")],
        unmatched_provider=[Unmatched(id="c-9", name="Northside", reason="no product school")],
    )


def test_the_written_csv_is_safe_in_a_spreadsheet_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    _write_csv(path, _result(), {"sch-1": "x"}, {"-c1": "Summit"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert "'=HYPERLINK" in lines[1] and ",'-c1," in lines[1]
    assert _read_csv(path) == []  # nothing is confirmed until the admin says so

    path.write_text(path.read_text(encoding="utf-8").replace("\n,sch-1", "\nyes,sch-1"), encoding="utf-8")
    assert _read_csv(path) == [("sch-1", "-c1")]  # the formula guard is taken off the id


def test_an_edited_csv_with_a_bad_mark_or_a_missing_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("confirm,product_id,provider_id\nmaybe,sch-1,c-1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2: confirm is 'maybe'"):
        _read_csv(path)
    path.write_text("confirm,product_id,provider_id\nyes,sch-1,\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2: confirmed, but product_id or provider_id is empty"):
        _read_csv(path)
    path.write_text("product_id,provider_id\nsch-1,c-1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no confirm column"):
        _read_csv(path)
    with pytest.raises(UsageError, match="cannot be read"):
        _read_csv(tmp_path / "missing.csv")
