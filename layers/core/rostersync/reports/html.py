"""Render ``report.html``: what a district admin reads after a run, on a desk or on a phone.

The page opens with the verdict (a badge and one sentence), then what needs the admin, then who and what
changed (names, the district's own ids, school, grade, reason; before → after for updates), then the
numbers. One self-contained page: inline CSS, no script, no outside resource. Times are shown in the
district's time zone. Tables reflow: each sits in its own scrolling box, so the page itself never scrolls
sideways on a 390 px phone. Colours keep text contrast at 4.5:1 or more (WCAG AA).

Each list shows its first ``LIST_SHOWN`` lines; the kind's CSV file lists every one. The file links are
whatever ``links`` says (the Report step passes presigned URLs, with their expiry stated on the page; a
downloaded copy uses the file names: ``localise_links``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rostersync.domain.records import Kind
from rostersync.reports.cost import describe_cost
from rostersync.reports.model import (
    KIND_LABELS,
    KIND_SINGULAR,
    LIST_SHOWN,
    Findings,
    KindCounts,
    LineAction,
    ReadinessStatus,
    ReportLine,
    RunStatus,
    SyncReport,
)
from rostersync.reports.writer import ERRORS_FILE, csv_file_name
from rostersync.settings import SyncSettings

HTML_ERRORS_SHOWN = LIST_SHOWN


# -- words ----------------------------------------------------------------------------------------------

_PROVIDERS = {"clever": "Clever", "classlink": "ClassLink", "oneroster": "OneRoster", "sftp": "SFTP upload"}
_TRIGGERS = {
    "enabled": "started when sync was enabled",
    "schedule": "started on schedule",
    "manual": "started by hand",
    "self_check": "started as a self-check",
    "upload": "started by a file upload",
}
# What each list is called, in a real run and in a self-check (where nothing is done, only would be).
_ACTION_WORDS: dict[LineAction, tuple[str, str]] = {
    LineAction.POSSIBLE_DUPLICATE: ("possible duplicates, not merged", "possible duplicates, would not be merged"),
    LineAction.AMBIGUOUS: ("matching several product accounts, not linked", "matching several product accounts"),
    LineAction.EDIT_OVERWRITTEN: ("product edits replaced by the roster", "product edits the roster would replace"),
    LineAction.SKIPPED: ("skipped", "would be skipped"),
    LineAction.ERROR: ("not synced", "could not be synced"),
    LineAction.WOULD_ARCHIVE: ("held back from archiving", "would be archived"),
    LineAction.ARCHIVED: ("archived", "would be archived"),
    LineAction.CREATED: ("created", "would be created"),
    LineAction.LINKED: ("linked to existing product records", "would be linked to existing product records"),
    LineAction.UPDATED: ("updated", "would be updated"),
    LineAction.RESTORED: ("restored", "would be restored"),
    LineAction.MERGED: ("given one account for several roles", "would get one account for several roles"),
    LineAction.SEPARATE_ACCOUNT: ("kept as separate accounts", "would keep separate accounts"),
    LineAction.EDIT_KEPT: ("product edits kept over the roster", "product edits that would be kept"),
}
_REVIEW = (LineAction.POSSIBLE_DUPLICATE, LineAction.AMBIGUOUS, LineAction.EDIT_OVERWRITTEN)
_LIST_ORDER = (
    LineAction.ARCHIVED,
    LineAction.WOULD_ARCHIVE,
    LineAction.CREATED,
    LineAction.RESTORED,
    LineAction.UPDATED,
    LineAction.LINKED,
    LineAction.SKIPPED,
    LineAction.ERROR,
    LineAction.MERGED,
    LineAction.SEPARATE_ACCOUNT,
    LineAction.EDIT_KEPT,
)
_COLUMNS = ("created", "updated", "linked", "restored", "archived", "unchanged", "skipped", "errors")
_DRY_COLUMNS = ("created", "updated", "linked", "restored", "would_archive", "unchanged", "skipped", "errors")
_COLUMN_LABELS = {"would_archive": "Would archive"}
_DRY_LABELS = {
    "created": "Would create",
    "updated": "Would update",
    "linked": "Would link",
    "restored": "Would restore",
    "would_archive": "Would archive",
    "skipped": "Would skip",
}
_CODE = re.compile(r"`([^`]+)`")

# Badge styles: (text colour, background). Every pair is ≥ 7:1; the words, not the colour, carry the verdict.
_GOOD, _LOOK = ("#0b4a22", "#d5f5df"), ("#5c3800", "#ffeab0")
_HELD, _BAD = ("#6e2900", "#ffdcc7"), ("#7a0e12", "#ffd7d9")
_READINESS = {
    ReadinessStatus.PASS: ("Pass", _GOOD),
    ReadinessStatus.WARN: ("Review", _LOOK),
    ReadinessStatus.FAIL: ("Fix", _BAD),
}

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d2330;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
Helvetica,Arial,sans-serif;overflow-wrap:anywhere}
main{max-width:1000px;margin:0 auto;padding:16px 16px 40px}
header.top{background:#fff;border-radius:10px;padding:16px 18px;box-shadow:0 1px 2px #0002}
.district{margin:0;color:#414857;font-size:14px}
h1{margin:6px 0 4px;font-size:24px;line-height:1.25}
h2{font-size:19px;margin:28px 0 8px}h3{font-size:16px;margin:18px 0 6px}
.badge{display:inline-block;padding:2px 12px;border-radius:999px;font-weight:700;font-size:15px;
border:1px solid currentColor;overflow-wrap:normal}
td .badge{white-space:nowrap;font-size:13px;padding:1px 8px}
th{overflow-wrap:normal}
.sentence{font-size:17px;margin:8px 0 6px}
.facts{margin:8px 0 0;color:#414857;font-size:14px}
.small{font-size:13px;color:#414857}
code{font-size:.92em;background:#eef0f3;padding:0 3px;border-radius:3px}
.callout{border-left:5px solid #b35900;border-radius:6px;padding:10px 14px;margin:12px 0;background:#fff}
.callout.fail{border-color:#b3261e}.callout strong{display:block}
.box{overflow-x:auto;background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002;margin:6px 0 4px}
.box:focus{outline:2px solid #0b57d0}
table{border-collapse:collapse;width:100%;font-size:15px}
caption{text-align:left;font-weight:700;padding:10px 12px 4px;caption-side:top}
th,td{padding:6px 12px;text-align:left;border-bottom:1px solid #e2e5ea;vertical-align:top}
thead th{background:#eef0f3;font-size:13px;color:#2b3240}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.zero{color:#4f5766}.err{color:#7a0e12;font-weight:700}
.held{display:block;color:#6e2900;font-size:12px}
.more{margin:2px 0 14px;font-size:15px}
.was{color:#414857}.arrow{padding:0 4px}
ul.files{background:#fff;border-radius:8px;padding:10px 16px 10px 34px;box-shadow:0 1px 2px #0002;margin:6px 0}
dl.settings{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:4px 16px;background:#fff;
padding:10px 14px;border-radius:8px}
dl.settings dt{margin:0}dl.settings dd{margin:0;font-weight:600}
a{color:#0b57d0}
footer{margin-top:28px;color:#414857;font-size:13px}
@media (max-width:600px){
 main{padding:10px 8px 32px}h1{font-size:21px}
 table.list thead{position:absolute;left:-9999px}
 table.list tr{display:block;border-bottom:1px solid #e2e5ea;padding:6px 0}
 table.list td{display:block;border:0;padding:1px 12px}
 table.list td[data-label]::before{content:attr(data-label) ": ";color:#414857;font-size:13px}
 table.list td.who{font-weight:700}
 dl.settings{grid-template-columns:minmax(0,1fr)}dl.settings dd{margin-bottom:6px}
}
details>summary{cursor:pointer;font-weight:700;padding:8px 0}
@media print{body{background:#fff}.box{overflow:visible;box-shadow:none}header.top{box-shadow:none}a{color:#000}}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _with_code(text: str) -> str:
    """Escape ``text`` and show its `backticked` commands as code (escaped first, so nothing else is markup)."""
    return _CODE.sub(r"<code>\1</code>", _e(text))


def district_zone(name: str) -> ZoneInfo | None:
    """The district's time zone by its IANA name; None when it is unknown (times then show in UTC)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _zone(report: SyncReport) -> ZoneInfo | None:
    return district_zone(report.timezone)


