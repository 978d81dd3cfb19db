"""The sync report writer: report.json, the per-kind CSV files and report.html."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from rostersync.domain.records import Kind, RecordError
from rostersync.reports.html import render_html
from rostersync.reports.model import (
    LIST_SHOWN,
    MAX_JSON_ERRORS,
    Action,
    FieldChange,
    Findings,
    KindCounts,
    LineAction,
    ReadinessItem,
    ReadinessStatus,
    ReportError,
    ReportLine,
    RunStatus,
    SyncReport,
    ThresholdBreach,
)
from rostersync.reports.writer import LINE_ORDER, CsvReportWriter, MemorySink, render_json

COUNT_KEYS = {"created", "updated", "linked", "archived", "restored", "unchanged", "skipped", "errors"}


def _report(**changes: object) -> SyncReport:
    fields: dict[str, object] = {
        "district_id": "d-1042",
        "district_name": "Springfield Unified",
        "run_id": "run-7f3a",
        "trigger": "schedule",
        "status": RunStatus.SUCCEEDED,
        "started_at": "2025-11-28T18:56:12+00:00",
        "finished_at": "2025-11-28T19:03:40+00:00",
    }
    fields.update(changes)
    return SyncReport.model_validate(fields)


def _rows(fileobj: io.IOBase) -> list[list[str]]:
    return list(csv.reader(io.TextIOWrapper(fileobj, encoding="utf-8-sig", newline="")))


# ---------------------------------------------------------------------------------------------- JSON


def test_json_lists_every_kind_in_order_with_every_count_column():
    # Given a report that only counted students
    report = _report(counts={Kind.STUDENTS: KindCounts(created=412, errors=3)})

    # When it is rendered as report.json
    document = json.loads(render_json(report))

    # Then every kind is there, in Kind order, with every count column
    assert list(document["counts"]) == [kind.value for kind in Kind]
    assert all(COUNT_KEYS <= set(counts) for counts in document["counts"].values())
    assert COUNT_KEYS == {action.value for action in Action}
    assert document["counts"]["students"]["created"] == 412
    assert document["counts"]["students"]["errors"] == 3
    assert document["counts"]["schools"]["created"] == 0
    assert document["status"] == "succeeded"


def test_json_errors_carry_kind_provider_id_and_reason():
    # Given a report with one error
    error = ReportError(kind=Kind.GUARDIANS, provider_id="g-1", reason="No email or phone")

    # When it is rendered
    document = json.loads(render_json(_report(errors=[error])))

    # Then the error reads as kind, provider_id, reason and is counted
    assert document["errors"] == [
        {
            "kind": "guardians",
            "provider_id": "g-1",
            "reason": "No email or phone",
            "sis_id": "",
            "file": "",
            "row": None,
            "fix": "",
        }
    ]
    assert document["errors_total"] == 1


def test_a_record_error_shows_its_district_id_in_errors_csv_report_json_and_report_html():
    # Given two record errors as Match stores them: one about a student with an SIS id, and one stored
    # before record errors carried a district id
    stored = [
        RecordError(kind=Kind.STUDENTS, provider_id="u-9", reason="duplicate id u-9", sis_id="100999").model_dump(
            mode="json"
        ),
        {"record_type": "error", "kind": "classrooms", "provider_id": "k-1", "reason": "no school"},
    ]

    # When the report is written from them
    with CsvReportWriter() as writer:
        for data in stored:
            writer.add_error(ReportError.from_record_error(RecordError.model_validate(data)))
        errors_csv = _rows(writer.finish()["errors.csv"])
    report = _report(status=RunStatus.SUCCEEDED_WITH_ERRORS, errors=writer.first_errors, errors_total=2)

    # Then errors.csv's sis_id column, report.json and report.html's District ID cell show it
    assert [row[:3] for row in errors_csv] == [
        ["kind", "provider_id", "sis_id"],
        ["students", "u-9", "100999"],
        ["classrooms", "k-1", ""],
    ]
    assert [e["sis_id"] for e in json.loads(render_json(report))["errors"]] == ["100999", ""]
    page = render_html(report).decode()
    assert '<td data-label="District ID">100999</td>' in page
    assert '<td data-label="District ID">—</td>' in page


def test_json_keeps_at_most_1000_errors_but_counts_them_all():
    # Given a run with 2,500 errors
    errors = [ReportError(kind=Kind.STUDENTS, provider_id=f"s-{i}", reason="No school") for i in range(2_500)]

    # When the report is built and rendered
    document = json.loads(render_json(_report(errors=errors)))

    # Then report.json holds the first 1,000 and the full count
    assert len(document["errors"]) == MAX_JSON_ERRORS == 1_000
    assert document["errors"][-1]["provider_id"] == "s-999"
    assert document["errors_total"] == 2_500


def test_json_round_trips_to_the_same_report():
    # Given a threshold-exceeded report
    breach = ThresholdBreach(would_archive=240, managed=1_000, percent=24, limit_percent=10)
    report = _report(status=RunStatus.THRESHOLD_EXCEEDED, threshold={Kind.STUDENTS: breach})

    # When report.json is read back
    again = SyncReport.model_validate_json(render_json(report))

    # Then nothing was lost
    assert again == report
    assert json.loads(render_json(report))["threshold"]["students"]["limit_percent"] == 10


def test_threshold_note_reads_in_plain_words():
    # Given 240 of 1,000 managed students would be archived with a 10 % limit
    breach = ThresholdBreach(would_archive=240, managed=1_000, percent=24.0, limit_percent=10)

    # When the note is written
    note = breach.note(Kind.STUDENTS)

    # Then it says what happened with thousands separators and whole percentages
    assert note == (
        "Deletion threshold exceeded for students: 240 of 1,000 (24 %) would be archived, "
        "over the 10 % limit; nothing was archived"
    )


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_writes_one_file_per_kind_with_its_lines():
    # Given lines for students and classrooms
    lines = [
        ReportLine(kind=Kind.STUDENTS, action=LineAction.CREATED, id="u-1", provider_id="s-1", name="Ana Ruiz"),
        ReportLine(
            kind=Kind.STUDENTS,
            action=LineAction.SKIPPED,
            provider_id="s-2",
            reason="No school in the roster",
        ),
        ReportLine(kind=Kind.CLASSROOMS, action=LineAction.UPDATED, id="c-9", provider_id="sec-9", name="Math 7"),
    ]

    # When they are streamed through the writer
    with CsvReportWriter() as writer:
        writer.add_all(lines)
        files = writer.finish()
        contents = {name: _rows(fileobj) for name, fileobj in files.items()}

    # Then each kind with lines has its file, in Kind order, and errors.csv is there with a header only;
    # skipped lines come before created ones (lines to review first, see LINE_ORDER)
    assert list(contents) == ["classrooms.csv", "students.csv", "errors.csv"]
    assert contents["students.csv"] == [
        ["action", "name", "sis_id", "school", "grade", "reason", "changes", "id", "provider_id"],
        ["skipped", "", "", "", "", "No school in the roster", "", "", "s-2"],
        ["created", "Ana Ruiz", "", "", "", "", "", "u-1", "s-1"],
    ]
    assert contents["classrooms.csv"][1] == ["updated", "Math 7", "", "", "", "", "", "c-9", "sec-9"]
    assert contents["errors.csv"] == [["kind", "provider_id", "sis_id", "file", "row", "reason", "fix"]]


def test_csv_errors_file_lists_every_error_and_keeps_the_first_for_json():
    # Given 1,200 errors
    errors = (ReportError(kind=Kind.GUARDIANS, provider_id=f"g-{i}", reason="No email") for i in range(1_200))

    # When they are written
    with CsvReportWriter() as writer:
        for error in errors:
            writer.add_error(error)
        rows = _rows(writer.finish()["errors.csv"])

    # Then errors.csv has them all, and the writer kept the first 1,000 and the total for report.json
    assert len(rows) == 1 + 1_200
    assert rows[1] == ["guardians", "g-0", "", "", "", "No email", ""]
    assert writer.errors_total == 1_200
    assert len(writer.first_errors) == MAX_JSON_ERRORS
    report = _report(errors=writer.first_errors, errors_total=writer.errors_total)
    assert report.errors_total == 1_200


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.test","x")',
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\rx",
        # spreadsheets look past leading spaces and invisible characters, and read full-width forms
        " =1+2",
        "   +1+1",
        "\u3000=1+2",
        "\uff1d1+2",  # full-width equals sign
        "\uff0b1+1",
        "\uff201",
        "\u200b=1+2",  # zero-width space
        "\ufeff=1+2",
        "\u2060 \u200d-2+3",
    ],
)
def test_csv_neutralises_formula_injection(cell):
    # Given a roster name and reason that a spreadsheet would run as a formula
    line = ReportLine(kind=Kind.STUDENTS, action=LineAction.CREATED, provider_id="s-1", name=cell, reason=cell)

    # When the line is written
    with CsvReportWriter() as writer:
        writer.add(line)
        writer.add_error(ReportError(kind=Kind.STUDENTS, provider_id=cell, reason="bad"))
        files = writer.finish()
        student, error = _rows(files["students.csv"])[1], _rows(files["errors.csv"])[1]

    # Then the cells start with a quote, so the spreadsheet shows them as text
    assert student[1] == student[5] == "'" + cell
    assert error[1] == "'" + cell


def test_csv_leaves_ordinary_and_empty_cells_alone():
    # Given a line with empty cells and a name with an inner equals sign
    line = ReportLine(kind=Kind.STAFF, action=LineAction.ARCHIVED, provider_id="p-1", name="A = B")

    # When it is written
    with CsvReportWriter() as writer:
        writer.add(line)
        row = _rows(writer.finish()["staff.csv"])[1]

    # Then nothing was prefixed
    assert row == ["archived", "A = B", "", "", "", "", "", "", "p-1"]


class _FolderSink(MemorySink):
    """Set-aside rows in a folder, files in memory: what the writer itself holds is what tracemalloc sees."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def put_segment(self, name: str, body: bytes) -> str:
        (self.folder / name).write_bytes(body)
        return name

    def read_segment(self, ref: str) -> list[bytes]:
        return [(self.folder / ref).read_bytes()]


