"""Render a sync report to bytes: ``report.json``, one CSV per kind plus ``errors.csv``, ``report.html``.

Pure: no S3 here. The caller uploads what these functions return, all files under one prefix, so the
HTML's relative links to the CSV files resolve.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from rostersync.domain.records import Kind
from rostersync.reports.model import (
    KIND_LABELS,
    MAX_JSON_ERRORS,
    Findings,
    KindCounts,
    LineAction,
    ReadinessStatus,
    ReportError,
    ReportLine,
    RunStatus,
    SyncReport,
)

ERRORS_FILE = "errors.csv"
LINE_COLUMNS = ("action", "id", "provider_id", "name", "reason")
ERROR_COLUMNS = ("kind", "provider_id", "reason")
HTML_ERRORS_SHOWN = 200

LINE_ORDER: tuple[LineAction, ...] = (
    # what the admin reviews first: the sync would not (or should not) act on these unasked
    LineAction.POSSIBLE_DUPLICATE,
    LineAction.AMBIGUOUS,
    LineAction.EDIT_OVERWRITTEN,
    LineAction.SKIPPED,
    LineAction.ERROR,
    LineAction.WOULD_ARCHIVE,
    # then what the sync does, in the report's column order
    LineAction.ARCHIVED,
    LineAction.CREATED,
    LineAction.LINKED,
    LineAction.UPDATED,
    LineAction.RESTORED,
    # then what it decided on the way, for the record
    LineAction.MERGED,
    LineAction.SEPARATE_ACCOUNT,
    LineAction.EDIT_KEPT,
)
"""The order of a kind's CSV rows, grouped by action: lines to review first, so an admin opening a
self-check's ``students.csv`` sees the possible duplicates before 20,000 ``created`` lines."""

DEFAULT_REASONS: dict[LineAction, str] = {
    LineAction.POSSIBLE_DUPLICATE: "Same name and date of birth as a product person with no roster link; not merged. "
    "Link them with rostersync people link if they are the same person",
    LineAction.AMBIGUOUS: "Matches more than one product person; none was linked. Link the right one with "
    "rostersync people link",
}
"""The reason a review line gets when the planner gave none, so the CSV says what to do about it."""
_LINE_RANK = {action: rank for rank, action in enumerate(LINE_ORDER)}

# OWASP "CSV injection": a cell starting with one of these is read as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_file_name(kind: Kind) -> str:
    """Return the name of a kind's CSV file, e.g. ``guardian_links.csv``."""
    return f"{kind.value}.csv"


# Spreadsheets skip these before looking for a formula: spaces, and characters that show as nothing
# (zero-width space, joiners, word joiner, BOM, soft hyphen).
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


def neutralise_formula(cell: str) -> str:
    """Return the cell with a leading ``'`` if a spreadsheet would read it as a formula.

    The first character that shows is what counts: leading spaces and invisible characters are looked
    past, and a full-width form (``＝``, ``＋``, ``－``, ``＠``) counts as its ASCII twin (NFKC).
    """
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    shown = cell.lstrip(" \u00a0\u3000\n\v\f" + _INVISIBLE)
    if shown and unicodedata.normalize("NFKC", shown[0]).startswith(_FORMULA_START):
        return "'" + cell
    return cell


def render_json(report: SyncReport) -> bytes:
    """Render ``report.json``.

    Parameters
    ----------
    report : SyncReport
        The run's report; its errors are already capped at ``MAX_JSON_ERRORS``.

    Returns
    -------
    bytes
        UTF-8 JSON, indented for people who open it.
    """
    return report.model_dump_json(indent=2).encode("utf-8")


