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
from rostersync.reports.writer import LINE_ORDER, CsvReportWriter, render_html, render_json

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
    assert rows[0][2] == "s-0-possible_duplicate" and rows[1][2] == "s-1-possible_duplicate"
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
    assert rows[1] == [action.value, "'=1+1", "'@g-1", "'" + cell, "'" + cell]


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
        reasons = {row[2]: row[4] for row in _rows(writer.finish()["students.csv"])[1:]}

    # Then the review lines point at people link, a given reason is kept, and other lines stay blank
    assert "rostersync people link" in reasons["s-1"] and "not merged" in reasons["s-1"]
    assert "rostersync people link" in reasons["s-2"]
    assert reasons["s-4"] == "Twin?"
    assert reasons["s-3"] == ""


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


def _item(status: ReadinessStatus, check: str, detail: str = "Found.", action: str = "") -> ReadinessItem:
    return ReadinessItem(status=status, check=check, detail=detail, action=action)


CLEAN = [
    _item(ReadinessStatus.PASS, "Roster fetched completely", "Every page of the roster was read."),
    _item(ReadinessStatus.PASS, "Schools matched", "All 3 provider schools in scope are matched."),
]


def test_html_self_check_opens_with_the_verdict_and_checklist_before_the_counts():
    # Given a self-check with nothing to fix
    report = _report(dry_run=True, trigger="self_check", readiness=CLEAN)

    # When rendered
    page = render_html(report).decode()

    # Then the verdict and checklist come first, then the would-do counts, then the findings
    assert report.ready is True
    assert "Ready for the first sync" in page
    assert page.index("Readiness checklist") < page.index("What the sync would do") < page.index("Findings")
    assert page.count(">Pass</span>") == 2
    assert "Started by</dt><dd>Self-check" in page


def test_html_verdict_counts_the_things_to_fix_and_to_review():
    # Given a self-check with two fails and a warning
    readiness = [
        *CLEAN,
        _item(ReadinessStatus.FAIL, "Deletion threshold", "The sync would archive 240 of 1,000 students (24 %)."),
        _item(ReadinessStatus.FAIL, "Run finished"),
        _item(ReadinessStatus.WARN, "Duplicate candidates", "3 roster students look like product students."),
    ]

    page = render_html(_report(dry_run=True, readiness=readiness)).decode()

    assert "2 things to fix before enabling sync" in page
    assert "and 1 more to review" in page
    assert "Ready for the first sync" not in page
    assert page.count(">Fix</span>") == 2 and page.count(">Review</span>") == 1
    assert "The sync would archive 240 of 1,000 students (24 %)." in page


def test_html_verdict_of_one_fail_is_singular():
    page = render_html(_report(dry_run=True, readiness=[_item(ReadinessStatus.FAIL, "Schools matched")])).decode()

    assert "1 thing to fix before enabling sync" in page


def test_html_real_run_shows_its_checks_after_the_counts():
    # Given a real run's report with a checklist and no findings
    page = render_html(_report(readiness=CLEAN)).decode()

    # Then the counts come first, the checks later, and no empty findings section is shown
    assert page.index("Records by kind") < page.index("<h2>Checks</h2>")
    assert "Nothing to fix before the next sync" in page
    assert "Ready for the first sync" not in page
    assert "Findings" not in page
    assert "Readiness checklist" not in page


def test_html_action_commands_show_as_code_and_stay_escaped():
    # Given an action naming a command, and a detail carrying a school name with markup
    item = _item(
        ReadinessStatus.WARN,
        "Schools matched",
        detail="1 of 4 provider schools in scope has no product school: <script>alert(1)</script> High.",
        action="Match schools with `rostersync schools match --district d-1042`.",
    )

    page = render_html(_report(dry_run=True, readiness=[item])).decode()

    assert "<code>rostersync schools match --district d-1042</code>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; High." in page
    assert "<script" not in page