LINES = 20_000  # ~1.9 MB of CSV; held as ReportLines they would take ~26 MB


def test_csv_streams_20k_lines_without_holding_them_or_their_text(tmp_path: Path):
    # Given 20,000 enrollment lines from a generator, rows set aside after 64 KiB
    def lines() -> Iterator[ReportLine]:
        for i in range(LINES):
            yield ReportLine(
                kind=Kind.ENROLLMENTS,
                action=LineAction.WOULD_ARCHIVE,
                id=f"enrollment-{i:08d}",
                provider_id=f"section-{i // 30:06d}:student-{i:08d}",
                reason="No longer in the roster",
            )

    # When they are streamed through the writer
    tracemalloc.start()
    with CsvReportWriter(_FolderSink(tmp_path), buffer_bytes=64 * 1024) as writer:
        writer.add_all(lines())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        fileobj = writer.finish()["enrollments.csv"]
        text = fileobj.read()

    # Then every line is in the file, and memory stayed below what holding the file's text takes (its
    # size; about 0.3 MB is the buffer and the writer), let alone the lines
    rows = sum(1 for _ in io.StringIO(text.decode("utf-8-sig"), newline=""))
    assert rows == 1 + LINES
    assert writer.row_counts["enrollments.csv"] == LINES
    assert len(text) > 1024 * 1024
    assert peak < 1024 * 1024