class CsvReportWriter:
    """Stream report lines into one CSV per kind and every error into ``errors.csv``.

    Rows go to spooled temporary files (in memory up to ``spool_bytes`` each, then on disk), so memory
    does not grow with the district. A kind's rows are grouped by action in ``LINE_ORDER`` (one spool
    per action while writing, joined on ``finish``); within an action they keep their arrival order.
    Only kinds that received a line get a file; ``errors.csv`` is always written. Use as a context
    manager so the temporary files are closed::

        with CsvReportWriter() as writer:
            writer.add_all(lines)
            for name, fileobj in writer.finish().items():
                s3.upload_fileobj(fileobj, bucket, f"{prefix}/{name}")

    The first ``MAX_JSON_ERRORS`` errors and their total are kept for ``SyncReport``.
    """

    def __init__(self, spool_bytes: int = 1 << 20, max_error_lines: int = 10_000) -> None:
        self._spool_bytes = spool_bytes
        self.max_error_lines = max_error_lines
        # file name → action rank → (text stream, csv writer); errors.csv has the one rank 0
        self._parts: dict[str, dict[int, tuple[io.TextIOWrapper, Any]]] = {}
        self._finished: dict[str, IO[bytes]] | None = None
        self.row_counts: dict[str, int] = {}
        self.errors_total = 0
        self.first_errors: list[ReportError] = []
        self._writer(ERRORS_FILE, 0)

    def _spool(self) -> IO[bytes]:
        return tempfile.SpooledTemporaryFile(max_size=self._spool_bytes, mode="w+b")  # type: ignore[return-value]

    def _writer(self, name: str, rank: int) -> Any:
        parts = self._parts.setdefault(name, {})
        if rank not in parts:
            # utf-8-sig is written once, by the header on finish; the parts are joined after it.
            text = io.TextIOWrapper(self._spool(), encoding="utf-8", newline="")  # type: ignore[arg-type]
            parts[rank] = (text, csv.writer(text))
            self.row_counts.setdefault(name, 0)
        return parts[rank][1]

    def _row(self, name: str, rank: int, cells: Iterable[str]) -> None:
        if self._finished is not None:
            raise RuntimeError("the report writer is finished")
        self._writer(name, rank).writerow([neutralise_formula(cell) for cell in cells])
        self.row_counts[name] += 1

    def add(self, line: ReportLine) -> None:
        """Append one line to its kind's CSV file, in its action's group."""
        name = csv_file_name(line.kind)
        reason = line.reason or DEFAULT_REASONS.get(line.action, "")
        cells = (line.action.value, line.id, line.provider_id, line.name, reason)
        self._row(name, _LINE_RANK[line.action], cells)

    def add_all(self, lines: Iterable[ReportLine]) -> None:
        """Append lines from any iterable (a generator over millions of lines is fine)."""
        for line in lines:
            self.add(line)

    def add_error(self, error: ReportError) -> None:
        """Append one error to ``errors.csv`` (the first ``max_error_lines``; every error is counted)."""
        if self.errors_total < self.max_error_lines:
            self._row(ERRORS_FILE, 0, (error.kind.value, error.provider_id, error.reason))
        self.errors_total += 1
        if len(self.first_errors) < MAX_JSON_ERRORS:
            self.first_errors.append(error)

    def finish(self) -> dict[str, IO[bytes]]:
        """Close the CSV files for writing and return them for upload.

        Returns
        -------
        dict[str, IO[bytes]]
            File name to a binary file object positioned at its start, kinds in ``Kind`` order, then
            ``errors.csv``. Valid until the writer is closed.
        """
        if self._finished is None:
            left_out = self.errors_total - self.max_error_lines
            if left_out > 0:
                self._row(
                    ERRORS_FILE,
                    0,
                    (
                        "",
                        "",
                        f"… and {left_out:,} more errors ({self.errors_total:,} in all; errors.csv keeps the "
                        f"first {self.max_error_lines:,}: settings limits.max_error_lines)",
                    ),
                )
            order = [csv_file_name(kind) for kind in Kind] + [ERRORS_FILE]
            self._finished = {}
            for name in (name for name in order if name in self._parts):
                self._finished[name] = self._join(name, self._parts.pop(name))
        return self._finished

    def _join(self, name: str, parts: dict[int, tuple[io.TextIOWrapper, Any]]) -> IO[bytes]:
        # utf-8-sig: the BOM makes Excel, which most admins open CSVs with, read accented names right.
        header = io.StringIO()
        csv.writer(header).writerow(ERROR_COLUMNS if name == ERRORS_FILE else LINE_COLUMNS)
        files: list[IO[bytes]] = [io.BytesIO(header.getvalue().encode("utf-8-sig"))]
        for rank in sorted(parts):
            text, _ = parts[rank]
            text.flush()
            part = text.detach()
            part.seek(0)
            files.append(part)  # type: ignore[arg-type]
        # Read back to back rather than copied into one file: the largest kind's CSV can be most of /tmp.
        return io.BufferedReader(_JoinedFile(files))  # type: ignore[return-value]

    def close(self) -> None:
        """Close and remove every temporary file."""
        for parts in self._parts.values():
            for text, _ in parts.values():
                text.close()
        for binary in (self._finished or {}).values():
            binary.close()

    def __enter__(self) -> CsvReportWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _JoinedFile(io.RawIOBase):
    """Binary files read one after the other as one (read-only, forward-only); closing closes them all."""

    def __init__(self, files: list[IO[bytes]]) -> None:
        self._files = files
        self._current = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._current < len(self._files):
            data = self._files[self._current].read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._current += 1
        return 0

    def close(self) -> None:
        for fileobj in self._files:
            fileobj.close()
        super().close()


