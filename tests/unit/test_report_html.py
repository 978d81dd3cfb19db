"""report.html: the verdict first, who and what changed, readable on a phone, links that work (issue 14).

The page as Chromium lays it out is checked in tests/e2e/test_report_in_a_browser.py; these tests read
the markup.
"""

from __future__ import annotations

import re

import pytest

from rostersync.domain.records import Kind
from rostersync.reports import html
from rostersync.reports.html import localise_links, render_html
from rostersync.reports.model import (
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
from rostersync.settings import SyncSettings


def _report(**changes: object) -> SyncReport:
    fields: dict[str, object] = {
        "district_id": "d-1042",
        "district_name": "Springfield Unified",
        "run_id": "run-7f3a",
        "trigger": "schedule",
        "status": RunStatus.SUCCEEDED,
        "started_at": "2025-11-28T07:56:12+00:00",
        "finished_at": "2025-11-28T08:03:40+00:00",
        "timezone": "America/New_York",
    }
    fields.update(changes)
    return SyncReport.model_validate(fields)


def _line(action: LineAction, name: str, kind: Kind = Kind.STUDENTS, **more: object) -> ReportLine:
    return ReportLine.model_validate(
        {"kind": kind, "action": action, "provider_id": f"p-{name}", "id": f"u-{name}", "name": name, **more}
    )


def _lists(*lines: ReportLine) -> dict[str, object]:
    lists: dict[Kind, dict[LineAction, list[ReportLine]]] = {}
    totals: dict[Kind, dict[LineAction, int]] = {}
    for line in lines:
        lists.setdefault(line.kind, {}).setdefault(line.action, []).append(line)
        totals.setdefault(line.kind, {}).setdefault(line.action, 0)
        totals[line.kind][line.action] += 1
    return {"lists": lists, "list_totals": totals}


def _item(status: ReadinessStatus, check: str, detail: str = "Found.", action: str = "") -> ReadinessItem:
    return ReadinessItem(status=status, check=check, detail=detail, action=action)


CLEAN = [_item(ReadinessStatus.PASS, "Roster fetched completely", "Every page of the roster was read.")]
ARCHIVED = _line(
    LineAction.ARCHIVED, "Ben Ode", sis_id="100235", school="Summit High School", grade="11", reason="left the roster"
)


def _badge(page: str) -> str:
    return re.search(r'<h1 id="verdict"><span class="badge"[^>]*>([^<]+)</span>', page).group(1)


# -- the verdict first --------------------------------------------------------------------------------


def test_a_real_run_opens_with_its_verdict_then_what_needs_the_admin_then_who_then_the_numbers():
    report = _report(
        counts={Kind.STUDENTS: KindCounts(created=3, archived=1)},
        readiness=CLEAN,
        files={"students.csv": "runs/d-1042/run-7f3a/report/students.csv"},
        **_lists(ARCHIVED),
    )

    page = render_html(report).decode()

    assert _badge(page) == "Everything synced"
    assert "The sync created 3 students and archived 1 student. Nothing needs you." in page
    assert (
        page.index('id="verdict"') < page.index('id="needs-you"') < page.index('id="who"') < page.index('id="numbers"')
    )
    # the run id is out of the headline: it is in the footer
    assert "run-7f3a" not in page[: page.index("</header>")]
    assert "Run run-7f3a" in page[page.index("<footer>") :]


@pytest.mark.parametrize(
    ("changes", "badge"),
    [
        ({"status": RunStatus.SUCCEEDED_WITH_ERRORS, "errors_total": 2}, "Synced, 2 to review"),
        ({"status": RunStatus.THRESHOLD_EXCEEDED}, "Held: approve or discard"),
        ({"status": RunStatus.FAILED, "failure_reason": "Clever refused our token."}, "Failed: nothing archived"),
        ({"dry_run": True, "readiness": CLEAN}, "Ready for the first sync"),
        (
            {"dry_run": True, "readiness": [*CLEAN, _item(ReadinessStatus.FAIL, "Schools matched")]},
            "Not ready: 1 to fix",
        ),
    ],
)
def test_every_run_has_a_badge_that_says_what_to_do(changes, badge):
    page = render_html(_report(**changes)).decode()

    assert _badge(page) == badge


def test_a_failed_run_says_why_in_its_first_sentence():
    reason = "Clever refused our credentials. Reconnect the app in Clever, then run the sync again."
    page = render_html(_report(status=RunStatus.FAILED, failure_reason=reason)).decode()

    header = page[: page.index("</header>")]
    assert f"The sync did not finish. {reason}" in header


def test_times_are_shown_in_the_districts_time_zone():
    page = render_html(_report()).decode()

    # 08:03 UTC on 28 November is 03:03 in New York (EST)
    assert "Finished 28 Nov 2025, 03:03 EST" in page
    assert "America/New_York" in page
    assert "UTC" not in page


def test_an_sftp_districts_run_names_the_upload_it_read_and_when_it_came():
    upload = {"name": "night-3/bundle.zip", "uploaded_at": "2025-11-28T06:40:05+00:00"}
    page = render_html(_report(provider="oneroster", upload=upload)).decode()

    line = re.search(r'<p class="facts" id="upload">(.*?)</p>', page).group(1)
    assert line == "From the upload <code>night-3/bundle.zip</code>, uploaded 28 Nov 2025, 01:40 EST."
    # An API district's run read no upload: no line
    assert 'id="upload"' not in render_html(_report()).decode()


def test_an_upload_a_day_or_more_older_than_the_run_says_how_old_it_is():
    # A scheduled run reads the latest upload: when the SIS export stopped, it is the same one every night
    stale = {"name": "2025-11-25/", "uploaded_at": "2025-11-25T07:00:00+00:00"}
    page = render_html(_report(provider="oneroster", upload=stale)).decode()

    line = re.search(r'<p class="facts" id="upload">(.*?)</p>', page).group(1)
    assert "<code>2025-11-25/</code>" in line and "<strong>3 days before this run</strong>" in line
    # S3 could not tell when (the object was removed since): the name alone
    unknown = render_html(_report(provider="oneroster", upload={"name": "night-3/bundle.zip"})).decode()
    assert re.search(r'id="upload">From the upload <code>night-3/bundle.zip</code>\.</p>', unknown)


def test_a_self_check_says_once_that_nothing_was_written_and_labels_what_it_would_do():
    report = _report(
        dry_run=True,
        trigger="self_check",
        readiness=CLEAN,
        notes=["Self-check: nothing was written. The counts show what the first sync would do."],
        counts={Kind.STUDENTS: KindCounts(created=40, linked=12, would_archive=3)},
    )

    page = render_html(report).decode()

    assert page.count("nothing was written") == 1
    assert ">Would create</th>" in page and ">Would archive</th>" in page
    assert ">Created</th>" not in page and ">Archived</th>" not in page
    assert "The first sync would create 40 students, link 12 students and archive 3 students." in page


# -- who and what -------------------------------------------------------------------------------------


def test_archived_people_are_listed_by_name_district_id_school_grade_and_reason():
    page = render_html(_report(**_lists(ARCHIVED))).decode()

    who = page[page.index('id="who"') :]
    assert "<caption>Students archived (1)</caption>" in who
    for text in ("Ben Ode", "100235", "Summit High School", "11", "left the roster"):
        assert f">{text}</td>" in who


def test_an_update_shows_each_changed_field_before_and_after():
    updated = _line(
        LineAction.UPDATED,
        "Ana Ruiz",
        changes=[FieldChange(field="email", before="ana@old.example", after="ana@new.example")],
    )

    page = render_html(_report(**_lists(updated))).decode()

    assert "What changed (before → after)" in page
    assert '<strong>email</strong>: <span class="was">ana@old.example</span>' in page
    assert "→</span>ana@new.example" in page


def test_a_long_list_shows_its_first_50_and_links_the_full_csv():
    lines = [_line(LineAction.CREATED, f"Kid {i}") for i in range(50)]
    data = _lists(*lines)
    data["list_totals"] = {Kind.STUDENTS: {LineAction.CREATED: 2_000}}
    report = _report(files={"students.csv": "runs/d/r/report/students.csv"}, **data)

    page = render_html(report).decode()

    assert "<caption>Students created (2,000)</caption>" in page
    assert "The first 50 of 2,000; all of them in" in page
    assert '<a data-file="students.csv" href="students.csv">students.csv</a>' in page


def test_errors_show_provider_id_district_id_file_row_and_fix():
    error = ReportError(
        kind=Kind.STUDENTS,
        provider_id="u-9",
        sis_id="100999",
        reason="users.csv line 12: an unclosed quote; skipped. Fix the quote in the export",
    )

    page = render_html(_report(status=RunStatus.SUCCEEDED_WITH_ERRORS, errors=[error])).decode()

    needs = page[page.index('id="needs-you"') : page.index('id="who"')]
    assert "<code>u-9</code>" in needs and ">100999</td>" in needs
    assert ">users.csv row 12</td>" in needs
    assert ">Fix the quote in the export</td>" in needs


def test_a_held_run_lists_the_records_held_back_in_what_needs_the_admin():
    breach = ThresholdBreach(would_archive=2, managed=10, percent=20, limit_percent=10)
    held = _line(LineAction.WOULD_ARCHIVE, "Cy Park", sis_id="7", reason="held back by the deletion threshold")
    report = _report(
        status=RunStatus.THRESHOLD_EXCEEDED,
        threshold={Kind.STUDENTS: breach},
        notes=[breach.note(Kind.STUDENTS)],
        counts={Kind.STUDENTS: KindCounts(would_archive=2)},
        files={"students.csv": "k"},
        **_lists(held),
    )

    page = render_html(report).decode()

    assert "2 records were held back from archiving" in page
    assert "Deletion threshold exceeded for students: 2 of 10 (20 %)" in page
    assert ">Cy Park</td>" in page and "2 held back" in page


# -- readable, self-contained, escaped -----------------------------------------------------------------


def test_every_table_has_a_caption_and_a_header_row_and_scrolls_in_its_own_box():
    findings = Findings.model_validate({"unmatched_provider_schools": [{"provider_id": "c-9", "name": "Oak"}]})
    error = ReportError(kind=Kind.GUARDIANS, provider_id="g-1", reason="no email")
    report = _report(
        dry_run=True,
        readiness=[*CLEAN, _item(ReadinessStatus.WARN, "Duplicates")],
        findings=findings,
        errors=[error],
        **_lists(ARCHIVED),
    )

    page = render_html(report).decode()

    tables = page.count("<table")
    assert tables >= 5
    assert page.count("<caption>") == tables
    assert page.count("<thead>") == tables
    assert page.count('<div class="box" role="region" tabindex="0"') == tables


def test_the_page_needs_no_script_and_no_outside_resource():
    page = render_html(_report(**_lists(ARCHIVED))).decode()

    assert "<script" not in page
    assert "http" not in page
    assert '<meta name="viewport" content="width=device-width,initial-scale=1">' in page


def test_roster_values_are_escaped_everywhere():
    evil = "<script>alert(1)</script>"
    report = _report(
        district_name=evil,
        errors=[ReportError(kind=Kind.STUDENTS, provider_id='"><img src=x>', reason=evil)],
        **_lists(_line(LineAction.UPDATED, evil, changes=[FieldChange(field="email", before=evil, after=evil)])),
    )

    page = render_html(report).decode()

    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _relative_luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(one: str, two: str) -> float:
    a, b = sorted((_relative_luminance(one), _relative_luminance(two)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_every_text_colour_reads_at_4_5_to_1_or_more_on_the_pages_backgrounds():
    # The page's backgrounds: the body, cards, table headers, callouts; each badge's on its own background.
    backgrounds = ("#ffffff", "#f4f5f7", "#eef0f3")
    text = {c.lower() for c in re.findall(r"(?<![-\w])color:(#[0-9a-fA-F]{6})", html._CSS)}
    assert text  # the CSS names its text colours
    for colour in text:
        for background in backgrounds:
            assert _contrast(colour, background) >= 4.5, (colour, background)
    for colour, background in (html._GOOD, html._LOOK, html._HELD, html._BAD):
        assert _contrast(colour, background) >= 4.5, (colour, background)


# -- links ---------------------------------------------------------------------------------------------


def test_presigned_links_are_used_and_their_expiry_is_stated():
    report = _report(
        files={"students.csv": "runs/d/r/report/students.csv", "errors.csv": "runs/d/r/report/errors.csv"},
        links_expire_at="2025-11-28T09:03:40+00:00",
    )
    links = {"students.csv": "http://127.0.0.1:4566/b/students.csv?X-Amz-Signature=abc&amp"}

    page = render_html(report, links).decode()

    assert 'href="http://127.0.0.1:4566/b/students.csv?X-Amz-Signature=abc&amp;amp"' in page
    assert 'href="errors.csv"' in page  # a file given no link is linked by its name
    assert "These download links work until 28 Nov 2025, 04:03 EST" in page


def test_a_downloaded_copy_links_its_files_by_name_and_drops_the_expiry():
    report = _report(files={"students.csv": "k"}, links_expire_at="2025-11-28T09:03:40+00:00")
    page = render_html(report, {"students.csv": "http://x.test/students.csv?X-Amz-Signature=1"})

    local = localise_links(page).decode()

    assert '<a data-file="students.csv" href="students.csv">' in local
    assert "X-Amz-Signature" not in local and "work until" not in local


def test_the_settings_a_run_used_read_in_words_with_their_key_in_small_print():
    settings = SyncSettings.model_validate({"classrooms": {"name_template": "{course} <b>{period}</b>"}})
    page = render_html(_report(settings_version=3, settings=settings.model_dump(mode="json"))).decode()

    assert "Settings this run used (version 3)" in page
    assert '<code class="small">classrooms.name_template</code>' in page
    assert "The name of a synced classroom" in page
    assert "&lt;b&gt;{period}&lt;/b&gt;" in page and "<b>{period}</b>" not in page
    assert '{"' not in page  # no raw JSON


def test_a_huge_districts_page_stays_small_its_lists_cut_at_50_each():
    # Given a report writer fed 60 long lines of every kind and action (a huge district's every list)
    from rostersync.reports.writer import CsvReportWriter

    with CsvReportWriter() as writer:
        for kind in Kind:
            for action in LineAction:
                writer.add_all(
                    _line(action, f"{'Maximiliana-Josefina ' * 3}{n}", kind, sis_id="9" * 12, reason="r" * 120)
                    for n in range(60)
                )
        writer.finish()
    report = _report(lists=writer.lists, list_totals=writer.list_totals)

    page = render_html(report)

    # Then each list shows 50 and points at the rest, and the page stays far under Lambda's limits
    assert page.count(b"The first 50 of 60; all of them in") == len(Kind) * len(LineAction)
    assert len(page) < 3_500_000