def when(iso: str, zone: ZoneInfo | None) -> str:
    """A moment in the district's time zone: ``1 Dec 2026, 02:14 EST`` (UTC when the zone is unknown)."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso or "—"
    if moment.tzinfo is None:
        return f"{moment.day} {moment:%b %Y, %H:%M}"
    local = moment.astimezone(zone or UTC)
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname() or ''}".rstrip()


def took(started_at: str, finished_at: str) -> str:
    """How long a run took, in words (``2 min 05 s``); ``—`` when it cannot be told."""
    try:
        start, end = datetime.fromisoformat(started_at), datetime.fromisoformat(finished_at)
        seconds = max(0, round((end - start).total_seconds()))
    except (TypeError, ValueError):
        return "—"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _n(count: int, kind: Kind) -> str:
    return f"{count:,} {KIND_SINGULAR[kind] if count == 1 else KIND_LABELS[kind].lower()}"


def _links(report: SyncReport, links: Mapping[str, str] | None) -> dict[str, str]:
    names = [name for name in report.files if name.endswith(".csv")]
    given = dict(links or {})
    return {name: given.get(name, quote(name)) for name in names}


def _a(links: Mapping[str, str], name: str, text: str | None = None) -> str:
    """A link to one of the run's files; plain text when the run wrote no such file."""
    if name not in links:
        return _e(text or name)
    return f'<a data-file="{_e(name)}" href="{_e(links[name])}">{_e(text or name)}</a>'