# ---------------------------------------------------------------------------------------------- HTML

_STATUS = {  # label, text colour, background
    RunStatus.SUCCEEDED: ("Completed", "#0f5b2a", "#d5f5df"),
    RunStatus.SUCCEEDED_WITH_ERRORS: ("Completed with errors", "#7a4a00", "#ffeab0"),
    RunStatus.THRESHOLD_EXCEEDED: ("Archiving held back", "#8a3300", "#ffdcc7"),
    RunStatus.NEEDS_REVIEW: ("Needs review", "#8a3300", "#ffdcc7"),
    RunStatus.FAILED: ("Failed", "#8e1116", "#ffd7d9"),
    RunStatus.NOT_ENTITLED: ("Not entitled", "#8e1116", "#ffd7d9"),
}
_PROVIDERS = {"clever": "Clever", "classlink": "ClassLink", "oneroster": "OneRoster", "sftp": "SFTP upload"}
_TRIGGERS = {
    "enabled": "Sync enabled",
    "schedule": "Schedule",
    "manual": "Started by hand",
    "self_check": "Self-check",
    "upload": "File upload",
}
_COLUMNS = ("created", "updated", "linked", "restored", "archived", "unchanged", "skipped", "errors")
# In a self-check nothing is archived: the column shows what would be.
_DRY_COLUMNS = ("created", "updated", "linked", "restored", "would_archive", "unchanged", "skipped", "errors")
_COLUMN_LABELS = {"would_archive": "Would archive"}
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
_SEGMENTS = (
    ("created", "Created", "#009E73"),
    ("updated", "Updated", "#0072B2"),
    ("linked", "Linked", "#56B4E9"),
    ("restored", "Restored", "#CC79A7"),
    ("archived", "Archived", "#D55E00"),
)
_READINESS = {  # badge label, text colour, background; the label, not only the colour, carries the verdict
    ReadinessStatus.PASS: ("Pass", "#0f5b2a", "#d5f5df"),
    ReadinessStatus.WARN: ("Review", "#7a4a00", "#ffeab0"),
    ReadinessStatus.FAIL: ("Fix", "#8e1116", "#ffd7d9"),
}
_CODE = re.compile(r"`([^`]+)`")