def test_csv_writer_refuses_lines_after_finish():
    # Given a finished writer
    with CsvReportWriter() as writer:
        writer.finish()

        # When a line arrives late, Then it is refused rather than silently lost
        with pytest.raises(RuntimeError):
            writer.add(ReportLine(kind=Kind.SCHOOLS, action=LineAction.CREATED, provider_id="sch-1"))


NEW_ACTIONS = (
    LineAction.LINKED,
    LineAction.POSSIBLE_DUPLICATE,
    LineAction.AMBIGUOUS,
    LineAction.MERGED,
    LineAction.SEPARATE_ACCOUNT,
    LineAction.EDIT_KEPT,
    LineAction.EDIT_OVERWRITTEN,
)


def test_csv_groups_a_kinds_lines_by_action_review_lines_first():
    # Given students lines arriving in the planner's order: every action, interleaved
    arriving = [
        ReportLine(kind=Kind.STUDENTS, action=action, provider_id=f"s-{n}-{action.value}")
        for n in range(2)
        for action in reversed(LineAction)
    ]

    # When they are written
    with CsvReportWriter() as writer:
        writer.add_all(arriving)
        rows = _rows(writer.finish()["students.csv"])[1:]

    # Then the rows are grouped in LINE_ORDER (review first), each group in arrival order
    assert [row[0] for row in rows] == [action.value for action in LINE_ORDER for _ in range(2)]
    assert rows[0][8] == "s-0-possible_duplicate" and rows[1][8] == "s-1-possible_duplicate"
    assert set(LINE_ORDER) == set(LineAction) and len(LINE_ORDER) == len(LineAction)