# -- the verdict ---------------------------------------------------------------------------------------


def _review_total(report: SyncReport) -> int:
    """How many things need a look: the checklist's review items (which cover errors, duplicates and
    overwritten edits); without a checklist, the errors and review lines themselves."""
    if report.readiness:
        return len(report.to_review)
    lines = sum(report.list_totals.get(kind, {}).get(action, 0) for kind in Kind for action in _REVIEW)
    return lines + report.errors_total


def verdict(report: SyncReport) -> tuple[str, tuple[str, str], str]:
    """The badge's words, its colours, and the one sentence that says what the admin should know first."""
    changed = _changed_words(report)
    review = _review_total(report)
    if report.status is RunStatus.NOT_ENTITLED:
        reason = report.failure_reason or "The district's plan does not include roster sync."
        return "Not entitled: nothing synced", _BAD, f"The sync did not run. {reason}"
    if report.status is RunStatus.FAILED:
        reason = report.failure_reason or "No reason was recorded; the rostersync team can trace it by the run id."
        return "Failed: nothing archived", _BAD, f"The sync did not finish. {reason}"
    if report.dry_run:
        fix = len(report.to_fix)
        if fix:
            return (
                f"Not ready: {fix:,} to fix",
                _BAD,
                f"Fix {'this' if fix == 1 else 'these'} {fix:,} {'item' if fix == 1 else 'items'} before enabling "
                f"sync; nothing was changed. The first sync would {changed or 'change nothing'}.",
            )
        more = f" {review:,} to look at first." if review else ""
        return (
            "Ready for the first sync",
            _GOOD if not review else _LOOK,
            f"Nothing was changed. The first sync would {changed or 'change nothing'}.{more}",
        )
    if report.status in (RunStatus.THRESHOLD_EXCEEDED, RunStatus.NEEDS_REVIEW):
        held = sum(c.would_archive for c in report.counts.values())
        what = f"{held:,} records were held back from archiving" if held else "some records were held back"
        return (
            "Held: approve or discard",
            _HELD,
            f"The sync went ahead, but {what}: check the list below. If it is right, approve it "
            f"(`rostersync runs approve {report.run_id}`); if not, keep the records "
            f"(`rostersync runs discard {report.run_id}`) and fix the export. "
            + (f"It also {changed}." if changed else ""),
        )
    if review:
        return (
            f"Synced, {review:,} to review",
            _LOOK,
            f"The sync {changed or 'changed nothing'}. {review:,} {'thing needs' if review == 1 else 'things need'} "
            "a look: see “What needs you” below.",
        )
    return "Everything synced", _GOOD, f"The sync {changed or 'found nothing to change'}. Nothing needs you."


