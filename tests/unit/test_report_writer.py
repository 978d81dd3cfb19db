"""The sync report writer: report.json, the per-kind CSV files and report.html."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from rostersync.domain.records import Kind
from rostersync.reports.model import (
    MAX_JSON_ERRORS,
    Action,
    KindCounts,
    LineAction,
    ReportError,
    ReportLine,
    RunStatus,
    SyncReport,
    ThresholdBreach,
)
from rostersync.reports.writer import CsvReportWriter, render_html, render_json

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
    assert document["errors"] == [{"kind": "guardians", "provider_id": "g-1", "reason": "No email or phone"}]
    assert document["errors_total"] == 1


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
        ["action", "id", "provider_id", "name", "reason"],
        ["skipped", "", "s-2", "", "No school in the roster"],
        ["created", "u-1", "s-1", "Ana Ruiz", ""],
    ]
    assert contents["classrooms.csv"][1] == ["updated", "c-9", "sec-9", "Math 7", ""]
    assert contents["errors.csv"] == [["kind", "provider_id", "reason"]]


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
    assert rows[1] == ["guardians", "g-0", "No email"]
    assert writer.errors_total == 1_200
    assert len(writer.first_errors) == MAX_JSON_ERRORS
    report = _report(errors=writer.first_errors, errors_total=writer.errors_total)
    assert report.errors_total == 1_200


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
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
    assert student[3] == student[4] == "'" + cell
    assert error[1] == "'" + cell


def test_csv_leaves_ordinary_and_empty_cells_alone():
    # Given a line with empty cells and a name with an inner equals sign
    line = ReportLine(kind=Kind.STAFF, action=LineAction.ARCHIVED, provider_id="p-1", name="A = B")

    # When it is written
    with CsvReportWriter() as writer:
        writer.add(line)
        row = _rows(writer.finish()["staff.csv"])[1]

    # Then nothing was prefixed
    assert row == ["archived", "", "p-1", "A = B", ""]


def test_csv_streams_100k_lines_without_holding_them():
    # Given 100,000 enrollment lines from a generator, spooled to disk after 64 KiB
    def lines() -> Iterator[ReportLine]:
        for i in range(100_000):
            yield ReportLine(
                kind=Kind.ENROLLMENTS,
                action=LineAction.WOULD_ARCHIVE,
                id=f"enrollment-{i:08d}",
                provider_id=f"section-{i // 30:06d}:student-{i:08d}",
                reason="No longer in the roster",
            )

    # When they are streamed through the writer
    tracemalloc.start()
    with CsvReportWriter(spool_bytes=64 * 1024) as writer:
        writer.add_all(lines())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        fileobj = writer.finish()["enrollments.csv"]
        rows = sum(1 for _ in io.TextIOWrapper(fileobj, encoding="utf-8-sig", newline=""))

    # Then every line is in the file, and memory stayed far below what holding the lines takes (~60 MB)
    assert rows == 1 + 100_000
    assert writer.row_counts["enrollments.csv"] == 100_000
    assert peak < 5 * 1024 * 1024


def test_csv_writer_refuses_lines_after_finish():
    # Given a finished writer
    with CsvReportWriter() as writer:
        writer.finish()

        # When a line arrives late, Then it is refused rather than silently lost
        with pytest.raises(RuntimeError):
            writer.add(ReportLine(kind=Kind.SCHOOLS, action=LineAction.CREATED, provider_id="sch-1"))


# ---------------------------------------------------------------------------------------------- HTML


def test_html_escapes_roster_values():
    # Given a district name and an error whose values carry markup
    error = ReportError(kind=Kind.STUDENTS, provider_id='"><img src=x>', reason="<script>alert(1)</script>")
    report = _report(district_name="<script>alert('x')</script> Unified", errors=[error])

    # When the page is rendered
    page = render_html(report).decode()

    # Then no markup from the roster survives, and the text is still shown
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Unified" in page


def test_html_is_self_contained():
    # Given a report with changes and files
    report = _report(
        counts={Kind.STUDENTS: KindCounts(created=3)},
        files={"students.csv": "reports/d-1042/run-7f3a/students.csv"},
    )

    # When rendered
    page = render_html(report).decode()

    # Then it needs no script and no external asset, and links the CSV by its relative name
    assert "<script" not in page
    assert "http" not in page
    assert "<style>" in page and "<svg" in page
    assert 'href="students.csv"' in page


def test_html_shows_the_failure_reason_of_a_failed_run():
    # Given a run that failed on credentials
    reason = "Clever refused our credentials. Reconnect the app in Clever, then run the sync again."
    report = _report(status=RunStatus.FAILED, failure_reason=reason)

    # When rendered
    page = render_html(report).decode()

    # Then the badge says it failed and the reason is shown
    assert "Failed" in page
    assert "The sync did not finish" in page
    assert reason in page


def test_html_shows_the_dry_run_banner_only_for_a_self_check():
    # Given the same report as a self-check and as a real run
    dry, real = _report(dry_run=True), _report(dry_run=False)

    # When both are rendered
    dry_page, real_page = render_html(dry).decode(), render_html(real).decode()

    # Then only the self-check says nothing was written
    assert "Self-check: nothing was written" in dry_page
    assert "Self-check: nothing was written" not in real_page


def test_html_shows_the_threshold_note_and_held_back_records():
    # Given a run stopped from archiving 2,400 students
    breach = ThresholdBreach(would_archive=2_400, managed=19_600, percent=12.24, limit_percent=10)
    report = _report(
        status=RunStatus.THRESHOLD_EXCEEDED,
        counts={Kind.STUDENTS: KindCounts(updated=1_210, would_archive=2_400)},
        threshold={Kind.STUDENTS: breach},
        notes=[breach.note(Kind.STUDENTS)],
    )

    # When rendered
    page = render_html(report).decode()

    # Then the note, the held-back count and where to find the records are shown
    assert "Deletion threshold exceeded for students: 2,400 of 19,600 (12.2 %) would be archived" in page
    assert "Archiving held back" in page
    assert "2,400 held back" in page
    assert "students.csv" in page


def test_html_counts_table_uses_labels_and_thousands_separators():
    # Given counts for guardian links
    report = _report(counts={Kind.GUARDIAN_LINKS: KindCounts(created=1_234_567)})

    # When rendered
    page = render_html(report).decode()

    # Then every kind has its label and numbers are grouped
    for label in ("Schools", "Classrooms", "Students", "Teachers", "Staff", "Guardians", "Enrollments"):
        assert f"<th>{label}</th>" in page
    assert "<th>Guardian links</th>" in page
    assert "1,234,567" in page


def test_html_lists_the_first_200_errors_and_points_to_errors_csv():
    # Given 1,000 errors kept in the report out of 5,000
    errors = [ReportError(kind=Kind.GUARDIANS, provider_id=f"g-{i}", reason="No email") for i in range(1_000)]
    report = _report(status=RunStatus.SUCCEEDED_WITH_ERRORS, errors=errors, errors_total=5_000)

    # When rendered
    page = render_html(report).decode()

    # Then 200 are shown and the rest are pointed at
    assert "<code>g-199</code>" in page
    assert "<code>g-200</code>" not in page
    assert "and 4,800 more in" in page
    assert 'href="errors.csv"' in page