@pytest.mark.parametrize("action", NEW_ACTIONS)
def test_csv_lines_of_the_new_actions_are_written_and_neutralised(action):
    # Given a line of a new action whose name and reason a spreadsheet would run as a formula
    cell = '=HYPERLINK("http://evil.test","x")'
    line = ReportLine(kind=Kind.GUARDIANS, action=action, id="=1+1", provider_id="@g-1", name=cell, reason=cell)

    # When it is written
    with CsvReportWriter() as writer:
        writer.add(line)
        rows = _rows(writer.finish()["guardians.csv"])

    # Then it is in its kind's file under its action, every formula-like cell quoted
    assert rows[1] == [action.value, "'" + cell, "", "", "", "'" + cell, "", "'=1+1", "'@g-1"]


def test_csv_review_lines_without_a_reason_say_what_to_do():
    # Given a possible duplicate and an ambiguous match the planner gave no reason, and a linked line
    lines = [
        ReportLine(kind=Kind.STUDENTS, action=LineAction.POSSIBLE_DUPLICATE, id="u-1", provider_id="s-1"),
        ReportLine(kind=Kind.STUDENTS, action=LineAction.AMBIGUOUS, provider_id="s-2"),
        ReportLine(kind=Kind.STUDENTS, action=LineAction.LINKED, id="u-3", provider_id="s-3"),
        ReportLine(kind=Kind.STUDENTS, action=LineAction.POSSIBLE_DUPLICATE, provider_id="s-4", reason="Twin?"),
    ]

    with CsvReportWriter() as writer:
        writer.add_all(lines)
        reasons = {row[8]: row[5] for row in _rows(writer.finish()["students.csv"])[1:]}

    # Then the review lines point at people link, a given reason is kept, and other lines stay blank
    assert "rostersync people link" in reasons["s-1"] and "not merged" in reasons["s-1"]
    assert "rostersync people link" in reasons["s-2"]
    assert reasons["s-4"] == "Twin?"
    assert reasons["s-3"] == ""


def _item(status: ReadinessStatus, check: str, detail: str = "Found.", action: str = "") -> ReadinessItem:
    return ReadinessItem(status=status, check=check, detail=detail, action=action)


CLEAN = [
    _item(ReadinessStatus.PASS, "Roster fetched completely", "Every page of the roster was read."),
    _item(ReadinessStatus.PASS, "Schools matched", "All 3 provider schools in scope are matched."),
]