_CSS = """
body{margin:0;background:#f4f5f7;color:#1d2330;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
Helvetica,Arial,sans-serif}
main{max-width:980px;margin:0 auto;padding:28px 24px 48px}
header{background:#fff;border-radius:10px;padding:20px 24px;box-shadow:0 1px 2px #0002}
h1{margin:0;font-size:26px}h2{font-size:18px;margin:28px 0 10px}
.sub{color:#5b6373;margin:2px 0 14px}
.badge{display:inline-block;padding:3px 12px;border-radius:999px;font-weight:600;font-size:14px;
vertical-align:middle;margin-left:10px}
dl{display:grid;grid-template-columns:repeat(3,minmax(180px,auto));gap:6px 28px;margin:0;justify-content:start}
dt{color:#5b6373;font-size:13px}dd{margin:0 0 4px;font-weight:500}
.callout{border-left:5px solid;border-radius:6px;padding:12px 16px;margin:14px 0;background:#fff}
.callout strong{display:block;margin-bottom:2px}
.dry{border-color:#0072B2;background:#e3f1fb}.fail{border-color:#c62828;background:#fdecea}
.note{border-color:#d98200;background:#fff6e0}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden;
box-shadow:0 1px 2px #0002}
th,td{padding:7px 12px;text-align:left;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{background:#eef0f3;font-size:13px;color:#3b4250}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.zero{color:#a3a9b4}.held{display:block;color:#8a3300;font-size:12px}
.err{color:#8e1116;font-weight:600}code{font-size:13px}
.chart{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}
.chart svg{width:100%;height:auto}.muted{color:#5b6373}
ul.files{background:#fff;border-radius:8px;padding:12px 16px 12px 36px;box-shadow:0 1px 2px #0002}
.verdict{font-size:20px;font-weight:700;margin:22px 0 4px}.verdict.ok{color:#0f5b2a}.verdict.no{color:#8e1116}
.checks .badge{margin:0;min-width:54px;text-align:center}.checks td:first-child{width:70px}
.checks .act{display:block;margin-top:4px;color:#3b4250}.checks strong{display:block}
.checks tr.fail td{background:#fdecea}.checks tr.warn td{background:#fffaf0}h3{font-size:15px;margin:18px 0 8px}
footer{margin-top:32px;color:#7a8190;font-size:13px}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _moment(iso: str) -> datetime | None:
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def _when(iso: str) -> str:
    moment = _moment(iso)
    if moment is None:
        return iso or "—"
    zone = ""
    if moment.tzinfo is not None:
        moment, zone = moment.astimezone(UTC), " UTC"
    return f"{moment.day} {moment:%b %Y, %H:%M}{zone}"


def _took(started_at: str, finished_at: str) -> str:
    start, end = _moment(started_at), _moment(finished_at)
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return "—"
    seconds = max(0, round((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _header(report: SyncReport) -> str:
    label, colour, background = _STATUS[report.status]
    if report.dry_run and report.status is not RunStatus.FAILED:
        label = f"Self-check: {label.lower()}"
    provider = _PROVIDERS.get(report.provider, report.provider)
    trigger = _TRIGGERS.get(report.trigger, report.trigger.replace("_", " ").capitalize())
    facts = [
        ("Provider", provider),
        ("Started", _when(report.started_at)),
        ("Finished", _when(report.finished_at)),
        ("Started by", trigger),
        ("Took", _took(report.started_at, report.finished_at)),
        ("Run", report.run_id),
    ]
    facts_html = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    return (
        f"<header><h1>{_e(report.district_name or report.district_id)}"
        f'<span class="badge" style="color:{colour};background:{background}">{_e(label)}</span></h1>'
        f'<p class="sub">Roster sync report · district {_e(report.district_id)}</p>'
        f"<dl>{facts_html}</dl></header>"
    )


def _with_code(text: str) -> str:
    """Escape ``text`` and show its `backticked` commands as code (escaped first, so nothing else is markup)."""
    return _CODE.sub(r"<code>\1</code>", _e(text))


def _verdict(report: SyncReport) -> str:
    fix, review = len(report.to_fix), len(report.to_review)
    later = "enabling sync" if report.dry_run else "the next sync"
    if fix:
        text, css = f"{fix:,} {'thing' if fix == 1 else 'things'} to fix before {later}", "no"
    else:
        text, css = ("Ready for the first sync" if report.dry_run else "Nothing to fix before the next sync"), "ok"
    extra = f'<p class="muted">and {review:,} to review</p>' if review else ""
    if fix and review:
        extra = f'<p class="muted">and {review:,} more to review</p>'
    return f'<p class="verdict {css}">{_e(text)}</p>{extra}'


def _readiness(report: SyncReport) -> str:
    if not report.readiness:
        return ""
    rows = []
    for item in report.readiness:
        label, colour, background = _READINESS[item.status]
        action = f'<span class="act">→ {_with_code(item.action)}</span>' if item.action else ""
        rows.append(
            f'<tr class="{_e(item.status.value)}"><td><span class="badge" style="color:{colour};'
            f'background:{background}">{_e(label)}</span></td>'
            f"<td><strong>{_e(item.check)}</strong>{_with_code(item.detail)}{action}</td></tr>"
        )
    heading = "Readiness checklist" if report.dry_run else "Checks"
    return f'<h2>{heading}</h2>{_verdict(report)}<table class="checks">{"".join(rows)}</table>'


def _callouts(report: SyncReport) -> str:
    parts = []
    if report.dry_run:
        parts.append(
            '<div class="callout dry"><strong>Self-check: nothing was written</strong>'
            "These numbers show what a sync would do. No school, classroom or person was changed.</div>"
        )
    if report.status is RunStatus.FAILED:
        reason = report.failure_reason or "No reason was recorded. Please contact support with the run id."
        parts.append(f'<div class="callout fail"><strong>The sync did not finish</strong>{_e(reason)}</div>')
    parts += [f'<div class="callout note">{_e(note)}</div>' for note in report.notes]
    if report.threshold:
        files = ", ".join(csv_file_name(kind) for kind in report.threshold)
        parts.append(
            f'<p class="muted">The records that would have been archived are listed in {_e(files)} '
            "with the action <code>would_archive</code>.</p>"
        )
    return "".join(parts)


def _count_cell(value: int, counts: KindCounts, column: str) -> str:
    held = ""
    if column == "archived" and counts.would_archive:
        held = f'<span class="held">{counts.would_archive:,} held back</span>'
    css = "n zero" if value == 0 and not held else "n"
    if column == "errors" and value:
        css = "n err"
    return f'<td class="{css}">{value:,}{held}</td>'


def _counts_table(report: SyncReport) -> str:
    columns = _DRY_COLUMNS if report.dry_run else _COLUMNS
    head = "".join(f'<th class="n">{_e(_COLUMN_LABELS.get(column, column.capitalize()))}</th>' for column in columns)
    rows = "".join(
        f"<tr><th>{_e(KIND_LABELS[kind])}</th>"
        + "".join(_count_cell(getattr(counts, column), counts, column) for column in columns)
        + "</tr>"
        for kind, counts in report.counts.items()
    )
    stopped = ""
    if report.status is RunStatus.FAILED:
        stopped = '<p class="muted">The numbers show what was done before the sync stopped.</p>'
    title = "What the sync would do" if report.dry_run else "Records by kind"
    return f"<h2>{title}</h2>{stopped}<table><tr><th>Kind</th>{head}</tr>{rows}</table>"


def _school_table(title: str, schools: list[tuple[str, str]], id_label: str, note: str) -> str:
    rows = "".join(
        f"<tr><td>{_e(name or '(no name)')}</td><td><code>{_e(sid)}</code></td></tr>" for name, sid in schools
    )
    return (
        f"<h3>{_e(title)} ({len(schools):,})</h3>"
        f'<p class="muted">{_with_code(note)}</p>'
        f"<table><tr><th>School</th><th>{_e(id_label)}</th></tr>{rows}</table>"
    )


def _csv_link(report: SyncReport, name: str) -> str:
    return f'<a href="{_e(quote(name))}">{_e(name)}</a>' if name in report.files else _e(name)


def _findings(report: SyncReport) -> str:
    """The findings section; in a real run only when something was found (a self-check always shows it)."""
    f: Findings = report.findings
    match = f"`rostersync schools match --district {report.district_id}`"
    blocks = []
    if f.unmatched_provider_schools:
        blocks.append(
            _school_table(
                "Provider schools with no product school",
                [(s.name, s.provider_id) for s in f.unmatched_provider_schools],
                "Provider ID",
                f"Their students and staff are skipped until the school is matched: {match}.",
            )
        )
    if f.unlinked_product_schools:
        blocks.append(
            _school_table(
                "Product schools linked to no provider school",
                [(s.name, s.id) for s in f.unlinked_product_schools],
                "Product ID",
                f"Nobody is synced into them. Match them with {match}.",
            )
        )
    if f.out_of_scope_schools:
        blocks.append(
            _school_table(
                "Schools out of scope",
                [(s.name, s.provider_id) for s in f.out_of_scope_schools],
                "Provider ID",
                "Left out by the setting schools_in_scope.",
            )
        )
    facts: list[tuple[str, int, str]] = [
        ("Sections without a teacher", f.sections_without_teacher, ""),
        ("Students in no section", f.students_without_section, ""),
        ("Sections with no linked classroom, given a new classroom", f.unlinked_sections.create, ""),
        ("Sections with no linked classroom, skipped", f.unlinked_sections.skip, ""),
        (
            "Duplicate candidates (same name and date of birth, not merged)",
            f.duplicate_candidates,
            f"listed in {_csv_link(report, 'students.csv')} with the action <code>possible_duplicate</code>",
        ),
        (
            "Ambiguous matches (none linked)",
            f.ambiguous_matches,
            "listed in the CSV files with the action <code>ambiguous</code>",
        ),
        ("People in several roles with one account", f.multi_role.merged, ""),
        ("People in several roles with separate accounts", f.multi_role.separate, ""),
        ("Fields edited in the product, kept", f.edits_kept, ""),
        (
            "Fields edited in the product, overwritten by the roster",
            f.edits_overwritten,
            "listed with the action <code>edit_overwritten</code>",
        ),
    ]
    rows = "".join(
        f'<tr><td>{_e(label)}</td><td class="n">{value:,}</td><td>{where}</td></tr>'
        for label, value, where in facts
        if value
    )
    if rows:
        blocks.append(f"<h3>Records to know about</h3><table>{rows}</table>")
    if f.guardians_skipped:
        reasons = sorted(f.guardians_skipped.items(), key=lambda item: (-item[1], item[0]))
        rows = "".join(f'<tr><td>{_e(reason)}</td><td class="n">{count:,}</td></tr>' for reason, count in reasons)
        blocks.append(
            f"<h3>Guardians skipped ({f.guardians_skipped_total:,})</h3>"
            f'<table><tr><th>Why</th><th class="n">Guardians</th></tr>{rows}</table>'
        )
    if not blocks:
        if not report.dry_run:
            return ""
        blocks.append("<p>Nothing to flag: every school is matched and no record needs a look.</p>")
    return "<h2>Findings</h2>" + "".join(blocks)


def _chart(report: SyncReport) -> str:
    label_w, bar_w, row_h, bar_h, top = 130, 560, 30, 18, 34
    width, height = label_w + bar_w + 100, top + row_h * len(report.counts)
    largest = max(counts.changed for counts in report.counts.values())
    if largest == 0:
        return "<h2>Changes</h2><p>Nothing was created, updated, restored or archived.</p>"
    legend, x = [], label_w
    for _, label, colour in _SEGMENTS:
        legend.append(
            f'<rect x="{x}" y="6" width="12" height="12" rx="2" fill="{colour}"/>'
            f'<text x="{x + 18}" y="16">{_e(label)}</text>'
        )
        x += 110
    rows = []
    for index, (kind, counts) in enumerate(report.counts.items()):
        y = top + index * row_h
        rows.append(f'<text x="{label_w - 10}" y="{y + 14}" text-anchor="end">{_e(KIND_LABELS[kind])}</text>')
        x = label_w
        for field, label, colour in _SEGMENTS:
            value = getattr(counts, field)
            if value:
                # Keep tiny segments visible: schools and enrollments differ by three orders of magnitude.
                w = max(value / largest * bar_w, 2)
                rows.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                    f"<title>{_e(KIND_LABELS[kind])}: {value:,} {_e(label.lower())}</title></rect>"
                )
                x += w
        total = f"{counts.changed:,}" if counts.changed else "no changes"
        fill = "#1d2330" if counts.changed else "#a3a9b4"
        rows.append(f'<text x="{x + 8:.1f}" y="{y + 14}" fill="{fill}">{_e(total)}</text>')
    return (
        '<h2>Changes</h2><div class="chart">'
        f'<svg viewBox="0 0 {width} {height}" role="img" font-size="13" fill="#1d2330" '
        'aria-label="Records created, updated, restored and archived, by kind">'
        f"{''.join(legend)}{''.join(rows)}</svg></div>"
    )


def _errors_table(report: SyncReport) -> str:
    if report.errors_total == 0:
        if report.status is RunStatus.FAILED:
            return "<h2>Errors</h2><p>No record errors were found before the sync stopped.</p>"
        return "<h2>Errors</h2><p>No errors: every record could be used.</p>"
    shown = report.errors[:HTML_ERRORS_SHOWN]
    rows = "".join(
        f"<tr><td>{_e(KIND_LABELS[error.kind])}</td><td><code>{_e(error.provider_id)}</code></td>"
        f"<td>{_e(error.reason)}</td></tr>"
        for error in shown
    )
    more = report.errors_total - len(shown)
    tail = f'<p>… and {more:,} more in <a href="{ERRORS_FILE}">{ERRORS_FILE}</a>.</p>' if more > 0 else ""
    return (
        f"<h2>Errors ({report.errors_total:,})</h2>"
        '<p class="muted">These records were skipped; the rest of the sync went ahead.</p>'
        f"<table><tr><th>Kind</th><th>Provider ID</th><th>Reason</th></tr>{rows}</table>{tail}"
    )


def _files(report: SyncReport) -> str:
    labels = {csv_file_name(kind): label for kind, label in KIND_LABELS.items()}
    labels[ERRORS_FILE] = "Errors"
    items = "".join(
        f'<li>{_e(labels.get(name, "Details"))} — <a href="{_e(quote(name))}">{_e(name)}</a></li>'
        for name in report.files
        if name.endswith(".csv")
    )
    if not items:
        return ""
    return (
        "<h2>Details</h2><p>Every record that changed, was skipped or failed, one file per kind:</p>"
        f'<ul class="files">{items}</ul>'
    )


def _settings_used(report: SyncReport) -> str:
    """The settings the run planned with, folded away (what explains a skipped section or a kept edit)."""
    if report.settings is None:
        return ""
    values = json.dumps(report.settings, indent=2, ensure_ascii=False)
    return (
        f"<details><summary>Settings used (version {_e(str(report.settings_version))})</summary>"
        f"<pre>{_e(values)}</pre></details>"
    )


def render_html(report: SyncReport) -> bytes:
    """Render ``report.html``: one self-contained page (inline CSS and SVG, no script).

    A self-check opens with its verdict and readiness checklist, then the would-do counts and the
    findings; a real run shows its counts first and the findings and checklist after.

    Parameters
    ----------
    report : SyncReport
        The run's report; ``files`` names the CSV files that sit next to the page.

    Returns
    -------
    bytes
        UTF-8 HTML in which every roster value is escaped.
    """
    title = f"Sync report · {report.district_name or report.district_id}"
    settings = f" · settings version {report.settings_version}" if report.settings_version is not None else ""
    if report.dry_run:
        # A self-check is read for its verdict: the checklist first, then what the sync would do.
        sections = [_readiness(report), _callouts(report), _counts_table(report), _findings(report), _chart(report)]
    else:
        sections = [_callouts(report), _counts_table(report), _chart(report), _findings(report), _readiness(report)]
    body = "".join(
        [
            _header(report),
            *sections,
            _errors_table(report),
            _files(report),
            _settings_used(report),
            f"<footer>Run {_e(report.run_id)}{_e(settings)} · produced by rostersync</footer>",
        ]
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    )
    return page.encode("utf-8")