def test_html_would_do_counts_have_linked_and_would_archive_columns():
    # Given a self-check that would link 12 students and archive 3
    report = _report(dry_run=True, counts={Kind.STUDENTS: KindCounts(created=40, linked=12, would_archive=3)})

    page = render_html(report).decode()

    assert '<th class="n">Linked</th>' in page
    assert '<th class="n">Would archive</th>' in page
    assert '<th class="n">Archived</th>' not in page
    assert "held back" not in page
    row = page[page.index("<th>Students</th>") : page.index("</tr>", page.index("<th>Students</th>"))]
    assert [cell.split(">")[1].removesuffix("</td") for cell in row.split("<td")[1:]] == [
        "40",
        "0",
        "12",
        "0",
        "3",
        "0",
        "0",
        "0",
    ]


def test_html_real_run_keeps_the_archived_column():
    page = render_html(_report(counts={Kind.STAFF: KindCounts(archived=2, linked=1)})).decode()

    assert '<th class="n">Archived</th>' in page and '<th class="n">Linked</th>' in page
    assert "Would archive" not in page


def test_html_findings_list_unmatched_schools_by_name_and_guardians_by_reason():
    # Given findings with schools unmatched on both sides, duplicates and guardians skipped
    findings = Findings.model_validate(
        {
            "unmatched_provider_schools": [{"provider_id": "clever-sch-9", "name": "<script>alert(9)</script> Oak"}],
            "unlinked_product_schools": [{"id": "p-sch-2", "name": "Elm Elementary"}],
            "out_of_scope_schools": [{"provider_id": "clever-sch-7", "name": "Night School"}],
            "duplicate_candidates": 3,
            "guardians_skipped": {"Neither a unique email nor an SMS-capable phone": 8, "<b>odd</b>": 1},
            "multi_role": {"merged": 2, "separate": 1},
        }
    )
    report = _report(dry_run=True, findings=findings, files={"students.csv": "runs/d/r/report/students.csv"})

    page = render_html(report).decode()

    # Then each school is listed by name with its id, escaped; guardians by reason; duplicates point at the CSV
    findings_html = page[page.index("<h2>Findings</h2>") :]
    assert "&lt;script&gt;alert(9)&lt;/script&gt; Oak</td><td><code>clever-sch-9</code>" in findings_html
    assert "Elm Elementary</td><td><code>p-sch-2</code>" in findings_html
    assert "Night School" in findings_html
    assert "Guardians skipped (9)" in findings_html
    assert 'Neither a unique email nor an SMS-capable phone</td><td class="n">8</td>' in findings_html
    assert "&lt;b&gt;odd&lt;/b&gt;" in findings_html
    assert 'Duplicate candidates (same name and date of birth, not merged)</td><td class="n">3</td>' in findings_html
    assert '<a href="students.csv">students.csv</a> with the action <code>possible_duplicate</code>' in findings_html
    assert "People in several roles with one account" in findings_html
    assert "<script" not in page and "<b>" not in page


def test_html_self_check_with_nothing_found_says_so():
    page = render_html(_report(dry_run=True, readiness=CLEAN)).decode()

    assert "Nothing to flag" in page


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


def test_the_settings_a_run_used_are_in_report_json_and_folded_into_the_html_escaped():
    from rostersync.settings import SyncSettings

    settings = SyncSettings.model_validate({"classrooms": {"name_template": "{course} <b>{period}</b>"}})
    report = _report(settings_version=3, settings=settings.model_dump(mode="json"))

    assert json.loads(render_json(report))["settings"]["classrooms"]["name_template"] == "{course} <b>{period}</b>"
    page = render_html(report).decode("utf-8")
    assert "Settings used (version 3)" in page
    assert "&lt;b&gt;{period}&lt;/b&gt;" in page and "<b>{period}</b>" not in page
    assert "Settings used" not in render_html(_report()).decode("utf-8")
