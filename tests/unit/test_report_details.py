"""Who and what a report line names (reports/details.py) and the district's index page (reports/index.py)."""

from __future__ import annotations

import re

from rostersync.domain.records import Kind, PersonRecord, Role
from rostersync.reports.details import display_name, field_changes, line_details, roster_details
from rostersync.reports.index import RunRow, SchoolRow, render_index

SCHOOLS = {"sch-1": "Summit High School", "sch-2": "Lakeside Middle School"}


def test_a_person_line_names_the_district_id_schools_and_grade():
    fields = {"given_name": "Ana", "family_name": "Ruiz", "sis_id": "", "student_number": "100234", "grade": "10"}
    fields["schools"] = ["sch-1", "sch-2"]

    assert display_name(fields) == "Ana Ruiz"
    assert line_details(Kind.STUDENTS, fields, SCHOOLS) == {
        "sis_id": "100234",  # no SIS id: the student number is the district's id
        "school": "Summit High School; Lakeside Middle School",
        "grade": "10",
    }


def test_a_classroom_line_names_its_school_and_a_school_line_its_grade_range():
    assert line_details(Kind.CLASSROOMS, {"name": "Algebra 1", "school": "sch-1", "sis_id": "961"}, SCHOOLS) == {
        "sis_id": "961",
        "school": "Summit High School",
        "grade": "",
    }
    school = {"name": "Summit", "school_number": "07", "low_grade": "9", "high_grade": "12"}
    assert line_details(Kind.SCHOOLS, school, SCHOOLS) == {"sis_id": "07", "school": "", "grade": "9–12"}


def test_a_skipped_roster_person_is_described_by_the_providers_schools():
    person = PersonRecord(
        provider="clever", provider_id="u-1", roles=[Role.STUDENT], schools=["c-9"], grade="3", sis_id="55"
    )

    assert roster_details(person, {"c-9": "Northside Academy"}) == {
        "sis_id": "55",
        "school": "Northside Academy",
        "grade": "3",
    }


def test_field_changes_list_each_changed_field_before_and_after_and_nothing_else():
    before = {"email": "ana@old.example", "grade": "9", "schools": ["sch-1"], "phone": "", "home_language": "es"}
    after = {"email": "ana@new.example", "grade": "9", "schools": ["sch-2"], "phone": "+15550100"}

    changes = [(c["field"], c["before"], c["after"]) for c in field_changes(before, after, SCHOOLS)]

    assert changes == [
        ("email", "ana@old.example", "ana@new.example"),
        ("schools", "Summit High School", "Lakeside Middle School"),
        ("phone", "", "+15550100"),
        ("home_language", "es", ""),
    ]
    assert field_changes(after, after, SCHOOLS) == []


def test_a_long_value_is_cut_in_the_report():
    (change,) = field_changes({"title": "x"}, {"title": "y" * 1_000})

    assert len(change["after"]) == 200 and change["after"].endswith("…")


# -- the district's index page ---------------------------------------------------------------------------


def _run(run_id: str, day: int, created: int, status: str = "succeeded", dry_run: bool = False) -> RunRow:
    return RunRow(
        run_id=run_id,
        started_at=f"2026-11-{day:02d}T07:00:00+00:00",
        status=status,
        trigger="schedule",
        dry_run=dry_run,
        counts={"students": {"created": created, "errors": 1 if status == "failed" else 0}},
        link=f"https://example.test/{run_id}/report.html?X-Amz-Signature=1",
    )


def test_the_index_lists_runs_newest_first_with_links_and_puts_the_trend_on_one_scale():
    runs = [_run("r-3", 3, 10), _run("r-2", 2, 400, "failed"), _run("r-1", 1, 200), _run("r-0", 1, 5, dry_run=True)]

    page = render_index("d-1", "Springfield <Unified>", "America/New_York", runs, [], None, True).decode()

    # the latest run is the headline, in the district's time zone
    assert '<h1 id="verdict">Last sync: Synced, 3 Nov 2026, 02:00 EST</h1>' in page
    # every run links its report; self-checks are marked
    assert page.count("X-Amz-Signature=1") == 4 and ">Self-check</td>" in page
    # the trend: real runs only, oldest first, every bar on the scale of the largest (400 → 120 px)
    heights = [int(h) for h in re.findall(r'<rect [^>]*height="(\d+)"', page)]
    assert heights == [60, 120, 3]
    assert "Springfield &lt;Unified&gt;" in page and "<Unified>" not in page
    assert "No scheduled sync is coming" in page


def test_the_index_shows_the_next_run_and_a_row_per_school():
    schools = [SchoolRow("Summit High School", students=420, teachers=31, classrooms=88, changed=12, leaving=3)]

    page = render_index(
        "d-1", "Springfield", "America/New_York", [_run("r-1", 1, 2)], schools, "2026-12-01T07:00:00+00:00", True
    ).decode()

    assert "Next scheduled sync: 1 Dec 2026, 02:00 EST." in page
    row = page[page.index("<td>Summit High School</td>") :]
    assert [int(n) for n in re.findall(r'<td class="n">(\d+)</td>', row)[:5]] == [420, 31, 88, 12, 3]
    assert page.count("<caption>") == page.count("<table")


def test_the_index_of_an_sftp_district_says_which_upload_each_run_read_and_when_it_came():
    # The SIS export stopped after the 1st: the same file name each night, and the same upload since
    same = {"upload_name": "roster.zip", "uploaded_at": "2026-11-01T06:30:00+00:00"}
    runs = [
        RunRow(**{**_run("r-3", 3, 0).__dict__, **same}),
        RunRow(**{**_run("r-2", 2, 0).__dict__, **same}),
        RunRow(**{**_run("r-1", 1, 200).__dict__, **same}),
    ]

    page = render_index("d-1", "Springfield", "America/New_York", runs, [], None, True).decode()

    assert '<th scope="col">Upload read</th>' in page
    assert page.count("<td><code>roster.zip</code><br>") == 3
    assert page.count('<span class="small">uploaded 1 Nov 2026, 01:30 EST</span>') == 3
    # the counts keep their columns, numbers right-aligned
    row = page[page.index("<td><code>roster.zip</code>") :]
    assert re.findall(r'<td class="n">(\d+)</td>', row)[:4] == ["0", "0", "0", "0"]
    assert [h for h in re.findall(r'<th scope="col" class="n">(\w+)</th>', page)][:4] == [
        "Created",
        "Updated",
        "Archived",
        "Errors",
    ]
    # An API district's index has no such column
    assert "Upload read" not in render_index("d-1", "", "UTC", [_run("r-1", 1, 2)], [], None, True).decode()


def test_the_index_of_a_district_not_yet_enabled_says_what_to_do():
    page = render_index("d-1", "", "UTC", [], [], None, False).decode()

    assert "No run yet" in page and "rostersync enable" in page


def test_a_value_equal_to_the_old_one_but_shown_differently_is_still_a_change():
    (change,) = field_changes({"active": True, "grade": "3"}, {"active": 1, "grade": "3"})

    assert change == {"field": "active", "before": "yes", "after": "1"}