def _changed_words(report: SyncReport) -> str:
    """``created 3 students, archived 15 students and restored 1 student`` (people first, then the rest);
    in a self-check the same in the infinitive (``create 3 students``)."""
    order = (Kind.STUDENTS, Kind.TEACHERS, Kind.STAFF, Kind.GUARDIANS, Kind.CLASSROOMS, Kind.SCHOOLS)
    if report.dry_run:
        verbs = {
            "created": "create",
            "updated": "update",
            "linked": "link",
            "restored": "restore",
            "would_archive": "archive",
        }
    else:
        verbs = {v: v for v in ("created", "updated", "linked", "restored", "archived")}
    parts = []
    for field, word in verbs.items():
        counts = [(kind, getattr(report.counts[kind], field)) for kind in order]
        said = ", ".join(_n(n, kind) for kind, n in counts if n)
        if said:
            parts.append(f"{word} {said}")
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _overview(report: SyncReport, links: Mapping[str, str] | None) -> str:
    """The link to the district's index page (its runs, trend, schools, next run), when the run wrote one."""
    if "index.html" not in report.files:
        return ""
    href = (links or {}).get("index.html", "index.html")
    return (
        f'<p class="small">All runs, the next scheduled sync and every school: '
        f'<a data-file="index.html" href="{_e(href)}">district overview</a>.</p>'
    )


def _upload(report: SyncReport, zone: ZoneInfo | None) -> str:
    """Which uploaded bundle the run read, and when it was uploaded: a day or more before the run, in words
    too (an SIS export that stopped leaves the same upload to be read again)."""
    if report.upload is None:
        return ""
    sentence = f"From the upload <code>{_e(report.upload.name)}</code>"
    if report.upload.uploaded_at:
        sentence += f", uploaded {_e(when(report.upload.uploaded_at, zone))}"
        try:
            age = datetime.fromisoformat(report.started_at) - datetime.fromisoformat(report.upload.uploaded_at)
        except (TypeError, ValueError):
            age = None
        days = age.days if age is not None else 0
        if days >= 1:
            sentence += f" — <strong>{days} day{'s' if days > 1 else ''} before this run</strong>"
    return f'<p class="facts" id="upload">{sentence}.</p>'


def _header(report: SyncReport, zone: ZoneInfo | None, overview: str = "") -> str:
    badge, (colour, background), sentence = verdict(report)
    provider = _PROVIDERS.get(report.provider, report.provider)
    trigger = _TRIGGERS.get(report.trigger, "started by " + report.trigger.replace("_", " "))
    kind = "Self-check (nothing was written)" if report.dry_run else "Roster sync"
    zone_name = report.timezone if zone else "UTC"
    facts = (
        f"Finished {_e(when(report.finished_at, zone))} · took {_e(took(report.started_at, report.finished_at))} · "
        f"{_e(provider)} · {_e(trigger)}"
    )
    return (
        '<header class="top">'
        f'<p class="district">{_e(report.district_name or report.district_id)} · {_e(kind)}</p>'
        f'<h1 id="verdict"><span class="badge" style="color:{colour};background:{background}">{_e(badge)}</span></h1>'
        f'<p class="sentence">{_with_code(sentence)}</p>'
        f'<p class="facts">{facts}</p>'
        f"{_upload(report, zone)}"
        f'<p class="small">Times in the district\'s time zone ({_e(zone_name)}; settings '
        "<code>schedule.timezone</code>).</p>"
        f"{overview}</header>"
    )


# -- what needs the admin ------------------------------------------------------------------------------


def _readiness(report: SyncReport, items_shown: list[Any]) -> str:
    rows = []
    for item in items_shown:
        label, (colour, background) = _READINESS[item.status]
        action = f'<br><span class="small">→ {_with_code(item.action)}</span>' if item.action else ""
        rows.append(
            f'<tr><td><span class="badge" style="color:{colour};background:{background}">{_e(label)}</span></td>'
            f"<td><strong>{_e(item.check)}</strong><br>{_with_code(item.detail)}{action}</td></tr>"
        )
    caption = "Readiness checklist" if report.dry_run else "Checks"
    return _table(caption, ("Verdict", "Check"), "".join(rows))