def test_json_carries_findings_readiness_and_ready_and_round_trips():
    # Given a self-check report with findings and a failing checklist
    findings = Findings.model_validate({"duplicate_candidates": 2, "guardians_skipped": {"No email": 1}})
    report = _report(
        dry_run=True, findings=findings, readiness=[*CLEAN, _item(ReadinessStatus.FAIL, "Deletion threshold")]
    )

    document = json.loads(render_json(report))

    assert document["ready"] is False
    assert document["readiness"][2] == {
        "status": "fail",
        "check": "Deletion threshold",
        "detail": "Found.",
        "action": "",
    }
    assert document["findings"]["duplicate_candidates"] == 2
    assert document["findings"]["unlinked_sections"] == {"create": 0, "skip": 0}
    assert document["counts"]["students"]["edits_kept"] == 0
    assert SyncReport.model_validate_json(render_json(report)) == report


def test_csv_lines_carry_the_district_id_school_grade_and_what_changed():
    # Given an updated student whose email and grade changed, and an archived one
    updated = ReportLine(
        kind=Kind.STUDENTS,
        action=LineAction.UPDATED,
        id="u-1",
        provider_id="s-1",
        name="Ana Ruiz",
        sis_id="100234",
        school="Summit High School",
        grade="10",
        changes=[
            FieldChange(field="email", before="ana@old.example", after="ana@new.example"),
            FieldChange(field="grade", before="9", after="10"),
        ],
    )
    archived = ReportLine(
        kind=Kind.STUDENTS,
        action=LineAction.ARCHIVED,
        id="u-2",
        provider_id="s-2",
        name="Ben Ode",
        sis_id="100235",
        school="Summit High School",
        grade="11",
        reason="no longer in the clever roster",
    )

    with CsvReportWriter() as writer:
        writer.add_all([updated, archived])
        rows = list(csv.DictReader(io.TextIOWrapper(writer.finish()["students.csv"], encoding="utf-8-sig")))

    # Then each row says who (name, the district's id), where, and what changed before → after
    assert rows[0] == {
        "action": "archived",
        "name": "Ben Ode",
        "sis_id": "100235",
        "school": "Summit High School",
        "grade": "11",
        "reason": "no longer in the clever roster",
        "changes": "",
        "id": "u-2",
        "provider_id": "s-2",
    }
    assert rows[1]["changes"] == "email: ana@old.example → ana@new.example; grade: 9 → 10"
    # and the writer kept them for report.html's lists, with their totals
    assert writer.lists[Kind.STUDENTS][LineAction.ARCHIVED][0].name == "Ben Ode"
    assert writer.list_totals[Kind.STUDENTS] == {LineAction.UPDATED: 1, LineAction.ARCHIVED: 1}


def test_csv_writer_keeps_the_first_50_lines_of_each_list_and_counts_them_all():
    lines = (
        ReportLine(kind=Kind.ENROLLMENTS, action=LineAction.CREATED, provider_id=f"e-{i}", name=f"P{i} in Math")
        for i in range(120)
    )

    with CsvReportWriter() as writer:
        writer.add_all(lines)
        writer.finish()

    shown = writer.lists[Kind.ENROLLMENTS][LineAction.CREATED]
    assert len(shown) == LIST_SHOWN == 50 and shown[-1].provider_id == "e-49"
    assert writer.list_totals[Kind.ENROLLMENTS][LineAction.CREATED] == 120


def test_an_error_of_an_uploaded_file_says_which_file_row_and_fix():
    error = ReportError(
        kind=Kind.STUDENTS,
        provider_id="u-9",
        reason="users.csv line 12 has 9 values but the header has 10 columns (a value with an unquoted comma?); "
        "skipped",
    )
    odd = ReportError(
        kind=Kind.STUDENTS,
        reason="user number 3: its id 'a b' has a space; not synced, and nothing of this kind is archived this "
        "run (the record it stands for cannot be told). Fix the id in the export",
    )

    assert (error.file, error.row) == ("users.csv", 12)
    assert (odd.file, odd.row, odd.fix) == ("", None, "Fix the id in the export")
    with CsvReportWriter() as writer:
        writer.add_error(error)
        row = _rows(writer.finish()["errors.csv"])[1]
    assert row[:5] == ["students", "u-9", "", "users.csv", "12"]