def _needs_you(report: SyncReport, links: Mapping[str, str]) -> str:
    parts: list[str] = []
    if report.status is RunStatus.FAILED and report.failure_reason:
        parts.append(
            f'<div class="callout fail"><strong>The sync did not finish</strong>{_e(report.failure_reason)}</div>'
        )
    notes = [note for note in report.notes if not note.startswith("Self-check:")]
    parts += [f'<div class="callout">{_with_code(note)}</div>' for note in notes]
    if report.threshold:
        files = ", ".join(_a(links, csv_file_name(kind)) for kind in report.threshold)
        parts.append(f'<p>The records held back are listed below and in {files} ("would_archive").</p>')
    for kind in Kind:
        for action in _REVIEW:
            parts.append(_list(report, kind, action, links))
    if report.errors_total:
        parts.append(_errors(report, links))
    flagged = [item for item in report.readiness if item.status is not ReadinessStatus.PASS]
    if report.dry_run and report.readiness:
        parts.append(_readiness(report, report.readiness))
    elif flagged:
        parts.append(_readiness(report, flagged))
    body = "".join(p for p in parts if p)
    if not body:
        return '<h2 id="needs-you">What needs you</h2><p>Nothing: no errors, nothing held back, nothing to review.</p>'
    return f'<h2 id="needs-you">What needs you</h2>{body}'


# -- who and what --------------------------------------------------------------------------------------


def _table(caption: str, head: tuple[str, ...], rows: str, css: str = "", numeric: tuple[int, ...] = ()) -> str:
    numeric_class = ' class="n"'
    cells = "".join(f'<th scope="col"{numeric_class if i in numeric else ""}>{_e(h)}</th>' for i, h in enumerate(head))
    klass = f' class="{css}"' if css else ""
    return (
        f'<div class="box" role="region" tabindex="0" aria-label="{_e(caption)}">'
        f"<table{klass}><caption>{_e(caption)}</caption><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _changes(line: ReportLine) -> str:
    return "<br>".join(
        f'<strong>{_e(c.field)}</strong>: <span class="was">{_e(c.before or "(empty)")}</span>'
        f'<span class="arrow" aria-label="became">→</span>{_e(c.after or "(empty)")}'
        for c in line.changes
    )


def _list(report: SyncReport, kind: Kind, action: LineAction, links: Mapping[str, str]) -> str:
    lines = report.lists.get(kind, {}).get(action, [])
    total = report.list_totals.get(kind, {}).get(action, len(lines))
    if not lines:
        return ""
    done, would = _ACTION_WORDS[action]
    caption = f"{KIND_LABELS[kind]} {would if report.dry_run else done} ({total:,})"
    has_changes = any(line.changes for line in lines)
    last = "What changed (before → after)" if has_changes else "Why"
    head = ("Name", "District ID", "School", "Grade", last)
    rows = []
    for line in lines:
        why = _changes(line) if line.changes else _e(line.reason)
        if line.changes and line.reason:
            why += f'<br><span class="small">{_e(line.reason)}</span>'
        rows.append(
            f'<tr><td class="who" data-label="Name">{_e(line.name or "(no name)")}</td>'
            f'<td data-label="District ID">{_e(line.sis_id or "—")}</td>'
            f'<td data-label="School">{_e(line.school or "—")}</td>'
            f'<td data-label="Grade">{_e(line.grade or "—")}</td>'
            f'<td data-label="{_e(last)}">{why or "—"}</td></tr>'
        )
    more = ""
    name = csv_file_name(kind)
    if total > len(lines):
        more = f'<p class="more">The first {len(lines):,} of {total:,}; all of them in {_a(links, name)}.</p>'
    return _table(caption, head, "".join(rows), "list") + more


_FOLDED = (Kind.ENROLLMENTS, Kind.GUARDIAN_LINKS)
"""Kinds whose lists start folded (``<details>``, no script): hundreds of lines a night that are about the
people listed above them; a phone would scroll through them to reach the numbers."""


# People first (who an admin is asked about), then classrooms and schools, then the links between them.
_WHO_ORDER = (
    Kind.STUDENTS,
    Kind.TEACHERS,
    Kind.STAFF,
    Kind.GUARDIANS,
    Kind.CLASSROOMS,
    Kind.SCHOOLS,
    Kind.ENROLLMENTS,
    Kind.GUARDIAN_LINKS,
)


def _who_and_what(report: SyncReport, links: Mapping[str, str]) -> str:
    blocks = []
    for kind in _WHO_ORDER:
        lists = "".join(_list(report, kind, action, links) for action in _LIST_ORDER)
        if lists and kind in _FOLDED:
            total = sum(report.list_totals.get(kind, {}).get(action, 0) for action in _LIST_ORDER)
            lists = f"<details><summary>{_e(KIND_LABELS[kind])} ({total:,} lines)</summary>{lists}</details>"
        blocks.append(lists)
    body = "".join(b for b in blocks if b)
    title = "Who and what the sync would change" if report.dry_run else "Who and what changed"
    if not body:
        return f'<h2 id="who">{title}</h2><p>No record was created, updated, linked, restored, archived or skipped.</p>'
    return f'<h2 id="who">{title}</h2>{body}'


# -- errors --------------------------------------------------------------------------------------------


def _errors(report: SyncReport, links: Mapping[str, str]) -> str:
    shown = report.errors[:HTML_ERRORS_SHOWN]
    rows = "".join(
        f'<tr><td data-label="Kind">{_e(KIND_LABELS[e.kind])}</td>'
        f'<td data-label="Provider ID"><code>{_e(e.provider_id or "—")}</code></td>'
        f'<td data-label="District ID">{_e(e.sis_id or "—")}</td>'
        f'<td data-label="Where">{_e(e.file or "—")}{_e(f" row {e.row}" if e.row is not None else "")}</td>'
        f'<td data-label="Problem">{_e(e.reason)}</td>'
        f'<td data-label="Fix">{_e(e.fix or "—")}</td></tr>'
        for e in shown
    )
    caption = f"Records not synced ({report.errors_total:,}): the rest of the sync went ahead"
    table = _table(caption, ("Kind", "Provider ID", "District ID", "Where", "Problem", "Fix"), rows, "list")
    more = ""
    if report.errors_total > len(shown):
        where = _a(links, ERRORS_FILE)
        more = f'<p class="more">The first {len(shown):,} of {report.errors_total:,}; all of them in {where}.</p>'
    return table + more


# -- the numbers ---------------------------------------------------------------------------------------


def _count_cell(value: int, counts: KindCounts, column: str, dry_run: bool) -> str:
    held = ""
    if column == "archived" and counts.would_archive:
        held = f'<span class="held">{counts.would_archive:,} held back</span>'
    css = "n zero" if value == 0 and not held else "n"
    if column == "errors" and value:
        css = "n err"
    return f'<td class="{css}">{value:,}{held}</td>'


def _numbers(report: SyncReport) -> str:
    columns = _DRY_COLUMNS if report.dry_run else _COLUMNS
    labels = _DRY_LABELS if report.dry_run else _COLUMN_LABELS
    head = ("Kind", *(labels.get(c, c.capitalize()) for c in columns))
    rows = "".join(
        f'<tr><th scope="row">{_e(KIND_LABELS[kind])}</th>'
        + "".join(_count_cell(getattr(counts, c), counts, c, report.dry_run) for c in columns)
        + "</tr>"
        for kind, counts in report.counts.items()
    )
    stopped = ""
    if report.status is RunStatus.FAILED:
        stopped = "<p>The numbers show what was done before the sync stopped.</p>"
    caption = "What the sync would do, by kind" if report.dry_run else "Records by kind"
    table = _table(caption, head, rows, "", tuple(range(1, len(head))))
    return f'<h2 id="numbers">The numbers</h2>{stopped}{table}'


def _school_rows(schools: list[tuple[str, str]]) -> str:
    return "".join(
        f'<tr><td data-label="School">{_e(name or "(no name)")}</td>'
        f'<td data-label="ID"><code>{_e(sid)}</code></td></tr>'
        for name, sid in schools
    )


def _findings(report: SyncReport, links: Mapping[str, str]) -> str:
    f: Findings = report.findings
    match = f"`rostersync schools match --district {report.district_id}`"
    blocks = []
    for title, schools, id_label, note in (
        (
            "Provider schools with no product school",
            [(s.name, s.provider_id) for s in f.unmatched_provider_schools],
            "Provider ID",
            f"Their students and staff are skipped until the school is matched: {match}.",
        ),
        (
            "Product schools linked to no provider school",
            [(s.name, s.id) for s in f.unlinked_product_schools],
            "Product ID",
            f"Nobody is synced into them. Match them with {match}.",
        ),
        (
            "Schools out of scope",
            [(s.name, s.provider_id) for s in f.out_of_scope_schools],
            "Provider ID",
            "Left out by the setting `schools_in_scope`.",
        ),
    ):
        if schools:
            blocks.append(
                _table(f"{title} ({len(schools):,})", ("School", id_label), _school_rows(schools), "list")
                + f'<p class="more">{_with_code(note)}</p>'
            )
    facts = [
        ("Sections without a teacher", f.sections_without_teacher),
        ("Students in no section", f.students_without_section),
        ("Sections with no linked classroom, given a new classroom", f.unlinked_sections.create),
        ("Sections with no linked classroom, skipped", f.unlinked_sections.skip),
        ("Duplicate candidates (same name and date of birth, not merged)", f.duplicate_candidates),
        ("Ambiguous matches (none linked)", f.ambiguous_matches),
        ("People in several roles with one account", f.multi_role.merged),
        ("People in several roles with separate accounts", f.multi_role.separate),
        ("Fields edited in the product, kept", f.edits_kept),
        ("Fields edited in the product, overwritten by the roster", f.edits_overwritten),
    ]
    rows = "".join(f'<tr><td>{_e(label)}</td><td class="n">{value:,}</td></tr>' for label, value in facts if value)
    if rows:
        blocks.append(_table("Records to know about", ("What", "How many"), rows, "", (1,)))
    if f.guardians_skipped:
        reasons = sorted(f.guardians_skipped.items(), key=lambda item: (-item[1], item[0]))
        rows = "".join(f'<tr><td>{_e(reason)}</td><td class="n">{count:,}</td></tr>' for reason, count in reasons)
        caption = f"Guardians skipped ({f.guardians_skipped_total:,})"
        blocks.append(_table(caption, ("Why", "Guardians"), rows, "", (1,)))
    if not blocks:
        if not report.dry_run:
            return ""
        blocks.append("<p>Nothing to flag: every school is matched and no record needs a look.</p>")
    return '<h2 id="findings">Findings</h2>' + "".join(blocks)


# -- files and settings --------------------------------------------------------------------------------


def _files(report: SyncReport, links: Mapping[str, str], zone: ZoneInfo | None) -> str:
    labels = {csv_file_name(kind): label for kind, label in KIND_LABELS.items()}
    labels[ERRORS_FILE] = "Errors"
    items = "".join(f"<li>{_e(labels.get(name, 'Details'))}: {_a(links, name)}</li>" for name in links)
    if not items:
        return ""
    expiry = ""
    if report.links_expire_at:
        expiry = (
            f'<p class="small" data-links="expiry">These download links work until '
            f"{_e(when(report.links_expire_at, zone))}, like the link to this page; after that, run "
            f"<code>rostersync report --district {_e(report.district_id)} --run {_e(report.run_id)} --open</code>.</p>"
        )
    return (
        '<h2 id="files">Full lists</h2><p>Every record that changed, was skipped or failed, one spreadsheet (CSV) '
        f'per kind:</p><ul class="files">{items}</ul>{expiry}'
    )


def _cost(report: SyncReport) -> str:
    """What the run cost on AWS and how long each step took, in words (a few lines at any size)."""
    if report.cost is None:
        return ""
    steps = "; ".join(
        f"{name.replace('_', ' ')} {step.seconds:,.1f} s"
        + (f" over {step.invocations:,} invocations" if step.invocations > 1 else "")
        for name, step in report.cost.steps.items()
    )
    return (
        f'<h2 id="cost">Cost and time</h2><p>{_e(describe_cost(report.cost))}</p>'
        f'<p class="small">Time per step: {_e(steps)}. Not counted: {_e(report.cost.not_counted)}.</p>'
    )


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, inner in value.items():
            out += _flatten(inner, f"{prefix}{key}.") if isinstance(inner, dict) else [(f"{prefix}{key}", inner)]
        return out
    return [(prefix.rstrip("."), value)]


def _descriptions() -> dict[str, str]:
    """Each settings key's description from the settings model (what ``settings schema`` prints)."""
    found: dict[str, str] = {}

    def walk(model: Any, prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            inner = getattr(annotation, "model_fields", None)
            if inner is not None:
                walk(annotation, f"{prefix}{name}.")
            found[f"{prefix}{name}"] = (info.description or "").split(". ")[0].rstrip(".")

    walk(SyncSettings, "")
    return found


def _shown_value(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _settings_used(report: SyncReport) -> str:
    """The settings the run planned with, in words, the settings key in small print (folded away)."""
    if report.settings is None:
        return ""
    words = _descriptions()
    rows = "".join(
        f"<dt>{_e(words.get(key) or key.replace('_', ' ').replace('.', ': ').capitalize())}"
        f'<br><code class="small">{_e(key)}</code></dt><dd>{_e(_shown_value(value))}</dd>'
        for key, value in _flatten(report.settings)
    )
    return (
        f"<details><summary>Settings this run used (version {_e(str(report.settings_version))})</summary>"
        f'<dl class="settings">{rows}</dl>'
        f'<p class="small">Change them with <code>rostersync settings set --district {_e(report.district_id)} '
        "KEY=VALUE</code>.</p></details>"
    )


# -- the page ------------------------------------------------------------------------------------------


def render_html(report: SyncReport, links: Mapping[str, str] | None = None) -> bytes:
    """Render ``report.html``: one self-contained page (inline CSS, no script).

    Parameters
    ----------
    report : SyncReport
        The run's report; ``files`` names the CSV files, ``lists`` the first lines of each kind and action.
    links : Mapping[str, str], optional
        File name → the address report.html links it by (presigned URLs); a file left out is linked by its
        name, which resolves when the page sits next to it (a downloaded copy).

    Returns
    -------
    bytes
        UTF-8 HTML in which every roster value is escaped.
    """
    zone = _zone(report)
    hrefs = _links(report, links)
    title = f"Sync report · {report.district_name or report.district_id}"
    settings = f" · settings version {report.settings_version}" if report.settings_version is not None else ""
    body = "".join(
        [
            _header(report, zone, _overview(report, links)),
            _needs_you(report, hrefs),
            _who_and_what(report, hrefs),
            _numbers(report),
            _findings(report, hrefs),
            _files(report, hrefs, zone),
            _cost(report),
            _settings_used(report),
            f"<footer>Run {_e(report.run_id)}{_e(settings)} · started {_e(when(report.started_at, zone))} · "
            "produced by rostersync</footer>",
        ]
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    )
    return page.encode("utf-8")


_FILE_LINK = re.compile(r'<a data-file="([^"]+)" href="[^"]*"')
_EXPIRY = re.compile(r'<p class="small" data-links="expiry">.*?</p>', re.S)


def localise_links(page: bytes) -> bytes:
    """The page with each file link pointing at the file's name, for a copy saved next to its files.

    A downloaded report (``rostersync report --out``, ``demo --out``) opens its CSV files from the same
    folder; the presigned links it was written with would expire, so they and their expiry note go.
    """
    text = page.decode("utf-8")
    text = _FILE_LINK.sub(lambda m: f'<a data-file="{m.group(1)}" href="{quote(escape_unquote(m.group(1)))}"', text)
    text = _EXPIRY.sub('<p class="small">These files sit in the same folder as this page.</p>', text)
    return text.encode("utf-8")


def escape_unquote(value: str) -> str:
    """The file name an escaped ``data-file`` attribute holds."""
    from html import unescape

    return unescape(value)
